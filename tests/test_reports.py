"""reports/ is what `archcalc report` writes today, byte for byte."""

import csv
import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from archcalc.reporting.answers import write

COMMITTED = Path(__file__).resolve().parents[1] / "reports"


def test_committed_reports_are_fresh(tmp_path):
    written = write(tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in COMMITTED.iterdir() if p.suffix in (".md", ".csv")), \
        "reports/ has missing or extra files: run `archcalc report`"
    stale = [p.name for p in written if p.read_bytes() != (COMMITTED / p.name).read_bytes()]
    assert not stale, f"stale reports (run `archcalc report`): {stale}"


def test_reports_hold_the_lecture_answers():
    lenet = (COMMITTED / "lenet5_layers.md").read_text()
    assert "(5*5*1 + 1)*6 = 156" in lenet and "(5*5*16 + 1)*120 = 48,120" in lenet
    assert "112,896,000" in (COMMITTED / "bottleneck_480_16_48.md").read_text()
    quiz = (COMMITTED / "output_size_quiz.csv").read_text()
    assert "(7 + 2*0 - 3)/1 + 1 = 5" in quiz and "(7 + 2*0 - 3)/2 + 1 = 3" in quiz
    assert "| vgg_dense |" in (COMMITTED / "lab_vgg_variants.md").read_text()


def rendered_cells(markdown: str) -> list[str]:
    """Each table cell's text as a markdown viewer shows it (markdown-it, the parser rich uses, with tables)."""
    page = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<em>" not in page and "<strong>" not in page, "a '*' of the arithmetic was read as emphasis"
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells]


@pytest.mark.parametrize("name", sorted(p.stem for p in COMMITTED.glob("*.md") if p.name != "README.md"))
def test_markdown_shows_every_cell_as_written(name):
    shown = set(rendered_cells((COMMITTED / f"{name}.md").read_text()))
    with open(COMMITTED / f"{name}.csv", newline="") as f:
        written = {cell for row in csv.reader(f) for cell in row if "*" in cell or "|" in cell}
    assert written <= shown, sorted(written - shown)[:3]
