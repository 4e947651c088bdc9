"""The formulas against the lectures' hand arithmetic and against PyTorch itself."""

import pytest
import torch
import torch.nn.functional as F

from archcalc.errors import InputError
from archcalc.formulas.bottleneck import as_dict, compare
from archcalc.formulas.outsize import adaptive_window, conv_out_size
from archcalc.formulas.params import connection_table_params, conv_params, linear_params, per_map_params


def test_lecture_quiz():
    # 003: "Quiz1) input_size=7, kernel_size=3, stride=1 -> 5x5; Quiz2) stride=2 -> 3x3"
    assert conv_out_size(7, 3).output == 5
    assert conv_out_size(7, 3).formula == "(7 + 2*0 - 3)/1 + 1 = 5"
    assert conv_out_size(7, 3, stride=2).output == 3
    assert conv_out_size(7, 3, stride=2).formula == "(7 + 2*0 - 3)/2 + 1 = 3"


def test_padding_keeps_size_and_floor_is_shown():
    assert conv_out_size(32, 3, 1, 1).formula == "(32 + 2*1 - 3)/1 + 1 = 32"
    inexact = conv_out_size(32, 3, stride=2)
    assert (inexact.output, inexact.exact) == (15, False)
    assert inexact.formula == "floor((32 + 2*0 - 3)/2) + 1 = floor(14.5) + 1 = 15"
    # AlexNet CONV1 on 227: (227 - 11)/4 + 1 = 55; MAX POOL1 (55 - 3)/2 + 1 = 27
    assert conv_out_size(227, 11, 4).output == 55
    assert conv_out_size(55, 3, 2).output == 27


def test_dilation_and_ceil_mode_formulas():
    assert conv_out_size(32, 3, 1, 2, dilation=2).formula == "(32 + 2*2 - 2*(3 - 1) - 1)/1 + 1 = 32"
    assert conv_out_size(5, 2, 2, ceil_mode=True).formula == "ceil((5 + 2*0 - 2)/2) + 1 = ceil(1.5) + 1 = 3"


@pytest.mark.parametrize("size", range(1, 14))
@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (1, 1, 0, 1), (2, 2, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 2, 0, 1), (3, 3, 1, 1), (2, 2, 1, 2), (3, 2, 1, 2),
])
@pytest.mark.parametrize("ceil", [False, True])
def test_output_size_equals_pytorch_pooling(size, kernel, stride, padding, dilation, ceil):
    x = torch.zeros(1, 1, size, size)
    try:
        expected = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil).shape[-1]
    except RuntimeError:
        with pytest.raises(InputError):
            conv_out_size(size, kernel, stride, padding, dilation, ceil)
        return
    assert conv_out_size(size, kernel, stride, padding, dilation, ceil).output == expected


def test_bad_sizes_are_refused_with_the_fix():
    with pytest.raises(InputError, match="kernel 7 is larger than the padded input 3 \\+ 2\\*0 = 3"):
        conv_out_size(3, 7)
    for bad in ({"size": 0, "kernel": 3}, {"size": 7, "kernel": 3, "stride": 0}, {"size": 7, "kernel": 3, "padding": -1}):
        with pytest.raises(InputError):
            conv_out_size(**bad)


def test_adaptive_pooling_rule_of_the_slides():
    # 001: stride = in // out, kernel = in - (out - 1)*stride
    w = adaptive_window(14, 7)
    assert (w.stride, w.kernel) == (2, 2)
    assert w.formula == "stride = 14 // 7 = 2, kernel = 14 - (7 - 1)*2 = 2"
    gap = adaptive_window(7, 1)
    assert (gap.stride, gap.kernel, gap.window_total) == (7, 7, 7)


@pytest.mark.parametrize("size,out", [(10, 3), (7, 7), (13, 5), (5, 7)])
def test_adaptive_window_total_matches_pytorch(size, out):
    # The windows [floor(i*in/out), ceil((i+1)*in/out)) reproduce PyTorch's averages of 0..in-1,
    # so their sizes add up to the elements PyTorch reads.
    starts = [(i * size) // out for i in range(out)]
    ends = [-(-((i + 1) * size) // out) for i in range(out)]
    assert adaptive_window(size, out).window_total == sum(e - s for s, e in zip(starts, ends))
    x = torch.arange(size, dtype=torch.float64).view(1, 1, size)
    means = F.adaptive_avg_pool1d(x, out).flatten().tolist()
    assert means == pytest.approx([sum(range(s, e)) / (e - s) for s, e in zip(starts, ends)])


def test_lenet5_parameter_arithmetic_of_the_slide():
    # 002: C1 (5*5*1 + 1)*6 = 156, S2 (1 + 1)*6 = 12, S4 (1 + 1)*16 = 32, C5 (5*5*16 + 1)*120 = 48120,
    # F6 (120 + 1)*84 = 10164
    assert str(conv_params((5, 5), 1, 6)) == "(5*5*1 + 1)*6 = 156"
    assert per_map_params(6, ("w", "b")).value == 12
    assert per_map_params(16, ("w", "b")).value == 32
    assert str(conv_params((5, 5), 16, 120)) == "(5*5*16 + 1)*120 = 48,120"
    assert str(linear_params(120, 84)) == "(120 + 1)*84 = 10,164"
    c3 = connection_table_params((5, 5), [3] * 6 + [4] * 9 + [6])
    assert c3.value == 1516
    assert c3.text == "(5*5*3 + 1)*6 + (5*5*4 + 1)*9 + (5*5*6 + 1)*1"


def test_grouped_convolution_parameters():
    assert conv_params((3, 3), 32, 64, groups=32, bias=False).value == 3 * 3 * 1 * 64


def test_bottleneck_of_the_lecture():
    # 002: direct [(5*5*480)+1]*48 + 14*14*48, (14*14*48)*(5*5*480) ~ 112.9M;
    # bottleneck [(1*1*480)+1]*16 + [(5*5*16)+1]*48 + 14*14*16 + 14*14*48, ~5.3M
    result = as_dict(compare(480, 16, 48))
    assert result["direct"] == {**result["direct"], "params": 576048, "activations": 9408,
                                "memory": 585456, "mults": 112896000}
    assert result["bottleneck"]["memory"] == 39488
    assert result["bottleneck"]["mults"] == 5268480
    assert result["direct"]["formulas"]["memory"] == "[(5*5*480) + 1]*48 + 14*14*48 = 576,048 + 9,408 = 585,456"
    assert result["bottleneck"]["formulas"]["mults"] == (
        "(14*14*16)*(1*1*480) + (14*14*48)*(5*5*16) = 1,505,280 + 3,763,200 = 5,268,480")
    assert result["ratio"]["mults"] == pytest.approx(112896000 / 5268480, rel=1e-4)
    assert result["ratio"]["memory"] == pytest.approx(585456 / 39488, rel=1e-4)


def test_bottleneck_matches_a_real_convolution():
    c = compare(64, 8, 32, size=7, kernel=3)
    direct = torch.nn.Conv2d(64, 32, 3, padding=1)
    assert as_dict(c)["direct"]["params"] == sum(p.numel() for p in direct.parameters())
    assert direct(torch.zeros(1, 64, 7, 7)).numel() == as_dict(c)["direct"]["activations"]
