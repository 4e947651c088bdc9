"""--plot: the picture is written and opens; a clear message without matplotlib or with a bad name."""

import sys
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("matplotlib")


def test_compare_plot_is_a_png_that_opens(cli, tmp_path):
    from matplotlib.image import imread

    target = tmp_path / "compare.png"
    run = cli("compare", "vgg_base", "vgg_skip", "vgg_dense", "vgg_ca", "--plot", target)
    assert run.code == 0 and f"wrote {target}" in run.err
    image = imread(target)
    assert image.shape[0] > 200 and image.shape[1] > 300


def test_summary_plot_is_an_svg_with_one_bar_per_counted_layer(cli, tmp_path):
    target = tmp_path / "layers.svg"
    assert cli("summary", "cnnet", "--plot", target).code == 0
    root = ET.parse(target).getroot()
    assert root.tag.endswith("svg")
    text = target.read_text()
    for layer in ("conv1", "conv2", "fc1"):
        assert f"{layer}" in text


def test_plot_errors_are_one_line(cli, tmp_path, monkeypatch):
    bad = cli("summary", "cnnet", "--plot", tmp_path / "layers.gif")
    assert bad.code == 1 and "use a .png, .svg or .pdf" in bad.err
    unwritable = tmp_path / ("x" * 300 + ".png")  # a name longer than any file system takes
    failed = cli("summary", "cnnet", "--plot", unwritable)
    assert failed.code == 1 and f"cannot write --plot '{unwritable}'" in failed.err
    assert len(failed.err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    absent = cli("compare", "cnnet", "lenet5", "--plot", tmp_path / "x.png")
    assert absent.code == 1 and "pip install 'archcalc[plot]'" in absent.err
