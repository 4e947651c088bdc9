"""Tables laid out for the terminal's width: at 80 and 120 columns no line is longer, and no number or
formula is broken inside a token (the arithmetic moves onto lines of its own, columns leave in order)."""

import pytest

from archcalc.analysis.engine import analyse
from archcalc.analysis.views import rows
from archcalc.formulas.bottleneck import compare
from archcalc.models.catalog import REGISTRY
from archcalc.output.analysis_report import analysis_report
from archcalc.output.arithmetic_report import bottleneck_report
from archcalc.output.render import DROP_ORDER, cell_text, fit_columns, to_table
from archcalc.output.report import FORMULA, INT


def _reports():
    for name in ("lenet5", "cnnet", "vgg_dense", "resnet18"):
        a = analyse(REGISTRY.get(name))
        for view in ("summary", "params", "flops", "shapes"):
            yield f"{name}-{view}", analysis_report(a, view, rows(a))
    yield "bottleneck", bottleneck_report(compare(480, 16, 48))


REPORTS = dict(_reports())


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("name", list(REPORTS))
def test_a_table_fits_the_terminal_and_breaks_no_token(name, width):
    report = REPORTS[name]
    text = to_table(report, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    tokens = set(" ".join(line.strip("│┃ ") for line in text.splitlines()).split())
    _, _, left_out = fit_columns(report, width)
    dropped = {c.key for c in left_out}
    if dropped:
        assert f"(left out at {width} columns: {', '.join(c.header for c in left_out)}" in " ".join(text.split())
    for row in report.rows:
        for column in report.columns:
            value = cell_text(row.get(column.key), column.kind)
            if column.key in dropped or not value or value == "—":
                continue
            if column.kind == INT:
                assert value in tokens, (column.key, value)  # a number is never split
            elif column.kind == FORMULA:
                for token in value.split():  # each token of the arithmetic whole, on some line
                    assert token in text, (column.key, token)
    assert dropped <= set(DROP_ORDER)


def test_a_wide_terminal_keeps_the_arithmetic_in_its_column():
    report = REPORTS["cnnet-flops"]
    text = to_table(report, width=200)
    assert "MAC arithmetic" in text.splitlines()[2] and "left out" not in text  # the header row holds it
    narrow = to_table(report, width=80)
    assert "\nMAC arithmetic:\n  conv1: (1*32*30*30)*(3*3*3) = 777,600\n" in narrow
