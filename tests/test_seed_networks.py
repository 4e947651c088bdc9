"""The seeds' networks, layer by layer, against the numbers printed in the seeds."""

import pytest

from archcalc.analysis.engine import analyse
from archcalc.analysis.views import rows
from archcalc.models.catalog import REGISTRY


def by_name(analysis):
    return {r.label: r for r in analysis.records}


@pytest.fixture(scope="module")
def lenet():
    return analyse(REGISTRY.get("lenet5"))


def test_lenet5_trainable_parameters_per_layer(lenet):
    layers = by_name(lenet)
    expected = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert {name: layers[name].trainable_params for name in expected} == expected
    assert layers["output"].params == 840 and layers["output"].trainable_params == 0
    assert lenet.totals.trainable_params == 60000
    assert lenet.totals.params == 60840


def test_lenet5_arithmetic_is_shown(lenet):
    layers = by_name(lenet)
    assert layers["c1"].formulas["params"] == "(5*5*1 + 1)*6 = 156"
    assert layers["s2"].formulas["params"].endswith("(1 + 1)*6 = 12")
    assert layers["c3"].formulas["params"] == "(5*5*3 + 1)*6 + (5*5*4 + 1)*9 + (5*5*6 + 1)*1 = 1,516"
    assert layers["c5"].formulas["params"] == "(5*5*16 + 1)*120 = 48,120"
    assert layers["f6"].formulas["params"] == "(120 + 1)*84 = 10,164"


def test_lenet5_shapes_of_the_paper(lenet):
    layers = by_name(lenet)
    shapes = {n: layers[n].output_shape for n in ("c1", "s2", "c3", "s4", "c5", "f6", "output")}
    assert shapes == {"c1": (1, 6, 28, 28), "s2": (1, 6, 14, 14), "c3": (1, 16, 10, 10), "s4": (1, 16, 5, 5),
                      "c5": (1, 120, 1, 1), "f6": (1, 84), "output": (1, 10)}
    # LeCun et al.: C3 has 151,600 connections = 1516 weights*10*10; MACs exclude the 1,600 bias adds
    assert layers["c3"].macs == 150000 and layers["c3"].elementwise == 1600


def test_cnnet_shapes_of_the_slide():
    # 003: 3x32x32 -> 32x30x30 -> 32x15x15 -> 64x12x12 -> 64x6x6 -> 2304 -> 10
    a = analyse(REGISTRY.get("cnnet"))
    outs = [(r.label, r.output_shape) for r in rows(a)]
    assert outs == [
        ("conv1", (1, 32, 30, 30)), ("relu", (1, 32, 30, 30)), ("max_pool2d", (1, 32, 15, 15)),
        ("conv2", (1, 64, 12, 12)), ("relu (2)", (1, 64, 12, 12)), ("max_pool2d (2)", (1, 64, 6, 6)),
        ("flatten", (1, 2304)), ("dropout", (1, 2304)), ("fc1", (1, 10)),
    ]
    fc1 = by_name(a)["fc1"]
    assert fc1.params == (2304 + 1) * 10 and fc1.formulas["params"] == "(2304 + 1)*10 = 23,050"


def test_vgg_base_shapes_and_params():
    a = analyse(REGISTRY.get("vgg_base"))
    layers = by_name(a)
    assert layers["conv1_1"].formulas["params"] == "(3*3*3 + 1)*16 = 448"
    assert layers["conv3_2"].params == (3 * 3 * 128 + 1) * 256
    assert layers["avgPool2d (3)"].output_shape == (1, 256, 4, 4)
    assert layers["reshape"].output_shape == (1, 4096)
    assert layers["fc1"].params == (4096 + 1) * 512
    assert a.totals.params == 2633418


def test_vgg_dense_concatenations_give_35_and_99_channels():
    a = analyse(REGISTRY.get("vgg_dense"))
    layers = by_name(a)
    assert layers["cat"].input_shapes == ((1, 3, 32, 32), (1, 32, 32, 32))
    assert layers["cat"].output_shape == (1, 35, 32, 32)
    assert layers["cat (2)"].output_shape == (1, 99, 16, 16)
    assert layers["conv2_1"].input_shapes == ((1, 35, 16, 16),)
    assert layers["conv3_1"].input_shapes == ((1, 99, 8, 8),)
    assert layers["conv2_1"].formulas["params"] == "(3*3*35 + 1)*32 = 10,112"


def test_vgg_skip_adds_appear_with_their_projections():
    a = analyse(REGISTRY.get("vgg_skip"))
    layers = by_name(a)
    adds = [r for r in a.records if r.type == "add"]
    assert [r.output_shape for r in adds] == [(1, 32, 32, 32), (1, 64, 16, 16), (1, 256, 8, 8)]
    assert all(r.elementwise == r.activation_elements for r in adds)
    assert layers["conv_skip1"].formulas["params"] == "(3*3*3 + 1)*32 = 896"
    assert layers["conv_skip3"].input_shapes == ((1, 64, 8, 8),)


def test_vgg_ca_attention_ops_appear():
    a = analyse(REGISTRY.get("vgg_ca"))
    layers = by_name(a)
    assert layers["adaptiveAvgPool2d"].output_shape == (1, 64, 1, 1)
    assert layers["caconv1"].formulas["params"] == "(1*1*64 + 1)*64 = 4,160"
    assert layers["expand_as"].output_shape == (1, 64, 16, 16)
    assert layers["expand_as"].activation_bytes == 0  # a view: no new memory
    assert layers["mul"].input_shapes == ((1, 64, 16, 16), (1, 64, 16, 16))
    assert layers["mul"].elementwise == 64 * 16 * 16


def test_combinations_use_max_pooling_and_every_module():
    a = analyse(REGISTRY.get("vgg_skip_dense_ca"))
    types = {r.type for r in a.records}
    assert {"MaxPool2d", "add", "cat", "mul", "expand_as"} <= types
    assert "AvgPool2d" not in types
    layers = by_name(a)
    assert layers["conv_skip2"].input_shapes == ((1, 35, 16, 16),)
    assert layers["conv3_1"].input_shapes == ((1, 99, 8, 8),)


def test_every_entry_carries_its_metadata():
    for entry in REGISTRY:
        assert entry.description and entry.source and len(entry.default_input) == 3


def test_hard_coded_flatten_at_another_size_is_flagged():
    # The lab writes torch.reshape(out, (-1, 4096)): at 64x64 the batch of 1 silently becomes 4.
    a = analyse(REGISTRY.get("vgg_base"), (3, 64, 64))
    assert a.output_shapes == ((4, 10),)
    assert any("reshape turned batch 1 into 4" in note for note in a.notes)
    assert not analyse(REGISTRY.get("vgg_base")).notes


def test_googlenet_aux_heads_count_only_when_asked():
    inference = analyse(REGISTRY.get("googlenet"), overrides={"aux_logits": True})
    training = analyse(REGISTRY.get("googlenet"), overrides={"aux_logits": True, "aux_in_count": True})
    aux_params = sum(r.params for r in training.records if r.name.startswith(("aux1", "aux2")))
    assert aux_params == 2 * ((128 * 512 + 128) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)) + (128 * 528 - 128 * 512)
    assert inference.totals.params == training.totals.params  # the heads exist either way
    assert any(f"{aux_params:,} parameters belong to layers that did not run" in n for n in inference.notes)
    assert training.totals.macs - inference.totals.macs == sum(
        r.macs for r in training.records if r.name.startswith(("aux1", "aux2")) and r.macs)
    assert not any(r.name.startswith("aux") for r in inference.records)
    plain = analyse(REGISTRY.get("googlenet"))  # the inference network: no heads built, nothing unrun
    assert plain.totals.params == inference.totals.params - aux_params == sum(r.params for r in plain.records)
    assert not any("did not run" in n for n in plain.notes)


def test_googlenet_5x5_branches_are_really_5x5():
    a = analyse(REGISTRY.get("googlenet"))
    conv = next(r for r in a.records if r.name == "inception3a.branch3.1.0")
    assert conv.formulas["params"] == "(5*5*16 + 1)*32 = 12,832"
