"""The model zoo: every entry builds on the meta device, and parameter counts equal independent
arithmetic written here from the papers' tables (and the counts torchvision publishes)."""

import pytest

from archcalc.analysis.engine import analyse
from archcalc.errors import InputError
from archcalc.models.catalog import REGISTRY


def conv(k, c_in, c_out, bias=True, groups=1):
    return k * k * (c_in // groups) * c_out + (c_out if bias else 0)


def fc(n_in, n_out):
    return (n_in + 1) * n_out


def vgg(widths, bn=False, se=False):
    total, c = 0, 3
    for v in widths:
        k, w = (1, int(v[4:])) if isinstance(v, str) else (3, v)
        total += conv(k, c, w) + (2 * w if bn else 0) + (fc(w, w // 16) + fc(w // 16, w) if se else 0)
        c = w
    return total + fc(512 * 7 * 7, 4096) + fc(4096, 4096) + fc(4096, 1000)


D = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def resnet(depth, groups=1, width=64, se=False, r=16):
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    bottleneck = depth >= 50
    total = conv(7, 3, 64, bias=False) + 2 * 64
    c = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        out = planes * (4 if bottleneck else 1)
        for i in range(n):
            if bottleneck:
                w = planes * width // 64 * groups
                total += conv(1, c, w, False) + conv(3, w, w, False, groups) + conv(1, w, out, False) + 2 * (w + w + out)
            else:
                total += conv(3, c, out, False) + conv(3, out, out, False) + 4 * out
            if i == 0 and (stage > 0 or c != out):
                total += conv(1, c, out, False) + 2 * out
            if se:
                total += fc(out, out // r) + fc(out // r, out)
            c = out
    return total + fc(c, 1000)


def densenet(blocks, k=32):
    total, c = conv(7, 3, 2 * k, False) + 4 * k, 2 * k
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += 2 * c + conv(1, c, 4 * k, False) + 2 * 4 * k + conv(3, 4 * k, k, False)
            c += k
        if i < len(blocks) - 1:
            total += 2 * c + conv(1, c, c // 2, False)
            c //= 2
    return total + 2 * c + fc(c, 1000)


def googlenet():
    rows = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
            (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
            (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)]
    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
    for c, n1, r3, n3, r5, n5, pp in rows:
        total += conv(1, c, n1) + conv(1, c, r3) + conv(3, r3, n3) + conv(1, c, r5) + conv(5, r5, n5) + conv(1, c, pp)
    aux = lambda c: conv(1, c, 128) + fc(2048, 1024) + fc(1024, 1000)  # noqa: E731
    return total + fc(1024, 1000), aux(512) + aux(528)


def bn_inception(se=False):
    def cbn(k, c_in, c_out):
        return conv(k, c_in, c_out, bias=False) + 2 * c_out

    rows = [(64, 64, 64, 64, 96, 32, 1), (64, 64, 96, 64, 96, 64, 1), (0, 128, 160, 64, 96, 0, 2),
            (224, 64, 96, 96, 128, 128, 1), (192, 96, 128, 96, 128, 128, 1), (160, 128, 160, 128, 160, 128, 1),
            (96, 128, 192, 160, 192, 128, 1), (0, 128, 192, 192, 256, 0, 2), (352, 192, 320, 160, 224, 128, 1),
            (352, 192, 320, 192, 224, 128, 1)]
    total, c = cbn(7, 3, 64) + cbn(1, 64, 64) + cbn(3, 64, 192), 192
    for n1, r3, n3, rd, nd, proj, _ in rows:
        total += (cbn(1, c, n1) if n1 else 0) + cbn(1, c, r3) + cbn(3, r3, n3) + cbn(1, c, rd) + cbn(3, rd, nd) \
            + cbn(3, nd, nd) + (cbn(1, c, proj) if proj else 0)
        c = n1 + n3 + nd + (proj or c)
        total += fc(c, c // 16) + fc(c // 16, c) if se else 0
    return total + fc(c, 1000)


def srdensenet():
    total = conv(3, 1, 128)
    for _ in range(8):
        c = 128
        total += sum(conv(3, c + i * 16, 16) for i in range(8))
    return total + conv(1, 128 + 8 * 128, 256) + 2 * conv(3, 256, 256) + conv(3, 256, 1)


def cifar_resnet50():
    total, c = conv(3, 3, 16, bias=False) + 2 * 16, 16
    for planes, n in ((32, 3), (64, 4), (128, 6), (256, 3)):  # strides change no parameter count
        out = planes * 4
        for i in range(n):
            total += conv(1, c, planes, False) + conv(3, planes, planes, False) + conv(1, planes, out, False) \
                + 2 * (planes + planes + out)
            if i == 0:
                total += conv(1, c, out, False) + 2 * out
            c = out
    return total + fc(c, 10)


ALEXNET = conv(11, 3, 96) + conv(5, 96, 256) + conv(3, 256, 384) + conv(3, 384, 384) + conv(3, 384, 256) \
    + fc(9216, 4096) + fc(4096, 4096) + fc(4096, 1000)

EXPECTED = {
    "alexnet": ALEXNET,
    "alexnet_tv": 61_100_840,  # torchvision's published count
    "vgg16": vgg(D), "vgg16_bn": vgg(D, bn=True), "se_vgg16_bn": vgg(D, bn=True, se=True),
    "vgg11": vgg([64, 128, 256, 256, 512, 512, 512, 512]),
    "vgg16_c": vgg([64, 64, 128, 128, 256, 256, "1x1-256", 512, 512, "1x1-512", 512, 512, "1x1-512"]),
    "vgg19": vgg([64, 64, 128, 128, 256, 256, 256, 256] + [512] * 8),
    "resnet18": resnet(18), "resnet34": resnet(34), "resnet50": resnet(50), "resnet101": resnet(101),
    "resnet152": resnet(152), "resnet50_tv": resnet(50),
    "se_resnet50": resnet(50, se=True), "se_resnet152": resnet(152, se=True),
    "resnext50_32x4d": resnet(50, 32, 4), "se_resnext101_32x4d": resnet(101, 32, 4, se=True),
    "densenet121": densenet((6, 12, 24, 16)), "densenet169": densenet((6, 12, 32, 32)),
    "densenet201": densenet((6, 12, 48, 32)), "densenet264": densenet((6, 12, 64, 48)),
    "vdsr": 9 * 64 + 18 * 9 * 64 * 64 + 9 * 64,
    "bn_inception": bn_inception(), "se_bn_inception": bn_inception(se=True),
    "srdensenet": srdensenet(), "resnet50_cifar": cifar_resnet50(),
    "vgg16_cifar": sum(conv(3, a, b) for a, b in zip([3, 32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 512, 512],
                                                      [32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 512, 512, 512]))
    + fc(512 * 4 * 4, 4096) + fc(4096, 4096) + fc(4096, 10),
}
PUBLISHED = {"resnet18": 11_689_512, "resnet50": 25_557_032, "densenet121": 7_978_856, "vgg16": 138_357_544,
             "resnext50_32x4d": 25_028_904, "se_resnet50": 28_088_024,
             "inception_resnet_v2": 55_843_464}  # torchvision's and timm's published counts


@pytest.mark.parametrize("name", EXPECTED)
def test_parameters_equal_independent_arithmetic(name):
    assert analyse(REGISTRY.get(name)).totals.params == EXPECTED[name]


@pytest.mark.parametrize("name", PUBLISHED)
def test_parameters_equal_published_counts(name):
    assert EXPECTED.get(name, PUBLISHED[name]) == PUBLISHED[name] == analyse(REGISTRY.get(name)).totals.params


def test_googlenet_parameters_with_and_without_the_aux_heads():
    main, aux = googlenet()
    assert analyse(REGISTRY.get("googlenet")).totals.params == main  # the inference network
    a = analyse(REGISTRY.get("googlenet"), overrides={"aux_logits": True})
    assert a.totals.params == main + aux
    assert sum(r.params for r in a.records) == main  # what runs at inference


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_entry_builds_on_meta(name):
    entry = REGISTRY.get(name)
    a = analyse(entry)
    assert a.totals.params > 0 and a.totals.macs > 0 and a.records
    assert a.input_shape == (1, *entry.default_input)


def test_torchvision_resnet50_differs_from_the_paper_by_the_stride():
    paper, tv = analyse(REGISTRY.get("resnet50")), analyse(REGISTRY.get("resnet50_tv"))
    assert paper.totals.params == tv.totals.params
    assert (paper.totals.macs, tv.totals.macs) == (3_857_973_248, 4_089_184_256)
    first = {r.name: r for r in paper.records}
    assert first["layer2.0.conv1"].formulas["output"] == "floor((56 + 2*0 - 1)/2) + 1 = floor(27.5) + 1 = 28"


def test_family_knobs_from_the_command_line():
    eight = analyse(REGISTRY.get("se_resnet50"), overrides={"reduction": 8})
    assert eight.totals.params == resnet(50, se=True, r=8) == 30_603_912
    mixes = {kind: analyse(REGISTRY.get("se_resnet18"), overrides={"attention": kind}).totals
             for kind in ("se", "mul_then_fc", "add_then_fc", "fc_then_mul", "fc_then_add")}
    assert len({t.params for t in mixes.values()}) == 1  # one shared excitation MLP in every kind
    assert mixes["fc_then_add"].macs == 2 * mixes["se"].macs - analyse(REGISTRY.get("resnet18")).totals.macs
    ten = analyse(REGISTRY.get("densenet121"), overrides={"num_classes": 10})
    assert ten.output_shapes == ((1, 10),)


@pytest.mark.parametrize("overrides,message", [
    ({"colour": 3}, "has no argument 'colour'; it takes: depth, num_classes"),
    ({"reduction": "x"}, "must be int like its default 16"),
    ({"attention": "sideways"}, "attention kind must be one of se, mul_then_fc"),
    ({"depth": 77}, "depth must be one of 18, 34, 50, 101, 152"),
])
def test_bad_family_knobs_are_refused(overrides, message):
    with pytest.raises(InputError, match=message):
        analyse(REGISTRY.get("se_resnet50"), overrides=overrides)


def test_the_seed_custom_vgg_cannot_run_with_its_printed_classifier():
    working = analyse(REGISTRY.get("vgg_custom_cifar"))
    assert next(r for r in working.records if r.name == "classifier.0").input_shapes == ((1, 4096),)
    from archcalc.errors import ForwardError

    with pytest.raises(ForwardError, match=r"classifier\.0 \(Linear\)"):
        analyse(REGISTRY.get("vgg_custom_cifar"), overrides={"classifier_in": 512 * 4 * 4})
