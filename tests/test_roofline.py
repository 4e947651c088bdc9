"""Roofline: bytes moved and intensity against hand arithmetic, the bound against given peaks."""

import pytest


def layer(data, name):
    return next(entry for entry in data["layers"] if entry["name"] == name)


def test_intensity_by_hand(cli):
    data = cli("roofline", "vgg_base", "--peak-gflops", "100", "--peak-gbs", "10", "-f", "json").json()
    conv = layer(data, "conv1_1")
    # 2 x (1*16*32*32)*(3*3*3) MACs + 16,384 bias adds; read 3x32x32 input + 448 weights, write 16x32x32
    assert conv["flops"] == 2 * 442_368 + 16_384
    assert conv["bytes"] == (3 * 32 * 32 + 448 + 16 * 32 * 32) * 4
    assert conv["intensity"] == pytest.approx(901_120 / 79_616)
    assert conv["bound"] == "compute" and conv["attainable_gflops"] == pytest.approx(100)
    relu = layer(data, "relu")  # one op per element: read and write 16x32x32 floats
    assert relu["intensity"] == pytest.approx(16_384 / (2 * 65_536))
    assert relu["bound"] == "memory" and relu["attainable_gflops"] == pytest.approx(relu["intensity"] * 10)
    fc1 = layer(data, "fc1")  # a batch-1 linear layer reads its 2M weights for 4M FLOPs: memory-bound
    assert fc1["bound"] == "memory" and fc1["intensity"] < 1
    assert all(entry["name"] != "reshape" for entry in data["layers"])  # views move nothing


def test_measured_peaks_and_layer_times_on_cpu(cli, tmp_path):
    run = cli("roofline", "cnnet", "--measure", "cpu", "--time", "cpu", "--plot", tmp_path / "roof.svg", "-f", "json")
    data = run.json()
    assert data["peak_gflops"] > 0.1 and data["peak_gbs"] > 0.1 and "matmul" in data["peaks_from"]
    conv = layer(data, "conv1")
    assert conv["time_ms"] > 0 and conv["achieved_gflops"] == pytest.approx(conv["flops"] / conv["time_ms"] / 1e6)
    assert (tmp_path / "roof.svg").read_text().lstrip().startswith("<?xml")


def test_roofline_argument_errors(cli):
    half = cli("roofline", "cnnet", "--peak-gflops", "100")
    assert half.code == 2 and "give both --peak-gflops and --peak-gbs" in half.err
    no_peaks = cli("roofline", "cnnet", "--plot", "x.png")
    assert no_peaks.code == 2 and "--plot needs the peaks" in no_peaks.err and no_peaks.out == ""


def test_a_language_model_of_token_ids(cli, tmp_path):
    """--input-dtype, as the other commands take it: the head's bytes are its input (16x32 float32), its weights and
    bias ((32 + 1)*1000 float32) and its output (16x1000 float32)."""
    from tests.test_conventions import LANGUAGE_MODEL

    path = tmp_path / "lm.py"
    path.write_text(LANGUAGE_MODEL)
    data = cli("roofline", f"{path}:LM", "--input", "16", "--input-dtype", "int64:1000", "-f", "json").json()
    head = next(layer for layer in data["layers"] if layer["name"] == "head")
    assert head["bytes"] == 4 * (16 * 32 + 33 * 1000 + 16 * 1000)
    assert head["flops"] == 2 * 16 * 32 * 1000 + 16 * 1000  # (2 x MACs + the bias's additions)
