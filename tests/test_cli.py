"""The command line: the JSON contract, formats and files, exit codes and one-line errors."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from archcalc.analysis.engine import analyse
from archcalc.models.catalog import REGISTRY

VIEWS = ("shapes", "params", "flops", "summary")
TOTAL_KEYS = {"params", "trainable_params", "macs", "flops", "param_bytes", "activation_bytes"}
LAYER_KEYS = {"name", "type", "input_shapes", "output_shape", "params", "macs", "flops", "activation_bytes", "formulas"}


def test_every_view_prints_the_same_json_object(cli):
    objects = [cli(view, "vgg_ca", "--format", "json").json() for view in VIEWS]
    assert all(o == objects[0] for o in objects)
    o = objects[0]
    assert {"model", "input_shape", "device", "dtype", "conventions", "totals", "layers", "not_counted"} <= set(o)
    assert o["input_shape"] == [1, 3, 32, 32] and o["device"] == "cpu" and o["dtype"] == "float32"  # auto: small
    assert o["notes"][0].startswith("device auto: the CPU (")
    assert TOTAL_KEYS <= set(o["totals"])
    assert all(LAYER_KEYS <= set(layer) for layer in o["layers"])
    assert {"macs", "flops"} <= set(o["conventions"])
    expected = analyse(REGISTRY.get("vgg_ca")).totals
    assert o["totals"]["macs"] == expected.macs and o["totals"]["flops"] == 2 * expected.macs
    mul = next(layer for layer in o["layers"] if layer["type"] == "mul")
    assert mul["input_shapes"] == [[1, 64, 16, 16], [1, 64, 16, 16]] and mul["output_shape"] == [1, 64, 16, 16]


def test_json_totals_add_up_and_keep_exact_integers(cli):
    o = cli("summary", "vgg_skip", "--batch", "100000", "--input", "3x32x32", "-f", "json").json()
    assert o["input_shape"] == [100000, 3, 32, 32]
    assert sum(layer["macs"] for layer in o["layers"]) == o["totals"]["macs"]
    assert o["totals"]["macs"] == 100000 * analyse(REGISTRY.get("vgg_skip")).totals.macs


def test_lenet5_params_table_shows_the_slide_arithmetic(cli):
    run = cli("params", "lenet5")
    assert run.code == 0
    for text in ("(5*5*1 + 1)*6 = 156", "(1 + 1)*6 = 12", "(5*5*16 + 1)*120 = 48,120", "(120 + 1)*84 = 10,164",
                 "(5*5*3 + 1)*6 + (5*5*4 + 1)*9 + (5*5*6 + 1)*1 = 1,516", "trainable 60,000"):
        assert text in run.out


def test_shapes_table_names_the_rule_and_the_convention(cli):
    run = cli("shapes", "vgg_dense")
    assert run.code == 0
    assert "(32 + 2*1 - 3)/1 + 1 = 32" in run.out and "channels: 35 + 64 = 99" in run.out
    assert "FLOPs = 2 x MACs" in run.out


def test_csv_and_markdown(cli):
    rows = list(csv.DictReader(io.StringIO(cli("flops", "cnnet", "--format", "csv").out)))
    conv1 = next(r for r in rows if r["Layer"] == "conv1")
    assert int(conv1["MACs"]) == 32 * 30 * 30 * 27 and int(conv1["FLOPs (2xMACs)"]) == 2 * 32 * 30 * 30 * 27
    md = cli("summary", "cnnet", "--format", "md").out
    assert md.startswith("## cnnet: summary") and "| conv1 | Conv2d |" in md


def test_output_file_takes_its_format_from_the_suffix(cli, tmp_path):
    target = tmp_path / "vgg.json"
    run = cli("summary", "vgg_base", "--output", target)
    assert run.code == 0 and run.out == "" and "wrote" in run.err
    assert json.loads(target.read_text())["model"] == "vgg_base"
    cli("shapes", "cnnet", "-o", tmp_path / "cnnet.csv")
    assert (tmp_path / "cnnet.csv").read_text().startswith("Layer,Type,")
    cli("params", "lenet5", "-o", tmp_path / "lenet.md")
    assert "(5*5*1 + 1)*6 = 156" in (tmp_path / "lenet.md").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_outsize_and_bottleneck_json(cli):
    o = cli("outsize", "7", "3", "--format", "json").json()
    assert (o["output"], o["exact"], o["input"], o["kernel"], o["stride"]) == (5, True, 7, 3, 1)
    assert cli("outsize", "7", "3", "--stride", "2", "-f", "json").json()["output"] == 3
    floor = cli("outsize", "32", "3", "--stride", "2", "-f", "json").json()
    assert (floor["output"], floor["exact"]) == (15, False) and "floor(14.5)" in floor["formula"]
    b = cli("bottleneck", "480", "16", "48", "--format", "json").json()
    assert b["direct"]["memory"] == 585456 and b["direct"]["mults"] == 112896000
    assert b["bottleneck"]["memory"] == 39488 and b["bottleneck"]["mults"] == 5268480
    assert set(b["direct"]) >= {"params", "activations", "memory", "mults"}
    assert set(b["ratio"]) == {"memory", "mults"}


def test_bottleneck_table_shows_every_term(cli):
    out = cli("bottleneck", "480", "16", "48").out
    for text in ("[(5*5*480) + 1]*48 + 14*14*48", "585,456", "112,896,000", "112.9M", "39,488", "5,268,480",
                 "5.3M", "(14*14*16)*(1*1*480) + (14*14*48)*(5*5*16)", "21.43x"):
        assert text in out


@pytest.mark.parametrize("args,code,message", [
    (("shapes", "vgg_dens"), 1, "unknown model 'vgg_dens' (closest: vgg_dense"),
    (("shapes", "cnnet", "--input", "3x32"), 1, None),
    (("shapes", "cnnet", "--input", "abc"), 1, "--input 'abc' is not a size"),
    (("shapes", "cnnet", "--input", "3x0x32"), 1, "zero size"),
    (("shapes", "cnnet", "--input", "-3x32x32"), 1, "is not a size"),
    (("shapes", "cnnet", "--input", "3x٣x32"), 1, "is not a size"),
    (("shapes", "cnnet", "--input", ""), 1, "is not a size"),
    (("shapes", "cnnet", "--device", "tpu"), 1, "unknown device 'tpu'"),
    (("shapes", "cnnet", "--dtype", "float8"), 1, "unknown dtype 'float8'"),
    (("shapes", "cnnet", "--format", "xml"), 1, "unknown format 'xml'"),
    (("shapes", "cnnet", "--output", "x.xyz"), 1, "cannot tell the format"),
    (("shapes", "cnnet", "--output", "/no/such/dir/x.json"), 1, "does not exist"),
    (("shapes", "cnnet", "--batch", "0"), 2, "--batch"),
    (("shapes", "cnnet", "--batch", "many"), 2, "--batch"),
    (("shapes", "cnnet", "--depth", "0"), 2, "--depth"),
    (("shapes", "cnnet", "--input", "3x8x8"), 1, "in conv2 (Conv2d) receiving 1x32x3x3"),
    (("outsize", "3", "7"), 1, "kernel 7 is larger than the padded input 3 + 2*0 = 3"),
    (("outsize", "7", "3", "--stride", "0"), 1, "stride must be >= 1"),
    (("outsize", "7", "x"), 2, "Invalid value"),
    (("bottleneck", "480", "0", "48"), 1, "C_MID must be a positive integer"),
    (("bottleneck", "480", "16"), 2, "Missing argument"),
    (("bottleneck", "480", "-16", "48"), 2, "-16 reads as an option: a negative number"),  # (not "No such option: -1")
    (("outsize", "7", "-3"), 2, "-3 reads as an option"),
    (("nosuch",), 2, "No such command"),
    (("shapes", "cnnet", "--bogus"), 2, "No such option"),
])
def test_bad_input_is_one_line_on_stderr(cli, args, code, message):
    run = cli(*args)
    assert run.code == code
    assert run.out == "" or "the forward pass stopped here" in run.out  # the layers that ran, then the error
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archcalc: error: ")
    assert "Traceback" not in run.err
    if message:
        assert message in lines[0]


def test_cuda_refused_cleanly_without_a_gpu(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = cli("summary", "cnnet", "--device", "cuda")
    assert run.code == 1 and "CUDA is not available" in run.err


def test_debug_flag_gives_the_traceback():
    from archcalc.cli.app import main
    from archcalc.errors import InputError

    with pytest.raises(InputError):
        main(["--debug", "shapes", "vgg_dens"])


def test_models_lists_the_registry(cli):
    o = cli("models", "--format", "json").json()
    names = [m["name"] for m in o["models"]]
    assert names[:4] == ["lenet5", "cnnet", "vgg_base", "vgg_skip"]
    assert {"vgg_dense", "vgg_ca", "vgg_skip_dense_ca"} <= set(names)
    assert all(m["input"] and m["source"] and m["description"] for m in o["models"])


def _modules_loaded(*args: str) -> set[str]:
    code = (
        "import sys\n"
        "from archcalc.cli.app import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED:', *(m for m in ('torch', 'pandas', 'numpy', 'fvcore', 'torchinfo') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "120"})
    marker = next(line for line in done.stdout.splitlines() if line.startswith("LOADED:"))
    return set(marker.split()[1:])


@pytest.mark.parametrize("args", [("outsize", "7", "3"), ("bottleneck", "480", "16", "48"), ("--help",),
                                  ("outsize", "3", "7")])
def test_arithmetic_commands_import_no_torch(args):
    assert _modules_loaded(*args) == set()


def test_console_script_and_module_entry_points():
    done = subprocess.run([sys.executable, "-m", "archcalc", "outsize", "7", "3", "-f", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["output"] == 5


def test_existing_output_is_replaced_only_with_force(cli, tmp_path):
    target = tmp_path / "out.json"
    target.write_text("keep me")
    refused = cli("summary", "cnnet", "-o", target)
    assert refused.code == 1 and "exists; add --force to replace it" in refused.err
    assert target.read_text() == "keep me"
    assert cli("summary", "cnnet", "-o", target, "--force").code == 0
    assert json.loads(target.read_text())["model"] == "cnnet"


def test_version(cli):
    from archcalc import __version__

    run = cli("--version")
    assert run.code == 0 and run.out == f"archcalc {__version__}\n"


def test_an_own_package_from_the_current_folder(cli, tmp_path, monkeypatch):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(
        "from torch import nn\n\ndef build(num_classes=10):\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))\n")
    monkeypatch.chdir(tmp_path)
    data = cli("params", "mypkg.models:build", "--input", "3x2x2", "--arg", "num_classes=5", "-f", "json").json()
    assert data["totals"]["params"] == 13 * 5
    missing = cli("params", "nopkg.models:build", "--input", "3x2x2")
    assert missing.code == 1 and "nopkg.models:build: no module named 'nopkg' in the current folder" in missing.err


def test_the_command_lines_size_shorthands_stay_its_own(cli):
    """--input is the size without the batch, and may be HxW or one number (a square) with the model's channels;
    the Python API's input_size, a full shape, may not: (3, 32, 32) there would be read as a batch of 3."""
    import archcalc
    from archcalc.errors import InputError

    assert cli("shapes", "cnnet", "--input", "64", "--batch", "3", "-f", "json").json()["input_shape"] == [3, 3, 64, 64]
    assert cli("shapes", "cnnet", "--input", "40x48", "-f", "json").json()["input_shape"] == [1, 3, 40, 48]
    with pytest.raises(InputError, match="is the full shape with the batch first"):  # (after the commands, as before)
        archcalc.analyze("cnnet", (3, 64, 64))


@pytest.mark.parametrize("args,message", [
    (("params", "net.py"), "no file 'net.py' in "),
    (("memory", "cnnet", "--measure", "gpu"), "unknown --measure 'gpu'; use cpu or cuda"),
    (("memory", "cnnet", "--measure", "auto"), "unknown --measure 'auto'; use cpu or cuda"),
    (("roofline", "vgg_base", "--time", "gpu"), "unknown --time 'gpu'; use cpu or cuda"),
    (("time", "cnnet", "--device", "gpu"), "unknown --device 'gpu'; use cpu, cuda or auto"),
    (("roofline", "vgg_base", "--peak-gflops", "100", "--peak-gbs", "20", "--measure", "cpu"),
     "give the peaks (--peak-gflops and --peak-gbs) or --measure them, not both"),
    (("flops", "cnnet", "--plot", "macs.jpg"), "--plot 'macs.jpg': use a .png, .svg or .pdf file name"),
    (("shapes", "cnnet", "--input", "3x224"), "did you mean --input 3x224x224?"),
])
def test_newcomers_mistakes_get_one_line_naming_what_to_type(cli, args, message):
    run = cli(*args)
    assert run.code == 1 and len(run.err.strip().splitlines()) == 1 and message in run.err
    assert "Traceback" not in run.err and "internal error" not in run.err


_NET = "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
       "        self.fc = nn.Linear(4, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n"


def test_an_error_names_an_option_as_each_front_end_gives_it(cli, tmp_path, monkeypatch):
    """The same mistake, said in the caller's words: the command line's flags and sizes without the batch, Python's
    keywords and full shapes (errors.COMMAND_LINE, which main sets); a row's note is worded in the same way."""
    import archcalc
    from archcalc.errors import InputError
    from archcalc.formulas.bottleneck import compare as bottleneck

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(_NET)
    said = [  # (the command line's arguments, its error; the Python call, its error)
        (("shapes", "cnnet", "--input", "1x3x32x32"),
         "--input 1x3x32x32 does not fit this model's input 3x32x32; give 3 sizes (CxHxW), HxW or one number",
         lambda: archcalc.analyze("cnnet", (1, 1, 3, 32, 32)),
         "input_size=(1, 1, 3, 32, 32) does not fit this model's input (1, 3, 32, 32); give 4 sizes, the batch first"),
        (("shapes", "net.py:Net"), "give the input size of net.py:Net with --input, without the batch (e.g. 3x224x224, "
                                   "784 or 1x16000)",
         lambda: archcalc.analyze("net.py:Net"),
         "give the input size of net.py:Net with input_size, the full shape with the batch first (e.g. (1, 3, 224, "
         "224), (1, 784) or (1, 1, 16000))"),
        (("time", "cnnet", "--device", "meta"),
         "the meta device has no time to measure; use --device cpu, cuda or auto",
         lambda: archcalc.time("cnnet", device="meta"),
         "the meta device has no time to measure; use device='cpu', 'cuda' or 'auto'"),
        (("params", "se_resnet50", "--arg", "reduction=x"), "--arg reduction=x for se_resnet50 must be int",
         lambda: archcalc.analyze("se_resnet50", args={"reduction": "x"}),
         "args={'reduction': 'x'} for se_resnet50 must be int"),
        (("shapes", "vit_b_16", "--input", "160"), "give --arg image_size=160 for 160x160",
         lambda: archcalc.analyze("vit_b_16", (1, 3, 160, 160)), "give args={'image_size': 160} for 160x160"),
        (("memory", "cnnet", "--amp", "float16", "--dtype", "bfloat16"),
         "--amp float16 runs a float32 model's forward in float16; drop --dtype bfloat16",
         lambda: archcalc.memory("cnnet", amp="float16", dtype="bfloat16"),
         "amp='float16' runs a float32 model's forward in float16; drop dtype='bfloat16'"),
        (("bottleneck", "480", "0", "48"), "C_MID must be a positive integer, got 0",
         lambda: bottleneck(480, 0, 48), "c_mid must be a positive integer, got 0"),
        (("graph", "cnnet", "--output", "x.bmp"), "use a .svg or .dot name, or give --format svg|dot",
         lambda: archcalc.analyze("cnnet").graph("x.bmp"), "use a .svg or .dot name"),
    ]
    for args, command_line, call, python in said:
        run = cli(*args)
        assert run.code == 1 and command_line in run.err, (args, run.err)
        with pytest.raises(archcalc.ArchcalcError) as error:
            call()
        assert python in str(error.value) and "--" not in str(error.value), (python, str(error.value))
    with pytest.raises(InputError, match=r"^'cnnet@x': 'x' is not key=value; write a model's own arguments as "
                                         r"NAME@key=value"):
        archcalc.compare(["cnnet@x"])  # (a name's own arguments are not --arg, which the caller did not type)
    note = next(n for n in archcalc.analyze("cnnet", device="auto").notes if n.startswith("device auto"))
    assert "device='meta' gives the same counts" in note
    assert "--device meta gives the same counts" in " ".join(cli("shapes", "cnnet", "--device", "auto").out.split())


def test_a_file_without_its_models_name_is_answered_with_the_names_it_defines(cli, tmp_path, monkeypatch):
    """Read without running it (ast): its nn.Module classes first, then its other classes and functions."""
    (tmp_path / "net.py").write_text("from torch import nn\n\nclass Helper:\n    pass\n\ndef build():\n"
                                     "    return Tiny()\n\nclass Tiny(nn.Module):\n    pass\n\nclass _Hidden:\n"
                                     "    pass\n")
    monkeypatch.chdir(tmp_path)
    run = cli("params", "net.py")
    assert run.code == 1 and run.err.strip() == ("archcalc: error: 'net.py' is a file, not a model: name the class or "
                                                 "function in it as FILE.py:NAME, e.g. net.py:Tiny (it defines: Tiny, "
                                                 "Helper, build)")


def test_flops_by_type_sums_every_row_of_a_type(cli, tmp_path):
    """cnnet's two convolutions: 30*30*32 outputs x 3*3*3 and 12*12*64 x 4*4*32; its classifier 2304 x 10."""
    data = cli("flops", "cnnet", "--by", "type", "-f", "json").json()
    types = {t["type"]: t for t in data["types"]}
    conv = 30 * 30 * 32 * 27 + 12 * 12 * 64 * 4 * 4 * 32
    assert [t["type"] for t in data["types"]][:2] == ["Conv2d", "Linear"]  # (the largest MACs first)
    assert (types["Conv2d"]["calls"], types["Conv2d"]["macs"], types["Conv2d"]["flops"]) == (2, conv, 2 * conv)
    assert types["Conv2d"]["params"] == (3 * 3 * 3 + 1) * 32 + (4 * 4 * 32 + 1) * 64
    assert types["Linear"]["macs"] == 2304 * 10 and types["relu"]["elementwise"] == 30 * 30 * 32 + 12 * 12 * 64
    assert types["Conv2d"]["macs_share"] == conv / data["totals"]["macs"] and data["totals"]["macs"] == conv + 23040
    assert sum(t["macs_share"] for t in data["types"]) == pytest.approx(1)
    csv = cli("flops", "cnnet", "--by", "type", "-f", "csv").out.splitlines()
    assert csv[0] == "Type,Rows,Params,Fraction of params,MACs,Fraction of MACs,Element-wise ops,Activation bytes"
    assert csv[1].startswith(f"Conv2d,2,33728,{33728 / 56778},{conv},{conv / (conv + 23040)},")
    table = cli("params", "cnnet", "--by", "type").out
    assert "59.40%" in table and "99.58%" in table  # (33,728 of 56,778 parameters; 5,496,192 of 5,519,232 MACs)
    model = tmp_path / "odd.py"  # a type with a row not counted: no figure, and the share says so
    model.write_text("import torch\nfrom torch import nn\n\nclass Odd(nn.Module):\n    def __init__(self):\n"
                     "        super().__init__()\n        self.fc = nn.Linear(4, 4)\n\n    def forward(self, x):\n"
                     "        return torch.frexp(self.fc(x)).mantissa\n")
    odd = {t["type"]: t for t in cli("flops", f"{model}:Odd", "--input", "4", "--by", "type", "-f", "json")
           .json()["types"]}
    assert odd["frexp"]["not_counted"] == 1 and odd["Linear"]["macs"] == 16
    assert "(1 not counted)" in cli("flops", f"{model}:Odd", "--input", "4", "--by", "type").out
    for args, message in ((("shapes", "cnnet", "--by", "type"), "which shapes does not show"),
                          (("flops", "cnnet", "--by", "type", "--depth", "1"), "give one"),
                          (("flops", "cnnet", "--by", "module"), "unknown --by 'module'; use layer or type")):
        run = cli(*args)
        assert run.code == 1 and message in run.err


def test_files_in_the_way_are_one_line_errors(cli, tmp_path):
    afile, folder, existing = tmp_path / "afile", tmp_path / "d.png", tmp_path / "m.png"
    afile.write_text("x")
    folder.mkdir()
    existing.write_bytes(b"x")
    for args, message in ((("report", "--out", afile), "is a file; give a folder"),
                          (("flops", "cnnet", "--plot", folder), "is a folder; give a file name inside it"),
                          (("flops", "cnnet", "--plot", existing), "exists; add --force to replace it")):
        run = cli(*args)
        assert run.code == 1 and message in run.err and run.out == ""  # checked before any table is printed
    import torch

    if not torch.cuda.is_available():
        for args in (("memory", "cnnet", "--measure", "cuda"), ("roofline", "vgg_base", "--measure", "cuda")):
            run = cli(*args)
            assert run.code == 1 and "CUDA is not available on this machine; use --measure cpu" in run.err


def test_a_failed_forward_shows_the_view_asked_with_the_unrun_parameters_said(cli):
    run = cli("params", "vgg_custom_cifar", "--arg", "classifier_in=8192")
    assert run.code == 1 and "Trainable" in run.out  # the params view, not shapes
    assert "Params: 52,303,498 (trainable 52,303,498; 50,380,810 in layers that did not run)" in run.out
    data = json.loads(cli("flops", "vgg_custom_cifar", "--arg", "classifier_in=8192", "-f", "json").out)
    assert data["error"].startswith("forward pass of vgg_custom_cifar failed") and data["layers"]


def test_help_agrees_with_the_tool(cli):
    def words(*args) -> str:  # the help's text, its box and line breaks taken out
        return " ".join(cli(*args).out.replace("│", " ").split())

    flops = words("flops", "--help")
    assert "thop, ptflops, flop_counter" in flops and "pip install 'archcalc[plot]'" in flops
    assert "thop's, ptflops's" in words("reconcile", "--help") and "net.py:Net" in words("time", "--help")


def test_a_file_or_folder_that_cannot_be_written_is_one_line(cli, tmp_path):
    """A folder that cannot be made (under a file), a file that cannot be replaced (a folder of its name), a
    graph name whose suffix says no format: one line each, exit 1, the path as typed (no PosixPath(...))."""
    (tmp_path / "afile").write_text("x")
    blocked = tmp_path / "afile" / "set"
    (tmp_path / "set" / "questions.md").mkdir(parents=True)
    for args, message in (
            (("report", "--out", blocked), f"cannot make the folder '{blocked}'"),
            (("homework", "params", "--count", "2", "--out", blocked), f"cannot make the folder '{blocked}'"),
            (("homework", "params", "--count", "2", "--out", tmp_path / "set", "--force"),
             f"cannot write '{tmp_path / 'set' / 'questions.md'}'"),
            (("graph", "cnnet", "-o", tmp_path / "net.bmp"), "cannot tell the graph's format from")):
        run = cli(*args)
        assert run.code == 1 and message in run.err and len(run.err.strip().splitlines()) == 1, (args, run.err)
    assert not (tmp_path / "net.bmp").exists()
    assert cli("graph", "cnnet", "-o", tmp_path / "net.gv").code == 0
    assert (tmp_path / "net.gv").read_text().startswith("digraph")
