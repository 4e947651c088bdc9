"""reports/ is what `archcalc report` writes today, byte for byte."""

from pathlib import Path

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
