"""The network drawn (archcalc graph, the HTML page): a box per row, an arrow wherever a tensor flows."""

import re
import shutil
import subprocess

import pytest
from torch import nn

import archcalc
from archcalc.analysis.engine import analyse
from archcalc.models.catalog import REGISTRY
from archcalc.output import graph
from archcalc.output.graph import INPUT


def _merges(g) -> dict[str, list[str]]:
    labels = {n.key: n.label for n in g.nodes}
    return {labels[n.key]: [labels[a] for a in g.into(n.key)] for n in g.nodes if len(g.into(n.key)) > 1}


def test_vgg_dense_shows_its_two_concatenations_as_merging_paths():
    g = graph.of(analyse(REGISTRY.get("vgg_dense")))
    assert _merges(g) == {"cat (cat)": ["input", "relu (2) (ReLU)"],
                          "cat (2) (cat)": ["avgPool2d (AvgPool2d)", "relu (4) (ReLU)"]}
    assert len(g.nodes) == 1 + 23 and len(g.edges) == 23 + 2  # a chain, and the two dense connections
    svg = graph.layered_svg(g)
    assert svg.count('class="node"') == 24 and svg.count('class="edge"') == 25
    assert len(re.findall(r'class="edge" data-from="-1" data-to="4"', svg)) == 1  # the input into the first cat


def test_every_resnet50_shortcut_is_an_arrow_into_its_add():
    g = graph.of(analyse(REGISTRY.get("resnet50")))
    merges = _merges(g)
    assert len(merges) == 16 and all(k.endswith(".add (add)") for k in merges)  # 3 + 4 + 6 + 3 blocks
    assert merges["layer1.0.add (add)"] == ["layer1.0.bn3 (BatchNorm2d)", "layer1.0.downsample.1 (BatchNorm2d)"]
    assert merges["layer1.1.add (add)"] == ["layer1.1.bn3 (BatchNorm2d)", "layer1.0.relu (3) (ReLU)"]
    assert all(g.into(n.key) for n in g.nodes if n.key != INPUT)  # nothing floats free


def test_at_a_depth_a_block_is_one_box_and_attention_shows():
    g = graph.of(analyse(REGISTRY.get("vgg_ca")), depth=None)
    assert _merges(g)["mul (mul)"] == ["relu (4) (ReLU)", "expand_as (expand_as)"]  # the map times its weights
    a = archcalc.analyze(nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten()), (1, 3, 8, 8),
                         depth=1)
    cut = graph.of(a, 1)
    assert [n.label for n in cut.nodes] == ["input", "0 (Sequential)", "1 (Flatten)"]
    assert cut.edges == ((INPUT, 0), (0, 3))


def test_dot_source_and_the_layouts(tmp_path):
    g = graph.of(analyse(REGISTRY.get("cnnet")))
    dot = graph.to_dot(g)
    assert dot.startswith('digraph "cnnet (1x3x32x32)" {') and 'n0 [label="input\\n1x3x32x32"];' in dot
    assert dot.count(" -> ") == len(g.edges)
    assert graph.svg(g, "python").startswith("<svg")
    if shutil.which("dot"):
        assert "<svg" in graph.svg(g, "dot")
    else:
        with pytest.raises(archcalc.InputError, match="needs graphviz's dot"):
            graph.svg(g, "dot")
    with pytest.raises(archcalc.InputError, match="unknown layout"):
        graph.svg(g, "spring")


def test_the_graph_command(cli, tmp_path):
    run = cli("graph", "vgg_dense")
    assert run.code == 0 and run.out.startswith("<svg") and run.out.count('class="edge"') == 25
    out = tmp_path / "net.dot"
    assert cli("graph", "vgg_skip", "-o", out).code == 0 and out.read_text().startswith("digraph")
    again = cli("graph", "vgg_skip", "-o", out)
    assert again.code == 1 and "exists; add --force" in again.err
    bad = cli("graph", "vgg_skip", "-f", "png")
    assert bad.code == 1 and "use svg or dot" in bad.err


def test_the_html_page_holds_the_table_the_chart_and_the_drawing(cli, tmp_path):
    page = tmp_path / "vgg.html"
    assert cli("summary", "vgg_dense", "-o", page).code == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and html.count("<svg") == 2
    assert "<script" not in html and not re.search(r'(src|href)="https?:', html)  # opens offline
    a = archcalc.analyze("vgg_dense")
    assert a._repr_html_().count("<svg") == 2 and a.graph().startswith("<svg")
    with pytest.raises(archcalc.InputError, match="cannot tell the graph's format"):
        a.graph(tmp_path / "vgg.bmp")  # (was SVG in a .bmp file)
    assert not (tmp_path / "vgg.bmp").exists()
    assert a.graph(tmp_path / "vgg.gv").startswith("digraph") and (tmp_path / "vgg.gv").is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_the_page_renders_in_headless_chromium(cli, tmp_path):
    """The page as a browser draws it: its DOM has every row, and the screenshot shows a table (dark text
    on the left of the first rows, where the table stands) and the drawing below it."""
    from matplotlib.image import imread

    page, shot = tmp_path / "vgg.html", tmp_path / "shot.png"
    assert cli("summary", "vgg_dense", "-o", page).code == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.stdout.count("<tr>") == 24 and "conv3_2" in dom.stdout  # header + 23 rows
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    dark = pixels.mean(axis=2) < 0.5
    assert dark[:400, :600].mean() > 0.01  # the table's text
    assert dark.mean() < 0.5  # and not a blank or black page


def test_a_model_with_two_inputs_draws_both_into_its_merge():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    g = graph.of(archcalc.analyze(Two(), [(1, 4), (1, 4)]))
    assert _merges(g) == {"add (add)": ["a (Linear)", "b (Linear)"]}
    assert [n.key for n in g.nodes if g.into(n.key) == [INPUT]] == [0, 1]


@pytest.mark.parametrize("command", [("compare", "vgg_base", "vgg_dense"), ("check",), ("outsize", "7", "3"),
                                     ("bottleneck", "480", "16", "48"), ("memory", "cnnet"), ("models",),
                                     ("reconcile", "cnnet"), ("roofline", "cnnet")])
def test_every_report_has_an_html_page(cli, command):
    run = cli(*command, "-f", "html")
    assert run.code == 0 and run.out.startswith("<!DOCTYPE html>") and run.out.count("<tr>") >= 2
    assert "<script" not in run.out
