"""Property-based tests: the formulas against PyTorch, random layer stacks against independent
counters, and random junk on the command line (a clean error, never a traceback or a wrong number)."""

import contextlib
import io
import json
import math

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archcalc.analysis.engine import analyse_module
from archcalc.cli.app import main
from archcalc.errors import InputError
from archcalc.formulas.outsize import conv_out_size

META = torch.device("meta")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(size=st.integers(1, 64), kernel=st.integers(1, 9), stride=st.integers(1, 5), padding=st.integers(0, 4),
       dilation=st.integers(1, 3))
def test_conv_output_size_equals_pytorch(size, kernel, stride, padding, dilation):
    x = torch.empty(1, 1, size, size, device=META)
    w = torch.empty(1, 1, kernel, kernel, device=META)
    try:
        expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1]
    except RuntimeError:
        expected = None
    try:
        got = conv_out_size(size, kernel, stride, padding, dilation).output
    except InputError:
        got = None
    assert got == expected


@FAST
@given(size=st.integers(1, 40), kernel=st.integers(1, 6), stride=st.integers(1, 4), padding=st.integers(0, 3),
       ceil=st.booleans())
def test_pool_output_size_equals_pytorch(size, kernel, stride, padding, ceil):
    if padding > kernel // 2:
        return  # PyTorch refuses pooling padding over half the kernel
    x = torch.empty(1, 1, size, size, device=META)
    try:
        expected = F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil).shape[-1]
    except RuntimeError:
        expected = None
    try:
        got = conv_out_size(size, kernel, stride, padding, 1, ceil).output
    except InputError:
        got = None
    assert got == expected


@st.composite
def stacks(draw):
    """A random, valid CNN: conv / BN / activation / pool layers, then flatten and a linear head."""
    channels, size = draw(st.integers(1, 8)), draw(st.integers(8, 24))
    layers, c, s = [], channels, size
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "relu", "maxpool", "avgpool"]))
        if kind == "conv":
            k = draw(st.sampled_from([1, 3, 5]))  # odd: padding k // 2 keeps the size
            groups = draw(st.sampled_from([1, c])) if c > 1 else 1
            out = groups * draw(st.integers(1, 4))
            layers.append(nn.Conv2d(c, out, k, padding=k // 2, groups=groups, bias=draw(st.booleans())))
            c = out
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(c))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif s >= 4:
            layers.append(nn.MaxPool2d(2) if kind == "maxpool" else nn.AvgPool2d(2))
            s //= 2
    layers += [nn.Flatten(), nn.Linear(c * s * s, draw(st.integers(1, 10)))]
    return nn.Sequential(*layers), (draw(st.integers(1, 3)), channels, size, size)


@settings(max_examples=40, deadline=None)
@given(stacks())
def test_random_stacks_params_and_flops_equal_independent_counts(stack):
    model, shape = stack
    model = model.to(META).eval()
    a = analyse_module(model, "random", shape, META, torch.float32)
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device=META))
    assert a.totals.flops == counter.get_total_flops()


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, err: str) -> None:
    assert "Traceback" not in err
    if code != 0:
        assert code in (1, 2)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("archcalc: error: ")


JUNK = st.one_of(
    st.integers(-10**12, 10**12).map(str), st.just(""), st.just("0"), st.just("-1"), st.just("1e9"),
    st.just("NaN"), st.text(max_size=12), st.sampled_from(["３", "٣", "x", "3x", "x3", "3xx3", "∞", "None"]),
)


@settings(max_examples=80, deadline=None)
@given(size=JUNK, kernel=JUNK, stride=JUNK)
def test_outsize_junk_is_refused_or_right(size, kernel, stride):
    code, out, err = run("outsize", size, kernel, "--stride", stride, "--format", "json")
    assert_clean(code, err)
    if code == 0:
        data = json.loads(out)
        i, k, s = int(size), int(kernel), int(stride)
        assert data["output"] == (i - k) // s + 1 >= 1


@settings(max_examples=60, deadline=None)
@given(c_in=JUNK, c_mid=JUNK, c_out=JUNK, size=JUNK)
def test_bottleneck_junk_is_refused_or_right(c_in, c_mid, c_out, size):
    code, out, err = run("bottleneck", c_in, c_mid, c_out, "--size", size, "--format", "json")
    assert_clean(code, err)
    if code == 0:
        data = json.loads(out)
        s, a, m, b = int(size), int(c_in), int(c_mid), int(c_out)
        assert data["direct"]["mults"] == (s * s * b) * (5 * 5 * a)
        assert data["bottleneck"]["mults"] == (s * s * m) * a + (s * s * b) * (5 * 5 * m)


@settings(max_examples=40, deadline=None)
@given(option=st.sampled_from(["--input", "--batch", "--device", "--dtype", "--format", "--depth", "--arg"]),
       value=JUNK)
def test_analysis_option_junk_is_a_clean_error(option, value):
    code, out, err = run("summary", "cnnet", option, value)
    assert_clean(code, err)


@settings(max_examples=200, deadline=None)
@given(base=st.integers(0, 10**6), slope=st.integers(0, 10**4), square=st.integers(0, 50),
       jumps=st.lists(st.tuples(st.integers(1, 5_000), st.integers(0, 10**6)), max_size=4),
       budget=st.integers(1, 10**8))
def test_the_largest_batch_is_the_one_brute_force_finds(base, slope, square, jumps, budget):
    """Any total that does not fall as the batch grows: the answer is exact, in a number of tries that
    stays logarithmic (an interpolation that does not halve the gap is followed by a bisection)."""
    from archcalc.training.fit import LARGEST, largest_batch

    def total(b):
        return base + slope * b + square * b * b + sum(size for at, size in jumps if b >= at)

    fit = largest_batch("m", total, budget)
    assert all(total(b) == bytes_ for b, bytes_ in fit.tried)
    if fit.batch == 0:
        assert total(1) > budget
    else:
        assert total(fit.batch) <= budget and (fit.batch == LARGEST or total(fit.batch + 1) > budget)
    assert len(fit.tried) <= 2 * math.log2(LARGEST) + 6


@settings(max_examples=200, deadline=None)
@given(base=st.integers(0, 10**6), slope=st.integers(1, 10**4), square=st.integers(0, 50),
       jumps=st.lists(st.tuples(st.integers(1, 5_000), st.integers(0, 10**6)), max_size=4),
       budget=st.integers(1, 10**8), predicted=st.integers(0, 10**5), aim=st.one_of(st.none(), st.integers(1, 10**5)),
       oom=st.booleans())
def test_confirming_finds_what_brute_force_finds(base, slope, square, jumps, budget, predicted, aim, oom):
    """Measured steps that grow with the batch, over the budget measured (the CPU) or out of memory (a GPU),
    from any prediction and any predicted slope: the largest batch that fits, beside one that does not."""
    from archcalc.training.fit import LARGEST, Run, confirm

    def total(b):
        return base + slope * b + square * b * b + sum(size for at, size in jumps if b >= at)

    c = confirm(lambda b: Run(b, None if oom and total(b) > budget else total(b)), budget, predicted, aim)
    ran = {r.batch for r in c.runs}
    if c.batch == 0:
        assert total(1) > budget and 1 in ran
    else:
        assert total(c.batch) <= budget < total(c.batch + 1) and {c.batch, c.batch + 1} <= ran
    assert len(c.runs) <= 2 * math.log2(LARGEST) + 8
