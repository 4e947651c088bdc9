"""examples/quickstart.ipynb executed in a real Jupyter kernel (nbclient), its outputs checked."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parent.parent / "examples" / "quickstart.ipynb"


def _texts(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def test_the_quickstart_notebook_runs_and_shows_the_numbers(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    lenet, dense, mine, compared, frame, memory = code
    assert _texts(lenet) == "60840 60000 326520\nc1 (5*5*1 + 1)*6 = 156\n"
    html = _html(dense)
    assert "<table>" in html and "conv2_1" in html and "40,864,256" in html and html.count("<svg") == 2
    assert _texts(mine).splitlines()[-1] == f"{16 * 32 * 32 * 27 + 16 * 16 * 16 * 10} True"
    assert f"Params: {(3 * 9 + 1) * 16 + (4096 + 1) * 10:,}" in _html(mine)  # 41,418
    lines = _texts(compared).splitlines()
    assert [line.split()[0] for line in lines] == ["vgg_base", "vgg_skip", "vgg_dense", "vgg_ca"]
    assert "53,103,104 MACs x1.395" in lines[1]
    assert _texts(frame) == "40864256\n" and "<table" in _html(frame)
    html = _html(memory)  # (the estimate shows as archcalc memory's table: the same simulated peak)
    import archcalc

    estimate = archcalc.memory("vgg_base", (64, 3, 32, 32), optimizer="adam")
    assert "<table>" in html and "CPU peak, simulated" in html and f"= {estimate.predicted_bytes:,} bytes" in html
