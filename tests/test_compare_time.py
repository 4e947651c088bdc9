"""compare (arithmetic against the baseline) and time (structure of the measurement, not speed)."""

import pytest
import torch

from archcalc.analysis.compare import compare, totals_of
from archcalc.analysis.engine import analyse
from archcalc.errors import InputError
from archcalc.models.catalog import REGISTRY
from archcalc.timing.measure import Options, measure


def test_compare_arithmetic():
    rows = compare({"a": {"params": 100, "macs": 50}, "b": {"params": 150, "macs": 25}}, "a")
    assert rows[0].ratio == {"params": 1.0, "macs": 1.0} and rows[0].difference == {"params": 0, "macs": 0}
    assert rows[1].difference == {"params": 50, "macs": -25} and rows[1].ratio == {"params": 1.5, "macs": 0.5}
    with pytest.raises(InputError, match="baseline='c' is not among"):  # (in Python; `--baseline 'c'` in the CLI)
        compare({"a": {"params": 1}}, "c")


def test_compare_the_lab_experiment(cli):
    data = cli("compare", "vgg_base", "vgg_skip", "vgg_dense", "vgg_ca", "-f", "json").json()
    assert data["baseline"] == "vgg_base"
    assert [r["model"] for r in data["rows"]] == ["vgg_base", "vgg_skip", "vgg_dense", "vgg_ca"]
    skip = data["rows"][1]
    # The skip projections conv_skip1/2/3: (3*3*3+1)*32 + (3*3*32+1)*64 + (3*3*64+1)*256
    assert skip["difference"]["params"] == 896 + 18496 + 147712
    assert skip["ratio"]["macs"] == pytest.approx(skip["macs"] / data["rows"][0]["macs"])
    assert {"params", "macs", "flops", "param_bytes", "activation_bytes"} <= set(skip["ratio"])


def test_compare_se_cost(cli):
    data = cli("compare", "resnet50", "se_resnet50", "-f", "json").json()
    se = data["rows"][1]
    assert se["difference"]["params"] == 2_530_992  # the excitation FCs: about +2.5M
    assert se["difference"]["macs"] == totals_of(analyse(REGISTRY.get("se_resnet50")))["macs"] - 3_857_973_248
    table = cli("compare", "resnet50", "se_resnet50", "--baseline", "se_resnet50").out
    assert "Comparison against se_resnet50" in table and "-2,530,992" in table


def test_time_on_cpu_has_the_promised_structure(cli):
    data = cli("time", "cnnet", "--device", "cpu", "--repeat", "5", "--warmup", "1", "-f", "json").json()
    (result,) = data["results"]
    assert {"model", "device", "dtype", "batch", "input_shape", "runs", "median_ms", "iqr_ms", "min_ms", "max_ms",
            "images_per_s", "gflops_per_s"} <= set(result)
    assert result["runs"] == 5 == len(result["times_ms"])
    assert result["min_ms"] <= result["median_ms"] <= result["max_ms"]
    flops = analyse(REGISTRY.get("cnnet")).totals.flops
    assert result["gflops_per_s"] == pytest.approx(flops / (result["median_ms"] / 1000) / 1e9)
    assert result["images_per_s"] == pytest.approx(1 / (result["median_ms"] / 1000))


def test_time_goes_on_after_a_failing_model(cli):
    run = cli("time", "cnnet", "lenet5", "--input", "3x64x64", "--device", "cpu", "--repeat", "2", "-f", "json")
    assert run.code == 1
    results = {r["model"]: r for r in run.json()["results"]}
    assert "in fc1 (Linear) receiving 1x12544" in results["cnnet"]["error"]
    assert "lenet5" in results and len(run.err.strip().splitlines()) == 2


def test_time_refuses_what_does_not_fit():
    t = measure(REGISTRY.get("vgg16"), None, 100_000, "cpu", "float32", Options(repeat=1))
    assert t.runs == 0 and "does not fit" in t.error and t.error.endswith("smaller batch")  # (its keyword in Python)
    from archcalc.errors import COMMAND_LINE

    token = COMMAND_LINE.set(True)  # (as the command line runs it: its flag)
    try:
        assert measure(REGISTRY.get("vgg16"), None, 100_000, "cpu", "float32", Options(repeat=1)).error.endswith(
            "smaller --batch")
    finally:
        COMMAND_LINE.reset(token)


def test_time_options_threads_and_channels_last():
    before = torch.get_num_threads()
    t = measure(REGISTRY.get("vgg_base"), None, 2, "cpu", "float32",
                Options(warmup=0, repeat=3, threads=1, channels_last=True))
    assert t.runs == 3 and not t.error and torch.get_num_threads() == before


def test_time_without_cuda_is_one_clear_error(cli):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = cli("time", "cnnet", "--device", "cuda")
    assert run.code == 1 and "CUDA is not available" in run.err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_time_on_cuda():
    t = measure(REGISTRY.get("resnet18"), None, 8, "cuda", "float16", Options(warmup=2, repeat=5))
    assert not t.error and t.runs == 5 and t.device.startswith("cuda")


def test_compare_with_time_adds_measured_latency(cli):
    data = cli("compare", "cnnet", "vgg_base", "--time", "-f", "json").json()
    for row in data["rows"]:
        assert row["latency_ms"] > 0
    assert data["rows"][0]["ratio"]["latency_ms"] == 1.0


def test_min_time_keeps_timing():
    t = measure(REGISTRY.get("cnnet"), None, 1, "cpu", "float32", Options(warmup=0, repeat=1, min_time=0.2))
    # the loop ran for 0.2 s; most of it inside the timed calls (a loop stopping early would fail)
    assert t.runs > 1 and sum(t.times_ms) >= 100


def test_a_training_step_is_timed_with_the_training_flops():
    from archcalc.analysis.engine import analyse

    t = measure(REGISTRY.get("cnnet"), None, 4, "cpu", "float32",
                Options(warmup=1, repeat=3, training=True, optimizer="adam"))
    a = analyse(REGISTRY.get("cnnet"), batch=4, backward=True)
    assert not t.error and t.runs == 3
    assert t.flops == 2 * (a.totals.macs + a.totals.backward_macs) == 2 * 4 * (5_519_232 + 10_260_864)
    from archcalc.timing.measure import Timing, run_estimate

    seconds, text = run_estimate(Timing("vgg_base", "cpu", "float32", 100, (100, 3, 32, 32), (40.0, 50.0, 60.0)),
                                 50_000, 20)
    assert seconds == 500 * 20 * 0.050 == 500.0
    assert text == "vgg_base: ceil(50,000 / 100) = 500 steps an epoch x 20 epochs x 50.00 ms = 8.3 min (500 s)"


def test_the_training_step_leaves_the_weights_changed_and_the_forward_untouched():
    from archcalc.analysis.engine import build
    from archcalc.timing.measure import optimizer_for, training_step

    model = build(REGISTRY.get("cnnet"), torch.device("cpu"), torch.float32).train()
    before = model.fc1.weight.detach().clone()
    training_step(model, torch.randn(2, 3, 32, 32), optimizer_for(model.parameters(), "momentum"))()
    assert not torch.equal(before, model.fc1.weight) and model.fc1.weight.grad is not None


def test_the_training_step_under_autocast_runs_its_forward_in_low_precision():
    from archcalc.analysis.engine import build
    from archcalc.timing.measure import optimizer_for, training_step

    model = build(REGISTRY.get("cnnet"), torch.device("cpu"), torch.float32).train()
    seen = []
    model.fc1.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    training_step(model, torch.randn(2, 3, 32, 32), optimizer_for(model.parameters(), "sgd"), "bfloat16")()
    assert seen == [torch.bfloat16] and model.fc1.weight.grad.dtype == torch.float32


def test_time_with_amp_on_the_command_line(cli):
    data = cli("time", "cnnet", "--training", "--amp", "bfloat16", "--batch", "2", "--warmup", "0", "--repeat", "1",
               "-f", "json").json()
    assert data["results"][0]["runs"] == 1 and "under torch.autocast(bfloat16)" in data["method"]
    run = cli("time", "cnnet", "--amp", "fp8")
    assert run.code == 1 and "unknown --amp 'fp8'; use float16 or bfloat16" in run.err


def test_time_training_on_the_command_line(cli):
    data = cli("time", "cnnet", "--training", "--batch", "4", "--warmup", "0", "--repeat", "2",
               "--samples", "1000", "--epochs", "3", "-f", "json").json()
    (row,) = data["results"]
    assert data["step"] == "training" and row["runs"] == 2
    assert row["run_estimate_s"] == pytest.approx(250 * 3 * row["median_ms"] / 1000)
    table = cli("time", "cnnet", "--training", "--repeat", "2", "--warmup", "0", "--batch", "4",
                "--samples", "1000", "--epochs", "3").out
    assert "Training-step time" in table
    assert "Run estimate: cnnet: ceil(1,000 / 4) = 250 steps an epoch x 3 epochs" in table
    for extra, message in ((("--samples", "10"), "give both --samples and --epochs"),
                           (("--samples", "10", "--epochs", "2"), "add --training"),
                           (("--optimizer", "adam"), "add --training"),
                           (("--training", "--optimizer", "lbfgs"), "unknown optimizer 'lbfgs'")):
        run = cli("time", "cnnet", "--repeat", "1", *extra)
        assert run.code == 1 and message in run.err, extra


def test_compare_shows_the_ratio_and_its_csv_holds_numbers(cli):
    import csv
    import io

    table = cli("compare", "vgg_base", "vgg_skip").out
    assert "+167,104 (x1.0635)" in table and "x the ratio model / baseline" in table
    rows = list(csv.DictReader(io.StringIO(cli("compare", "vgg_base", "vgg_skip", "-f", "csv").out)))
    skip = rows[1]
    assert int(skip["Params difference"]) == 167_104 and float(skip["Params ratio"]) == round(2_800_522 / 2_633_418, 6)
    assert (int(rows[0]["MACs difference"]), float(rows[0]["MACs ratio"])) == (0, 1.0)


def test_one_models_own_arguments_and_arg_on_every_command(cli):
    data = cli("compare", "se_resnet50", "se_resnet50@reduction=8", "-f", "json").json()
    r16, r8 = data["rows"]
    assert (r16["model"], r8["model"]) == ("se_resnet50", "se_resnet50@reduction=8")
    # the excitation FCs of the 16 blocks: C*C/r + C/r + C/r*C + C, twice as many C*C/r weights at r = 8
    widths = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert r8["difference"]["params"] == sum(2 * c * c // 8 + c // 8 - 2 * c * c // 16 - c // 16 for c in widths)
    assert cli("memory", "se_resnet50", "--arg", "reduction=8", "-f", "json").json()["totals"]["params_bytes"] == (
        4 * r8["params"])
    bad = cli("time", "cnnet", "--arg", "bogus=1")
    assert bad.code == 1 and "cnnet has no argument 'bogus'; it takes: num_classes" in bad.err
    worse = cli("compare", "cnnet", "cnnet@")
    assert worse.code == 1 and "NAME@key=value" in worse.err
