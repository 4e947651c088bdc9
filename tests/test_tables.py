"""Every row of tables/*.csv is reproduced; the tolerance rules and the table format are enforced."""

from decimal import Decimal
from pathlib import Path

import pytest

from archcalc.checking.quantities import Computer
from archcalc.checking.runner import _judge, check
from archcalc.checking.table import COLUMNS, default_files, load
from archcalc.checking.tolerance import Tolerance
from archcalc.errors import InputError

ROWS = [row for path in default_files() for row in load(path)]


@pytest.fixture(scope="module")
def computer():
    return Computer()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.table}:{r.line}:{r.model}:{r.quantity}" for r in ROWS])
def test_paper_number_is_reproduced(row, computer):
    verdict = _judge(row, computer)
    assert verdict.passed, f"{row.model} {row.quantity}: paper {row.value}, computed {verdict.computed} {verdict.error}"


def test_tables_cover_the_seed_figures():
    quantities = {(r.model, r.quantity) for r in ROWS}
    for needed in [("lenet5", "layer_params:c3"), ("resnet152", "macs"), ("se_resnet50", "senet_flops"),
                   ("alexnet", "output:pool3"), ("densenet264", "output:features.denseblock4"),
                   ("bottleneck", "direct_mults"), ("cnnet", "output:conv2"), ("resnet50_cifar", "output:layer4")]:
        assert needed in quantities
    assert all(r.source for r in ROWS)


def test_round_is_the_papers_own_rounding():
    t = Tolerance.parse("round")
    assert t.holds("3.6", Decimal("3.5500")) and t.holds("3.6", Decimal("3.6499"))
    assert not t.holds("3.6", Decimal("3.65")) and not t.holds("3.6", Decimal("3.549"))
    assert t.holds("11.30", Decimal("11.2951")) and not t.holds("11.30", Decimal("11.2824"))
    assert t.holds("156", Decimal("156.4")) and not t.holds("156", Decimal("157"))


def test_other_tolerances():
    assert Tolerance.parse("exact").holds("156", Decimal(156))
    assert not Tolerance.parse("exact").holds("156", Decimal("156.1"))
    truncate = Tolerance.parse("truncate")
    assert truncate.holds("3.8", Decimal("3.858")) and not truncate.holds("3.8", Decimal("3.79"))
    assert not truncate.holds("3.8", Decimal("3.9"))
    rel = Tolerance.parse("rel:0.003")
    assert rel.holds("7.58", Decimal("7.5702")) and not rel.holds("7.58", Decimal("7.55"))
    assert Tolerance.parse("abs:0.05").holds("1.5", Decimal("1.55"))
    for bad in ("loose", "rel:", "rel:x", "abs"):
        with pytest.raises(InputError):
            Tolerance.parse(bad)


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("\n".join([",".join(COLUMNS), *lines]) + "\n")
    return path


def test_a_widened_tolerance_needs_a_note(tmp_path):
    with pytest.raises(InputError, match="needs a note"):
        load(_write(tmp_path, "resnet50,,macs,3.9,G,multiply-adds,rel:0.05,He 2016,"))


def test_table_format_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("model,value\nresnet50,3\n")
    with pytest.raises(InputError, match="lacks the column"):
        load(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="does not exist"):
        load(tmp_path / "none.csv")


def test_wrong_numbers_fail_and_unknown_names_fail_cleanly(tmp_path):
    path = _write(tmp_path,
                  "resnet50,,macs,4.1,G,multiply-adds,round,He 2016,",
                  "lenet5,,layer_params:c9,1,,params,exact,x,",
                  "resnet5,,macs,1,G,x,round,x,",
                  "resnet18,,macs,1.8,G,multiply-adds,round,He 2016,")
    verdicts = check([path])
    assert [v.passed for v in verdicts] == [False, False, False, True]
    assert verdicts[0].computed == "3.858" and verdicts[0].difference.startswith("-0.242")
    assert "no layer 'c9'" in verdicts[1].error and "unknown model 'resnet5'" in verdicts[2].error


def test_check_command_exit_codes_and_json(cli, tmp_path):
    good = cli("check", "--format", "json")
    assert good.code == 0
    data = good.json()
    assert data["passed"] is True and len(data["rows"]) == len(ROWS)
    assert {"table", "model", "quantity", "paper", "computed", "tolerance", "passed", "note"} <= set(data["rows"][0])
    bad = cli("check", _write(tmp_path, "resnet50,,macs,4.1,G,multiply-adds,round,He 2016,"))
    assert bad.code == 1 and "FAIL" in bad.out and "0 of 1 rows reproduced; 1 failed" in bad.out
    missing = cli("check", tmp_path / "nothing.csv")
    assert missing.code == 1 and "does not exist" in missing.err


def test_unreproduced_rows_are_kept_as_failing_data():
    files = sorted((default_files()[0].parent / "unreproduced").glob("*.csv"))
    verdicts = check(files)
    assert verdicts and not any(v.passed for v in verdicts)
    assert all(v.row.note.startswith("NOT REPRODUCED") for v in verdicts)
