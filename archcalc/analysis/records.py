"""The engine's output: one frozen record per layer call or operation, and the whole analysis.

Records hold each layer's *own* cost (a container's record holds only the parameters it owns
directly), so any selection of rows that partitions the tree adds up to the totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from types import MappingProxyType
from typing import NamedTuple

from archcalc.errors import InputError
from archcalc.formulas.numbers import shapes_text
from archcalc.formulas.params import tensor_params
from archcalc.shown import Shown

Shape = tuple[int, ...]

LAYER = "layer"  # a module with a registered formula, counted as one
OP = "op"  # a functional operation (torch.add, torch.cat, out * CA_map, F.relu, ...)
MODULE = "module"  # any other module: its cost is that of the layers and operations inside it


class Formulas(Mapping):
    """A record's arithmetic, written out the first time it is read: most uses of a trace print
    only some rows, and a table of text costs more to write than the numbers do to count."""

    __slots__ = ("_names", "_params", "_source", "_text")

    def __init__(self, source, params: list, names: Mapping[int, str]):
        """``params``: the parameters the row owns; ``names``: id -> slot name (weight, bias)."""
        self._source, self._params, self._names, self._text = source, params, names, None

    def _all(self) -> dict[str, str]:
        if self._text is None:
            text = dict(self._source() if callable(self._source) else self._source)
            if not self._params:
                text.pop("params", None)
            elif "params" not in text:
                named = [(self._names[id(p)], tuple(p.shape)) for p in self._params if id(p) in self._names]
                text["params"] = str(tensor_params(named))
            self._text, self._source, self._params, self._names = text, None, None, None
        return self._text

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class LayerRecord(NamedTuple):
    """Immutable; a named tuple because a trace makes one per layer call and a dataclass costs twice as
    much to make."""

    index: int
    name: str
    call: int
    type: str
    kind: str
    depth: int
    parent: int | None
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    params: int
    trainable_params: int
    param_bytes: int
    macs: int | None
    elementwise: int | None
    activation_elements: int
    activation_bytes: int
    formulas: Mapping[str, str] = MappingProxyType({})
    note: str = ""
    receptive: object = None  # archcalc.analysis.receptive.Field of the output, None when unknown
    origin: str = ""  # an operation's public name as the model called it: torch.add, torch.nn.functional.relu
    inner: tuple = ()  # a layer's own torch calls, (origin, input shapes, output shapes), e.g. nn.ReLU's F.relu
    backward: object = None  # counting.Count of its gradients, when the backward pass was asked for
    sources: tuple[int, ...] = ()  # the records whose tensors are its inputs (-1: the model's input), in order
    inside: str = ""  # the custom autograd.Function whose forward ran it ("": none), which TorchScript does not see
    read_bytes: tuple | None = None  # where an input is sparse, each input's stored bytes (None: its shape's)

    @property
    def counted(self) -> bool:
        return self.macs is not None

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs

    @property
    def mults(self) -> int | None:
        """Multiplications of a conv, linear or matmul layer: one per multiply-accumulate."""
        return self.macs

    @property
    def adds(self) -> int | None:
        """Additions of a conv, linear or matmul layer: a dot product of K terms needs K - 1 additions
        per output, plus the layer's own element-wise adds (its bias, or the RBF's subtractions)."""
        if self.macs is None:
            return None
        if self.macs == 0:
            return 0
        outputs = sum(prod(s) for s in self.output_shapes)
        return self.macs - outputs + (self.elementwise or 0)

    @property
    def output_shape(self) -> Shape | tuple[Shape, ...] | None:
        """The output's shape, or the shapes of a layer that returns several tensors."""
        if not self.output_shapes:
            return None
        return self.output_shapes[0] if len(self.output_shapes) == 1 else self.output_shapes

    @property
    def label(self) -> str:
        """The name with the call number when a module or operation runs more than once."""
        return self.name if self.call == 1 else f"{self.name} ({self.call})"


def from_input(records: tuple[LayerRecord, ...]) -> set[int]:
    """The indices of the records whose tensors come from the model's input (-1) by some path: their work grows
    with the batch. The others (a position embedding interpolated to the image's size, a detector's anchors, a
    mask made of constants) are done once a forward, whatever the batch."""
    fed = {-1}
    for r in records:
        if not fed.isdisjoint(r.sources):
            fed.add(r.index)
    return fed


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    macs: int
    elementwise: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int
    backward_macs: int | None = None  # the backward pass's multiply-accumulates, when it was asked for
    backward_elementwise: int | None = None  # its element-wise operations (counting.ELEMENTWISE_BACKWARD)
    forward_macs: int | None = None  # the forward's, where ``macs`` is another pass's (views.for_pass)
    forward_elementwise: int | None = None  # likewise for the element-wise work

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class Analysis(Shown):
    model: str
    input_shape: Shape
    output_shapes: tuple[Shape, ...]
    device: str
    dtype: str
    itemsize: int
    records: tuple[LayerRecord, ...]
    totals: Totals
    notes: tuple[str, ...] = ()
    by_convention: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # convention -> index -> count
    pass_name: str = "forward"  # which pass the records' MACs count: forward, backward or train (views.for_pass)
    input_shapes: tuple[Shape, ...] = ()  # every input tensor's (input_shape is the first)
    input_dtypes: tuple[str, ...] = ()  # their dtypes, in the same order
    depth: int | None = None  # the rows shown (layers, the tables): the module tree cut here; None: every layer
    convention: str | None = None  # the tables add this convention's count as a column (tools.NAMES)

    def __repr__(self) -> str:
        t = self.totals
        shapes = shapes_text(self.input_shapes or (self.input_shape,))
        return (f"<Analysis {self.model}: {shapes} on {self.device}, {self.dtype}; params {t.params:,}, "
                f"MACs {t.macs:,}, {len(self.records)} records>")

    def convention_total(self, name: str) -> int:
        return sum(self.by_convention.get(name, {}).values())

    @property
    def not_counted(self) -> tuple[LayerRecord, ...]:
        return tuple(r for r in self.records if r.macs is None)

    # -- as a Python user reads it (rendered by archcalc.output, imported when first used) --------
    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        """The rows of the tables: every layer and operation (containers left out), or the tree cut at
        ``depth``; they add up to the totals."""
        from archcalc.analysis.views import rows

        return rows(self, self.depth)

    def report(self, view: str = "summary"):
        """The Report a command renders for this view: shapes, params, flops, summary, rf or types (`--by type`)."""
        from archcalc.output.analysis_report import VIEWS, analysis_report

        if view not in VIEWS:
            raise InputError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
        return analysis_report(self, view, self.layers, self.convention)

    def to_dict(self, view: str = "summary") -> dict:
        """The command line's JSON object (`archcalc VIEW -f json`), as Python values."""
        return dict(self.report(view).data)

    def to_json(self, path: str | None = None, view: str = "summary") -> str:
        """The JSON text; written to ``path`` as well when one is given."""
        return self._written("json", path, view)

    def to_csv(self, path: str | None = None, view: str = "summary") -> str:
        """The CSV of a view (`archcalc VIEW -f csv`); written to ``path`` as well when one is given."""
        return self._written("csv", path, view)

    def to_html(self, path: str | None = None, view: str = "summary") -> str:
        """A self-contained HTML page of a view (`-f html`); written to ``path`` as well when one is given."""
        return self._written("html", path, view)

    def to_frame(self, view: str = "summary"):
        """A pandas DataFrame, one row per layer, with the columns of the view's CSV (numbers as numbers)."""
        import pandas as pd

        report = self.report(view)
        return pd.DataFrame([[row.get(c.key) for c in report.columns] for row in report.rows],
                            columns=[c.header for c in report.columns])

    def _repr_html_(self) -> str:  # (Shown's, with the network drawn)
        from archcalc.output.html import fragment

        return fragment(self._drawn(self.report("summary")))

    def graph(self, path: str | None = None, layout: str = "auto") -> str:
        """The network drawn as SVG: a box per row, an arrow wherever a tensor flows; written to ``path``
        as well when one is given (a .dot name writes graphviz's source instead)."""
        from archcalc.output import graph
        from archcalc.output.render import write_atomic

        fmt = graph.format_of(path)  # (before any drawing: x.bmp is refused, not written as SVG)
        drawn = graph.of(self, self.depth)
        text = graph.to_dot(drawn) if fmt == "dot" else graph.svg(drawn, layout)
        if path is not None:
            write_atomic(str(path), text)
        return text

    def _drawn(self, report):
        """The report with the network's drawing, for the HTML page."""
        from dataclasses import replace as replaced

        from archcalc.output.graph import drawing

        return replaced(report, figures=(drawing(self, self.depth),))

    def _written(self, fmt: str, path: str | None, view: str) -> str:
        from archcalc.output.render import render, write_atomic

        report = self.report(view)
        text = render(self._drawn(report) if fmt == "html" else report, fmt)
        if path is not None:
            write_atomic(str(path), text)
        return text
