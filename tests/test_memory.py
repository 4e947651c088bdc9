"""archcalc memory: the arithmetic of each part, the saved activations on a hand-checked model,
and the estimate against one measured training step."""

import math

import pytest
import torch
from torch import nn

from archcalc.errors import InputError
from archcalc.training.memory import estimate, measure_peak
from archcalc.models.catalog import REGISTRY
from archcalc.models.registry import ModelEntry


class ConvReluLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5 * 5, 2)

    def forward(self, x):
        y = torch.relu(self.conv(x))  # relu saves its output
        return self.fc(torch.flatten(y, 1))  # fc saves its input: a view of that same storage


HAND = ModelEntry("hand", "test", "tests.test_memory:ConvReluLinear", (3, 5, 5), "", "")


def test_saved_activations_on_a_hand_checked_model():
    e = estimate(HAND, None, 2, "sgd")
    assert e.activations_bytes == 2 * 4 * 5 * 5 * 4  # only relu's output: conv saves the input and weights
    assert e.input_bytes == 2 * 3 * 5 * 5 * 4
    assert e.backward_bytes == 2 * e.activations_bytes


def test_parameters_gradients_and_optimizer_state():
    params = 56_778 * 4
    sgd, momentum, adam = (estimate(REGISTRY.get("cnnet"), None, 8, o) for o in ("sgd", "momentum", "adam"))
    assert sgd.params_bytes == sgd.grads_bytes == params and sgd.optimizer_bytes == 0
    assert momentum.optimizer_bytes == params
    assert adam.optimizer_bytes == 2 * params + 4 * 6  # exp_avg, exp_avg_sq and 6 step counters
    assert adam.total_bytes == adam.params_bytes + adam.grads_bytes + adam.optimizer_bytes \
        + adam.activations_bytes + adam.input_bytes + adam.backward_bytes
    lenet = estimate(REGISTRY.get("lenet5"), None, 1, "sgd")
    assert lenet.grads_bytes == 60_000 * 4  # the RBF output's fixed 840 parameters get no gradient


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"])
def test_each_optimizers_state_is_what_pytorch_keeps(optimizer):
    """The optimizer term is the bytes of the state PyTorch's own optimizer holds after a real step on the CPU
    (cnnet's 6 trainable tensors of 56,778 elements: AdamW's two moments and step counters, 2*227,112 + 4*6;
    RMSprop's square_avg and Adagrad's sum, 227,112 + 4*6); and the simulated CPU peak of two steps is the real
    tensors' (each optimizer's own temporaries, Adagrad's state made before the first step)."""
    from archcalc.analysis.engine import build
    from archcalc.training.optimizers import optimizer_for
    from archcalc.training.peak import simulate
    from tests.test_peak import real_cpu_peak

    entry = REGISTRY.get("cnnet")
    e = estimate(entry, None, 4, optimizer)
    real = build(entry, torch.device("cpu"), torch.float32).train()
    opt = optimizer_for(real.parameters(), optimizer)
    real(torch.randn(4, *entry.default_input)).mean().backward()
    opt.step()
    held = sum(v.numel() * v.element_size() for state in opt.state.values() for v in state.values()
               if isinstance(v, torch.Tensor))
    assert e.optimizer_bytes == held == {"sgd": 0, "momentum": 227_112, "nesterov": 227_112, "adam": 454_248,
                                         "adamw": 454_248, "rmsprop": 227_136, "adagrad": 227_136}[optimizer]
    assert simulate(entry, None, 4, optimizer, device="cpu").allocated == \
        real_cpu_peak(entry, (4, *entry.default_input), optimizer)


def test_activations_grow_with_the_batch():
    one, eight = (estimate(REGISTRY.get("vgg_base"), None, b, "sgd") for b in (1, 8))
    assert eight.activations_bytes == 8 * one.activations_bytes


def test_the_simulated_cpu_peak_against_two_measured_steps():
    # Peak RSS carries a few MB of allocator and kernel noise, so the step is made large (~180 MB).
    entry = REGISTRY.get("cnnet")
    e = estimate(entry, None, 512, "adam")
    measured = measure_peak(entry, None, 512, "adam", "float32", "cpu")
    assert 0.95 < measured["peak_bytes"] / e.predicted_step_bytes < 1.15
    assert e.predicted_step_bytes < e.total_bytes - e.params_bytes - e.input_bytes  # the sum: an upper bound
    assert len(measured["steps"]) == 2 and measured["peak_bytes"] == max(measured["steps"])


def test_what_the_first_cpu_step_leaves_held_by_no_tensor_is_said_apart(cli):
    """vgg_base's convolutions and matrix products keep some 16 MiB resident after their first use at a shape
    (the math libraries' caches), which no tensor holds and the simulation does not know: measured/simulated
    is 1.36 at batch 8, and 1.00 without it."""
    data = cli("memory", "vgg_base", "--batch", "8", "--optimizer", "adam", "--measure", "cpu", "-f", "json").json()
    m = data["measured"]
    assert m["held_bytes"] > 4 * 2**20 and m["ratio"] > 1.2
    assert 0.95 < m["ratio_without_held"] < 1.08
    assert m["ratio_without_held"] == (m["peak_bytes"] - m["held_bytes"]) / m["simulated_step_bytes"]
    from archcalc.formulas.numbers import human_bytes
    from archcalc.output.memory_report import memory_report

    footer = memory_report(estimate(REGISTRY.get("vgg_base"), None, 8, "adam"), m).footer
    line = next(line for line in footer if line.startswith("held by no tensor since step 1: "))
    assert f"{human_bytes(m['held_bytes'])} ({m['held_bytes']:,} bytes = " in line
    assert line.endswith(f"without it measured/simulated {m['ratio_without_held']:.2f}")


def test_memory_command_json_and_errors(cli):
    data = cli("memory", "vgg_base", "--batch", "4", "--optimizer", "momentum", "-f", "json").json()
    assert {"model", "batch", "optimizer", "dtype", "totals", "layers"} <= set(data)
    assert {"params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes", "total_bytes"} <= set(data["totals"])
    assert sum(layer["saved_bytes"] for layer in data["layers"]) == data["totals"]["activations_bytes"]
    bad = cli("memory", "vgg_base", "--optimizer", "lion")
    assert bad.code == 1 and "unknown optimizer 'lion'" in bad.err
    with pytest.raises(InputError):
        estimate(REGISTRY.get("cnnet"), None, 1, "lbfgs")


def test_the_budget_is_read_in_binary_and_decimal_units():
    from archcalc.training.fit import parse_budget

    assert parse_budget("16GiB") == 16 * 2**30 == parse_budget("16 g") and parse_budget("24GB") == 24 * 10**9
    assert parse_budget("1.5TiB") == 3 * 2**39 and parse_budget("512MiB") == 2**29
    for bad in ("lots", "16 parsecs", "0MiB"):
        with pytest.raises(InputError):
            parse_budget(bad)


def test_fit_device_is_the_memory_the_gpu_has_free(monkeypatch):
    """Not its total: the CUDA context and other processes hold the rest, which the allocator cannot have."""
    from archcalc.training.fit import parse_budget

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (78 * 2**30, 80 * 2**30))
    assert parse_budget("device") == parse_budget(" Device ") == 78 * 2**30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="fit='device' needs a GPU"):  # (in Python; `--fit device` in the CLI)
        parse_budget("device")


def test_the_largest_batch_is_exact_for_any_growth():
    from archcalc.training.fit import largest_batch

    linear = largest_batch("m", lambda b: 1000 + 37 * b, 10_000)
    assert linear.batch == (10_000 - 1000) // 37 == 243 and 1000 + 37 * 244 > 10_000
    assert len(linear.tried) <= 4  # extrapolated from batches 1 and 2, then confirmed
    stepped = largest_batch("m", lambda b: 500 + 10 * b + (2_000 if b > 100 else 0) + b * b // 10, 6_000)
    total = lambda b: 500 + 10 * b + (2_000 if b > 100 else 0) + b * b // 10  # noqa: E731
    assert total(stepped.batch) <= 6_000 < total(stepped.batch + 1)
    assert largest_batch("m", lambda b: 100 * b, 50).batch == 0
    from archcalc.training.fit import LARGEST

    unbounded = largest_batch("m", lambda b: 1000 + b, 10**12)
    assert unbounded.batch == LARGEST and unbounded.text().startswith(
        f"every batch up to {LARGEST:,} (the most archcalc tries) fits in 931.32 GiB")
    aligned = lambda b: 266_172_928 + sum(-(-(b * m) // 512) * 512 for m in (802_816, 3_211_264, 200_704))  # noqa
    nearly = largest_batch("m", aligned, 8 * 2**30)
    assert aligned(nearly.batch) <= 8 * 2**30 < aligned(nearly.batch + 1) and len(nearly.tried) <= 6



def test_fit_on_the_command_line_agrees_with_the_estimate(cli):
    data = cli("memory", "cnnet", "--fit", "64MiB", "--optimizer", "adam", "-f", "json").json()
    batch = data["batch"]
    assert batch > 1 and data["budget_bytes"] == 64 * 2**20
    fits = estimate(REGISTRY.get("cnnet"), None, batch, "adam").predicted_bytes
    over = estimate(REGISTRY.get("cnnet"), None, batch + 1, "adam").predicted_bytes
    assert fits <= 64 * 2**20 < over
    assert f"largest batch that fits in 64.00 MiB: {batch:,}" in data["text"]
    run = cli("memory", "cnnet", "--fit", "lots")
    assert run.code == 1 and "is not a memory size" in run.err
    run = cli("memory", "cnnet", "--fit", "1GiB", "--batch", "4")
    assert run.code == 1 and "--fit answers the batch itself; drop --batch 4" in run.err
    limited = cli("memory", "cnnet", "--fit", "100TiB", "-f", "json").json()
    assert limited["at_search_limit"] and limited["text"].startswith("every batch up to 16,777,216")
    assert not data["at_search_limit"]
    if not torch.cuda.is_available():
        run = cli("memory", "cnnet", "--fit", "device")
        assert run.code == 1 and "--fit device needs a GPU" in run.err


def test_confirming_by_measurement_finds_the_largest_batch_that_runs_from_any_prediction():
    from archcalc.training.fit import Run, confirm

    def run(batch):  # a device with 10,000 bytes where a step needs 1000 + 37 per sample
        return Run(batch, 1000 + 37 * batch if batch <= 243 else None)

    for predicted in (243, 200, 260, 1, 5000):  # runs: 2 at the answer, then about 2 log2(distance)
        c = confirm(run, 10_000, predicted)
        assert c.batch == 243 and {243, 244} <= {r.batch for r in c.runs}
        assert len(c.runs) <= 2 + 2 * math.ceil(math.log2(abs(predicted - 243) + 1))
    assert "the prediction is confirmed: 243 fits and 244 does not" in confirm(run, 10_000, 243).text()
    assert "conservative by 43 (21.5%)" in confirm(run, 10_000, 200).text()
    assert "optimistic by 17: the largest batch that fits is 243" in confirm(run, 10_000, 260).text()
    assert confirm(run, 500, 3).batch == 0 and "not even batch 1 fits" in confirm(run, 500, 3).text()
    for predicted in (243, 200, 260, 1, 5000):  # aimed from below by the prediction's slope, within 20%
        for slope in (37, 30, 45, None):
            c = confirm(run, 10_000, predicted, slope)
            assert c.batch == 243 and {243, 244} <= {r.batch for r in c.runs}
            assert len(c.runs) <= 2 + 2 * math.ceil(math.log2(abs(predicted - 243) + 1))

    def rss(batch):  # the CPU: every run measures its bytes, over the budget too
        return Run(batch, 1000 + 37 * batch)

    for predicted in (243, 200, 260, 1, 5000):
        for slope, most in ((37, 3), (30, 5), (45, 4), (1, 5), (10**6, 4), (None, 4)):
            c = confirm(rss, 10_000, predicted, slope)
            assert c.batch == 243 and {243, 244} <= {r.batch for r in c.runs} and len(c.runs) <= most, slope


def test_confirming_aims_each_run_by_the_last_ones_bytes():
    from archcalc.training.fit import Run, confirm

    def run(batch):  # RSS-like: 1000 + 37 per sample, 60 bytes more from sample 150 on, never out of memory
        return Run(batch, 1000 + 37 * batch + (60 if batch >= 150 else 0))

    c = confirm(run, 10_000, 139, slope=37)
    assert [r.batch for r in c.runs] == [139, 243, 241, 242] and c.batch == 241  # 243: 10,051 bytes, 51 over


def test_fit_with_measure_runs_steps_beside_the_answer(cli):
    data = cli("memory", "cnnet", "--fit", "48MiB", "--measure", "cpu", "-f", "json").json()
    measured = data["measured"]
    runs = {r["batch"]: r for r in measured["runs"]}
    batch = measured["batch"]
    assert runs[batch]["fits"] and not runs[batch + 1]["fits"] and runs[batch + 1]["bytes"] > 48 * 2**20
    assert all(r["fits"] == (r["bytes"] <= 48 * 2**20) for r in runs.values())
    assert data["batch"] in runs and measured["text"].startswith("measured: batch ")


def test_a_reused_layer_is_a_row_per_call_as_in_every_other_view():
    e = estimate(REGISTRY.get("vgg_base"), None, 1, "sgd")
    relus = [layer for layer in e.layers if layer.type == "ReLU"]
    assert [layer.name for layer in relus] == ["relu"] + [f"relu ({i})" for i in range(2, 9)]
    assert all(layer.saved_tensors == 1 for layer in relus)  # each call saves its own output
    assert relus[1].saved_bytes == 32 * 32 * 32 * 4  # conv1_2's 32x32x32 map, after relu (2)
    assert sum(layer.saved_bytes for layer in e.layers) == e.activations_bytes


class Residual(nn.Module):
    """A block whose own forward calls functional operations: relu, and a product that saves both inputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return torch.relu(y * x)  # mul saves y and x (x is the input: not counted again)


class TwoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.block = Residual()

    def forward(self, x):
        return self.block(torch.sigmoid(self.stem(x)))


def test_a_modules_own_functional_operations_are_rows_named_as_in_the_shapes_view():
    from archcalc.analysis.engine import analyse

    entry = ModelEntry("two", "test", "tests.test_memory:TwoBlocks", (3, 6, 6), "", "")
    e = estimate(entry, None, 2, "sgd")
    plane = 2 * 4 * 6 * 6 * 4  # one 2x4x6x6 float32 map
    rows = {layer.name: (layer.type, layer.saved_tensors, layer.saved_bytes) for layer in e.layers}
    # sigmoid saves its output; block.conv saves its input (that same output: counted once, by sigmoid);
    # relu its output; mul its two inputs (y, the first relu's output, already counted, and x, sigmoid's);
    # relu (2) its output
    assert rows == {"sigmoid": ("sigmoid", 1, plane), "block.relu": ("relu", 1, plane),
                    "block.relu (2)": ("relu", 1, plane)}
    shown = {record.label for record in analyse(entry, None).records}
    assert set(rows) <= shown  # the same names as the shapes, params and flops views
    assert e.activations_bytes == 3 * plane


def test_a_batch_of_one_through_batch_norm_in_training_says_what_to_do(cli, tmp_path):
    """A training step's BatchNorm after global pooling has one value per channel at batch 1, which PyTorch refuses
    (its batch statistics need two): memory and time say so in one line with the batch to use; flops --pass train
    counts in eval mode and its note says the same."""
    spec = tmp_path / "pooled.py"
    spec.write_text("from torch import nn\n\n\ndef net():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), "
                    "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(8), nn.Linear(8, 2))\n\n\n"
                    "net.archcalc_input = (3, 16, 16)\n")
    run = cli("memory", f"{spec}:net", "--batch", "1")
    assert run.code != 0 and "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1
    assert "Expected more than 1 value per channel" in run.err and "use --batch 2 or more" in run.err
    assert cli("memory", f"{spec}:net", "--batch", "2").code == 0
    flops = cli("flops", f"{spec}:net", "--pass", "train", "-f", "json").json()
    assert any("counted in eval mode" in n and "use --batch 2 or more" in n for n in flops["notes"])
