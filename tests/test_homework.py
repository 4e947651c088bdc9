"""archcalc homework: every answers.csv row recomputed here from its own columns, by arithmetic written
independently of archcalc's formulas; the same seed gives the same bytes; bad options are one line; the
generator's own check (the layer rebuilt in PyTorch) catches a planted wrong formula."""

import csv
import html
import io
import math
import re

import pytest
import torch
from markdown_it import MarkdownIt

from archcalc.homework.generate import generate
from archcalc.homework.kinds import KINDS
from archcalc.homework.question import SelfCheckError
from archcalc.homework.write import FILES, answers_csv, questions_md

SEEDS = (0, 1, 7, 2026)


def _rows(kind: str, count: int, seed: int, level: int, lang: str = "en") -> list[dict]:
    return list(csv.DictReader(io.StringIO(answers_csv(generate(kind, count, seed, level, lang)))))


def _int(cell: str) -> int | None:
    return None if cell == "" else int(cell)


def _true(cell: str) -> bool:
    assert cell in ("true", "false", "")
    return cell == "true"


def _out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """PyTorch's output size (its docs' formula), with ceil_mode's rule for the last window."""
    span = d * (k - 1) + 1
    steps = (size + 2 * p - span + (s - 1 if ceil else 0)) // s
    if ceil and steps * s >= size + p:
        steps -= 1
    return steps + 1


def _params(layer: str, c_in: int, c_out: int, k: int | None, groups: int | None, bias: bool) -> int:
    if layer == "conv":
        return (k * k * (c_in // groups) + bias) * c_out
    if layer == "linear":
        return (c_in + bias) * c_out
    if layer == "batchnorm":
        return 2 * c_out
    assert layer in ("pool", "maxpool", "avgpool", "relu", "flatten")
    return 0


def _outsize(r: dict) -> None:
    size, k, s, p, d = (int(r[c]) for c in ("in", "k", "s", "p", "d"))
    out = _out(size, k, s, p, d, _true(r["ceil"]))
    assert int(r["out"]) == out
    if r["asked"] == "out":
        assert r["answer"] == f"{out}x{out}"
    else:
        assert r["answer"] == r[r["asked"]] and out == (size if r["asked"] == "p" else size // 2)


def _param_row(r: dict) -> None:
    value = _params(r["layer"], int(r["c_in"]), int(r["c_out"]), _int(r["k"]), _int(r["groups"]), _true(r["bias"]))
    assert int(r["params"]) == value and r["answer"] == str(value)


def _macs(r: dict) -> None:
    c_in, c_out = int(r["c_in"]), int(r["c_out"])
    if r["layer"] == "linear":
        assert int(r["macs"]) == c_in * c_out and r["answer"] == r["macs"]
        return
    size, k = int(r["in"]), int(r["k"])
    if r["layer"] == "conv":
        out = _out(size, k, int(r["s"]), int(r["p"]))
        assert int(r["out"]) == out
        assert int(r["macs"]) == out * out * c_out * k * k * c_in // int(r["groups"]) and r["answer"] == r["macs"]
        return
    direct = size * size * c_out * k * k * c_in  # the lecture's (14*14*48)*(5*5*480)
    if r["layer"] == "bottleneck":
        c_mid = int(r["c_mid"])
        reduced = size * size * c_mid * c_in + size * size * c_out * k * k * c_mid
    else:
        assert r["layer"] == "separable"
        reduced = size * size * c_in * k * k + size * size * c_out * c_in
    assert (int(r["direct"]), int(r["reduced"])) == (direct, reduced)
    assert float(r["ratio"]) == round(direct / reduced, 2)
    assert re.findall(r"[\d.]+", r["answer"].replace("1x1", "")) == [str(direct), str(reduced), r["ratio"]]


def _receptive(r: dict) -> None:
    rf, jump = 1, 1
    for i in range(1, int(r["n"]) + 1):
        k, s, d = int(r[f"k{i}"]), int(r[f"s{i}"]), int(r[f"d{i}"])
        rf, jump = rf + d * (k - 1) * jump, jump * s
    assert all(r[f"k{i}"] == "" for i in range(int(r["n"]) + 1, 7))
    assert (int(r["rf"]), int(r["jump"])) == (rf, jump)
    expected = {"rf": f"{rf}x{rf}", "rf jump": f"{rf}x{rf}, jump {jump}", "n": r["n"]}[r["asked"]]
    assert r["answer"] == expected


def _memory(r: dict) -> None:
    per = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}[r["dtype"]]
    assert int(r["bytes_per_element"]) == per
    size, elements = int(r["in"]), 0
    for i in range(1, int(r["n"]) + 1):
        size = _out(size, int(r[f"k{i}"]), int(r[f"s{i}"]), int(r[f"p{i}"]))
        assert int(r[f"out{i}"]) == size
        elements += int(r["batch"]) * int(r[f"c{i}"]) * size * size
    assert (int(r["elements"]), int(r["bytes"])) == (elements, elements * per) and r["answer"] == r["bytes"]


def _network(rows: list[dict]) -> None:
    by_net: dict[str, list[dict]] = {}
    for r in rows:
        by_net.setdefault(r["id"].split(".")[0], []).append(r)
    for net in by_net.values():
        layers, total = net[:-1], net[-1]
        assert total["id"].endswith(".total")
        for before, r in zip([None] + layers, layers):
            c_in, c_out, h_in = int(r["c_in"]), int(r["c_out"]), _int(r["h_in"])
            if before is not None:  # each row takes what the row before it made
                assert (c_in, h_in) == (int(before["c_out"]), _int(before["h_out"]))
            if r["layer"] in ("conv", "maxpool", "avgpool"):
                h_out = _out(h_in, int(r["k"]), int(r["s"]), int(r["p"]))
            elif r["layer"] == "flatten":
                assert c_out == c_in * h_in * h_in
                h_out = None
            else:
                h_out = None if r["layer"] == "linear" else h_in
            assert _int(r["h_out"]) == h_out
            params = _params(r["layer"], c_in, c_out, _int(r["k"]), _int(r["groups"]), _true(r["bias"]))
            macs = {"conv": (h_out or 0) ** 2 * c_out * (int(r["k"] or 0) ** 2) * c_in // int(r["groups"] or 1),
                    "linear": c_in * c_out}.get(r["layer"], 0)
            assert (int(r["params"]), int(r["macs"])) == (params, macs)
            shape = f"{c_out}" if h_out is None else f"{c_out}x{h_out}x{h_out}"
            assert r["answer"] == f"{shape}; {params}; {macs}"
        assert int(total["params"]) == sum(int(r["params"]) for r in layers)
        assert int(total["macs"]) == sum(int(r["macs"]) for r in layers)


def _recurrent(r: dict) -> None:
    """nn.RNN/GRU/LSTM: G gates, each W_ih (H x I), W_hh (H x H), b_ih and b_hh, per layer and direction."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[r["cell"]]
    h, directions = int(r["hidden"]), 2 if _true(r["bidirectional"]) else 1
    widths = [int(r["input_size"])] + [h * directions] * (int(r["layers"]) - 1)
    assert int(r["params"]) == sum(directions * gates * (h * w + h * h + 2 * h * _true(r["bias"])) for w in widths)
    if r["asked"] == "params":
        assert r["steps"] == r["macs"] == "" and r["answer"] == r["params"]
        return
    steps = int(r["steps"])  # every step multiplies each weight matrix by one vector
    assert int(r["macs"]) == sum(steps * directions * gates * h * (w + h) for w in widths) and r["answer"] == r["macs"]


def _attention(r: dict) -> None:
    """nn.MultiheadAttention: Q, K, V and output projections (E x E, E x kdim, E x vdim, E x E), biases of E."""
    e, kdim, vdim = int(r["embed"]), int(r["kdim"]), int(r["vdim"])
    assert e % int(r["heads"]) == 0
    assert int(r["params"]) == 2 * e * e + e * kdim + e * vdim + 4 * e * _true(r["bias"])
    if r["counted"] == "parameters":
        assert r["asked"] == "params" and r["answer"] == r["params"] and r["macs"] == ""
        return
    queries, keys = int(r["queries"]), int(r["keys"])
    scores = queries * keys * e  # Q Kᵀ over all heads: h*L*S*(E/h); P V as many
    macs = 2 * scores + (0 if r["counted"] == "attention" else 2 * queries * e * e + keys * (kdim + vdim) * e)
    assert r["asked"] == "macs" and int(r["macs"]) == macs and r["answer"] == r["macs"]


def _quantize(r: dict) -> None:
    """float32: 4 bytes a parameter (a BatchNorm's γ and β too); int8: 1 byte a weight, a float32 bias (a folded
    BatchNorm gives one), per channel a float64 scale and an int64 zero point."""
    c_in, c_out, k = int(r["c_in"]), int(r["c_out"]), _int(r["k"]) or 1
    bias, batchnorm = _true(r["bias"]), _true(r["batchnorm"])
    weights = k * k * c_in * c_out
    params = weights + c_out * bias + 2 * c_out * batchnorm
    int8 = weights + 4 * c_out * (bias or batchnorm) + 16 * c_out * (r["scheme"] == "per_channel")
    assert (int(r["weights"]), int(r["params"])) == (weights, params)
    assert (int(r["float32_bytes"]), int(r["int8_bytes"])) == (4 * params, int8)
    assert r["answer"] == f"{4 * params}; {int8}" and r["asked"] == "float32_bytes int8_bytes"


def _training(r: dict) -> None:
    """Parameters and gradients P*(bytes per element) each; the state: the optimizer's buffers, each P elements in
    the parameters' dtype (momentum, Nesterov, RMSprop, Adagrad 1, Adam and AdamW 2, plain SGD none), and a
    4-byte step counter per parameter tensor (all but SGD's); a weight and a bias a layer."""
    buffers = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1}
    bpe = {"float32": 4, "float16": 2, "bfloat16": 2}[r["dtype"]]
    p, layers, optimizer = int(r["params"]), int(r["layers"]), r["optimizer"]
    counters = 0 if optimizer in ("sgd", "momentum", "nesterov") else 2 * layers
    state = buffers[optimizer] * p * bpe + 4 * counters
    assert (int(r["bytes_per_element"]), int(r["tensors"]), int(r["buffers"]), int(r["counters"])) == (
        bpe, 2 * layers, buffers[optimizer], counters)
    assert (int(r["params_bytes"]), int(r["grads_bytes"]), int(r["state_bytes"])) == (p * bpe, p * bpe, state)
    assert int(r["total_bytes"]) == 2 * p * bpe + state
    assert r["answer"] == f"{p * bpe}; {p * bpe}; {state}; {2 * p * bpe + state}"
    assert r["asked"] == "params_bytes grads_bytes state_bytes total_bytes"


def _backward(r: dict) -> None:
    """∂x and ∂W as many MACs as the forward each; ∂W only where the layer trains, ∂x only where something before it
    trains (one layer: when it is not the network's first); the step is forward + backward."""
    forward, dx, dw = int(r["forward_macs"]), int(r["dx_macs"]), int(r["dw_macs"])
    layers, frozen, first = int(r["layers"]), int(r["frozen"]), _true(r["first"])
    assert int(r["backward_macs"]) == dx + dw and int(r["step_macs"]) == forward + dx + dw
    if layers == 1:
        assert (dx, dw) == (forward * (not first), forward * (frozen == 0))
    else:
        assert first and 0 <= frozen < layers and 0 <= dx < dw <= forward  # (∂x: the layers after the first trained)
        assert (dw == forward) == (frozen == 0)
    assert r["answer"] == f"{dx + dw}; {forward + dx + dw}" and r["asked"] == "backward_macs step_macs"


RECOMPUTE = {"outsize": _outsize, "params": _param_row, "macs": _macs, "receptive": _receptive, "memory": _memory,
             "recurrent": _recurrent, "attention": _attention, "quantize": _quantize, "training": _training,
             "backward": _backward}


@pytest.mark.parametrize("level", (1, 2, 3))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_answer_recomputed_from_its_columns(kind, level):
    for seed in SEEDS:
        rows = _rows(kind, 6 if kind == "network" else 25, seed, level)
        assert rows and all(r["kind"] == kind for r in rows)
        header = list(rows[0])
        assert header[:5] == ["id", "kind", "question", "answer", "arithmetic"]
        assert header[5:-1] == list(KINDS[kind].COLUMNS) and header[-1] == "asked"
        if kind == "network":
            _network(rows)
        else:
            assert [r["id"] for r in rows] == [str(i) for i in range(1, 26)]
            for r in rows:
                RECOMPUTE[kind](r)
                assert r["arithmetic"]


def test_the_levels_ask_what_they_say():
    outsize3 = _rows("outsize", 60, 3, 3)
    assert any(r["d"] != "1" for r in outsize3) and any(r["ceil"] == "true" for r in outsize3)
    assert {r["asked"] for r in _rows("outsize", 60, 3, 2)} == {"out", "p", "s"}
    assert {r["asked"] for r in _rows("outsize", 60, 3, 1)} == {"out"}
    level1 = _rows("outsize", 60, 3, 1)
    assert all((int(r["in"]) + 2 * int(r["p"]) - int(r["k"])) % int(r["s"]) == 0 for r in level1)  # exact
    params3 = _rows("params", 80, 3, 3)
    assert {r["layer"] for r in params3} == {"conv", "linear", "batchnorm", "pool"}
    assert any(r["groups"] not in ("", "1") and r["groups"] == r["c_in"] for r in params3)  # depthwise
    assert {r["layer"] for r in _rows("macs", 60, 3, 3)} == {"conv", "linear", "bottleneck", "separable"}
    assert any(r["d1"] not in ("", "1") or r["d2"] not in ("", "1") for r in _rows("receptive", 30, 3, 3))
    assert {r["dtype"] for r in _rows("memory", 40, 3, 2)} == {"float32", "float16", "bfloat16", "float64"}
    recurrent2 = _rows("recurrent", 60, 3, 2)
    assert {r["cell"] for r in recurrent2} == {"RNN", "GRU", "LSTM"} and {r["layers"] for r in recurrent2} == {"1", "2", "3"}
    assert {r["bidirectional"] for r in recurrent2} == {r["bias"] for r in recurrent2} == {"true", "false"}
    assert {r["asked"] for r in _rows("recurrent", 20, 3, 3)} == {"macs"}
    assert {r["counted"] for lv in (1, 2, 3) for r in _rows("attention", 20, 3, lv)} == {"parameters", "attention",
                                                                                          "forward"}
    attention3 = _rows("attention", 60, 3, 3)
    assert any(r["kdim"] != r["embed"] for r in attention3) and any(r["bias"] == "false" for r in attention3)
    assert {(r["optimizer"], r["dtype"], r["layers"]) for r in _rows("training", 20, 3, 1)} == {("momentum", "float32",
                                                                                                "1")}
    assert {r["optimizer"] for r in _rows("training", 60, 3, 2)} == {"sgd", "momentum", "nesterov", "adam", "adamw",
                                                                    "rmsprop", "adagrad"}
    training3 = _rows("training", 30, 3, 3)
    assert {r["optimizer"] for r in training3} == {"adam", "adamw"} and {r["dtype"] for r in training3} == {
        "float32", "float16", "bfloat16"} and {r["layers"] for r in training3} == {"2", "3", "4"}
    backward1 = _rows("backward", 30, 3, 1)
    assert {(r["layers"], r["batch"], r["frozen"]) for r in backward1} == {("1", "1", "0")}
    assert {r["first"] for r in backward1} == {"true", "false"}
    backward2 = _rows("backward", 40, 3, 2)
    assert {r["frozen"] for r in backward2} == {"0", "1"} and len({r["batch"] for r in backward2}) > 2
    backward3 = _rows("backward", 40, 3, 3)
    assert {r["layers"] for r in backward3} == {"2", "3", "4"} and {r["frozen"] for r in backward3} == {"0", "1", "2",
                                                                                                         "3"}


def test_the_lecture_s_own_numbers_are_questions_it_can_ask():
    """LeNet-5's C1 and the lecture's quiz are among the questions the rules can draw: the same arithmetic."""
    from archcalc.homework.layers import Layer

    assert str(Layer("conv", 1, 6, 5).params()) == "(5*5*1 + 1)*6 = 156"
    assert Layer("conv", 1, 1, 3, 2).out_size(7).output == 3
    assert Layer("conv", 480, 48, 5, p=2).macs(14) == (112_896_000, "(14*14*48)*(5*5*480) = 112,896,000")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_same_seed_gives_the_same_bytes(cli, kind, tmp_path):
    for name in ("a", "b"):
        run = cli("homework", kind, "--count", "4", "--seed", "11", "--level", "3", "--out", str(tmp_path / name))
        assert run.code == 0 and "every answer checked in PyTorch" in run.err
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    other = cli("homework", kind, "--count", "4", "--seed", "12", "--level", "3", "--out", str(tmp_path / "c"))
    different = (tmp_path / "c" / "answers.csv").read_bytes() != (tmp_path / "a" / "answers.csv").read_bytes()
    assert other.code == 0 and different


def test_questions_hold_no_answers_and_the_key_shows_the_working(tmp_path, cli):
    run = cli("homework", "params", "--count", "8", "--seed", "3", "--out", str(tmp_path))
    assert run.code == 0
    questions, answers = (tmp_path / "questions.md").read_text(), (tmp_path / "answers.md").read_text()
    rows = list(csv.DictReader(io.StringIO((tmp_path / "answers.csv").read_text())))
    assert len(rows) == 8 and "Answer" not in questions and answers.count("Answer: **") == 8
    for r in rows:
        assert f"Answer: **{r['answer']}**" in answers
    page = MarkdownIt("commonmark").enable("table").render(answers)  # the parser rich uses
    assert "<em>" not in page  # the arithmetic's '*' escaped, so markdown shows it instead of italics
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    for r in rows:
        assert all(line in shown for line in r["arithmetic"].split("; ")), r["arithmetic"]


def test_korean_sets_use_the_lectures_terms(cli, tmp_path):
    run = cli("homework", "params", "--count", "6", "--seed", "1", "--lang", "ko", "--out", str(tmp_path / "p"))
    assert run.code == 0
    text = (tmp_path / "p" / "answers.md").read_text()
    assert "훈련해야 할 파라미터 개수" in text and "답: **" in text and "풀이" in text
    assert re.search(r"가중치\\\*입력맵개수 \+ 바이어스", text)  # the lecture's (가중치*입력맵개수 + 바이어스)*특성맵개수
    english = _rows("params", 6, 1, 1)
    korean = _rows("params", 6, 1, 1, "ko")
    assert [r["params"] for r in english] == [r["params"] for r in korean]  # the same draw, in Korean
    assert "출력 크기" in questions_md(generate("outsize", 3, 1, 1, "ko"))


def test_a_network_s_pytorch_code_runs_and_gives_the_key_s_shapes():
    s = generate("network", 3, seed=5, level=3)
    code_blocks = re.findall(r"```python\n(.*?)```", questions_md(s), re.S)
    assert len(code_blocks) == 3
    for code, q in zip(code_blocks, s.questions):
        scope: dict = {}
        exec(code, scope)  # the student's code, as printed: builds the net and runs it on a random input
        net, y = scope["net"], scope["y"]
        assert tuple(y.shape) == (1, 10)
        x = torch.randn(1, q.layers[0].c_in, q.size, q.size)
        for row, layer in zip(q.rows, net):
            x = layer(x)
            n = row.numbers
            assert tuple(x.shape[1:]) == ((n["c_out"],) if n["h_out"] is None else (n["c_out"], n["h_out"], n["h_out"]))
            assert sum(p.numel() for p in layer.parameters()) == n["params"]


@pytest.mark.parametrize("args,message", [
    (("outsize", "--count", "0"), "--count must be a whole number from 1 to 500, got 0"),
    (("outsize", "--count", "-3"), "--count must be a whole number from 1 to 500, got -3"),
    (("outsize", "--count", "501"), "--count must be a whole number from 1 to 500"),
    (("volume",), "unknown homework kind 'volume'; use one of outsize, params, macs, receptive, memory, network, "
                  "attention, recurrent, quantize"),
    (("params", "--level", "4"), "--level must be 1, 2 or 3, got 4"),
    (("params", "--level", "0"), "--level must be 1, 2 or 3, got 0"),
    (("params", "--seed", "-1"), "--seed must be a whole number >= 0"),
    (("params", "--lang", "fr"), "--lang must be en or ko"),
    (("receptive", "--count", "400"), "different receptive questions at level 1; ask for --count"),
])
def test_bad_options_are_one_line(cli, tmp_path, args, message):
    run = cli("homework", *args, "--out", str(tmp_path / "set"))
    assert run.code == 1 and message in run.err and len(run.err.strip().splitlines()) == 1
    assert not (tmp_path / "set").exists()


def test_an_existing_set_is_kept_without_force(cli, tmp_path):
    assert cli("homework", "macs", "--count", "2", "--out", str(tmp_path)).code == 0
    again = cli("homework", "macs", "--count", "3", "--out", str(tmp_path))
    assert again.code == 1 and "add --force" in again.err
    assert cli("homework", "macs", "--count", "3", "--out", str(tmp_path), "--force").code == 0
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "answers.csv").read_text())))) == 3
    file = tmp_path / "answers.csv"
    run = cli("homework", "macs", "--out", str(file))
    assert run.code == 1 and "is a file; give a folder" in run.err


@pytest.mark.parametrize("target,wrong", [
    ("archcalc.formulas.outsize.conv_out_size", "out"),
    ("archcalc.formulas.params.conv_params", "params"),
    ("archcalc.formulas.params.linear_params", "params"),
    ("archcalc.formulas.params.per_map_params", "params"),
])
def test_the_self_check_catches_a_planted_wrong_formula(monkeypatch, target, wrong):
    """A formula off by one: the generator refuses to write the key, naming what PyTorch says instead."""
    import dataclasses
    import importlib

    module_name, name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    right = getattr(module, name)

    def off_by_one(*args, **kwargs):
        value = right(*args, **kwargs)
        field = "output" if hasattr(value, "output") else "value"
        return dataclasses.replace(value, **{field: getattr(value, field) + 1})

    monkeypatch.setattr(module, name, off_by_one)
    kind = "outsize" if wrong == "out" else "params"
    with pytest.raises(SelfCheckError, match="self-check failed on .* PyTorch"):
        generate(kind, 40, seed=1, level=2)


def test_a_planted_wrong_macs_or_receptive_formula_is_caught(monkeypatch):
    from archcalc.homework import layers
    from archcalc.homework.kinds import receptive

    right = layers.Layer.macs
    monkeypatch.setattr(layers.Layer, "macs", lambda self, out: (right(self, out)[0] * 2, right(self, out)[1]))
    with pytest.raises(SelfCheckError, match="flop counter"):
        generate("macs", 10, seed=1, level=1)
    with pytest.raises(SelfCheckError, match="MACs"):
        generate("network", 2, seed=1, level=1)
    monkeypatch.undo()
    field = receptive.field
    monkeypatch.setattr(receptive, "field", lambda stack: (field(stack)[0] + 2, *field(stack)[1:]))
    with pytest.raises(SelfCheckError, match="rf: the formula gives"):
        generate("receptive", 10, seed=1, level=2)


def test_a_planted_wrong_attention_or_recurrent_formula_is_caught(monkeypatch):
    """Their formulas against modules built in PyTorch and torch.utils.flop_counter's count."""
    from archcalc.formulas.terms import Term
    from archcalc.homework.kinds import attention, recurrent

    monkeypatch.setitem(recurrent.GATES, "GRU", 4)  # a GRU counted with an LSTM's gates
    with pytest.raises(SelfCheckError, match="params: the formula gives"):
        generate("recurrent", 40, seed=1, level=1)
    with pytest.raises(SelfCheckError, match="(params|macs): the formula gives"):
        generate("recurrent", 40, seed=1, level=3)
    monkeypatch.undo()
    monkeypatch.setattr(attention, "attention", lambda n: [Term(n["queries"] * n["keys"] * n["embed"], "QKᵀ only")])
    with pytest.raises(SelfCheckError, match="macs: the formula gives"):
        generate("attention", 10, seed=1, level=2)


def test_a_planted_wrong_training_memory_rule_is_caught(monkeypatch):
    """The state's rule against PyTorch's own optimizer after a step: Adam's step counters forgotten, or a
    float16 network's state taken as float32 (the bytes per element of the parameters misread)."""
    from archcalc.homework.kinds import training

    monkeypatch.setattr(training, "COUNTER", 0)
    with pytest.raises(SelfCheckError, match="state_bytes: the formula gives"):
        generate("training", 10, seed=1, level=3)
    monkeypatch.undo()
    monkeypatch.setitem(training.BYTES, "float16", 4)
    with pytest.raises(SelfCheckError, match="params_bytes: the formula gives"):
        generate("training", 20, seed=1, level=3)


def test_the_help_names_every_kind(cli):
    run = cli("homework", "--help")
    assert run.code == 0 and all(kind in " ".join(run.out.split()) for kind in KINDS)


def test_a_planted_wrong_backward_rule_is_caught(monkeypatch):
    """The gradients' rule against flop_counter's count of PyTorch's own backward: ∂x taken for the network's first
    layer (its input needs none), or ∂W for a frozen one."""
    from archcalc.homework.kinds import backward

    monkeypatch.setattr(backward, "needs_input_gradient", lambda i, first, frozen: True)
    with pytest.raises(SelfCheckError, match="backward_macs: the formula gives"):
        generate("backward", 10, seed=1, level=3)
    monkeypatch.undo()
    monkeypatch.setattr(backward, "needs_input_gradient", lambda i, first, frozen: not first or i >= frozen)
    with pytest.raises(SelfCheckError, match="backward_macs: the formula gives"):
        generate("backward", 10, seed=1, level=3)


def test_the_cli_writes_into_a_default_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = cli("homework", "memory", "--count", "3", "--seed", "4", "--level", "2", "--lang", "ko")
    assert run.code == 0
    folder = tmp_path / "homework" / "memory-seed4-level2-ko"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert math.isfinite(sum(int(r["bytes"]) for r in csv.DictReader(open(folder / "answers.csv"))))


def test_the_readme_shows_a_set_the_generator_writes():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    s = generate("params", 3, seed=2, level=2)
    shown_csv = re.search(r"```csv\n(.*?)```", readme, re.S).group(1)
    assert shown_csv == answers_csv(s)
    from archcalc.homework.write import answers_md

    shown_md = re.search(r"```markdown\n(.*?)```", readme, re.S).group(1)
    assert shown_md in answers_md(s)
