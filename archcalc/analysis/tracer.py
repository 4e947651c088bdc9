"""One forward pass, recorded: each module's forward wrapped for the layer tree, a TorchFunctionMode
for the rest.

Every module call becomes a record. A module with a registered formula (a "layer") is counted as
one, and nothing inside it is traced again (the mode steps off the stack while it runs). Functional
operations called anywhere else (the forward of a container or of the model: torch.add, torch.cat,
out * CA_map, expand_as, view, F.relu, F.max_pool2d) become records of their own, named after the
module whose forward runs them.

Speed: a trace costs Python work between the layers' kernels, so what can wait does. Formula text is
written when a row is read (tracer.Formulas); on the meta device each record is worked out after
the forward pass (Tracer(deferred=True)); the per-module facts are settled once, when the forward
is wrapped. benchmarks/speed.py measures the result against a bare meta forward pass.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping
from math import prod

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from archcalc.analysis import receptive
from archcalc.analysis.counting import NOT_COUNTED, OPS, Count, ModuleCall, OpCall, module_counter, op_name
from archcalc.analysis.origins import origin
from archcalc.analysis.records import LAYER, MODULE, OP, LayerRecord
from archcalc.formulas.params import tensor_params

# The hooks' own tensor queries (shape, numel, element_size) are not operations of the model:
# switching torch-function handling off around them saves the mode thousands of calls.
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_ABSENT = object()  # a module with no forward of its own instance (the usual case)


def layer_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> the name its rows carry: the qualified name; the class name for the model itself,
    which is a row only when it is a single layer."""
    return {id(m): name or type(m).__name__ for name, m in model.named_modules()}


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in an argument, a tuple, list or dict of them, at any depth (flat, in order)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = tuple(value.values())
    elif not isinstance(value, (list, tuple)):
        return []
    found = []
    for item in value:
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, (list, tuple, dict)):
            found.extend(_tensors(item))
    return found


def shapes_of(tensors: list[torch.Tensor]) -> tuple[tuple[int, ...], ...]:
    return tuple([tuple(t.shape) for t in tensors])


def _new_bytes(outputs: list[torch.Tensor], shapes: tuple, inputs: list[torch.Tensor]) -> tuple[int, int]:
    """Elements and bytes the outputs (of these shapes when made) add: views of an input and in-place
    results add none."""
    elements = size = 0
    for t, shape in zip(outputs, shapes):
        base = t._base
        for i in inputs:
            if t is i or (base is not None and (base is i or base is i._base)):
                break
        else:
            n = prod(shape)
            elements += n
            size += n * t.element_size()
    return elements, size


_CONTAINER = Count(0, 0, {})  # a module's cost is that of the layers and operations inside it
_EMPTY = Count(0, 0, {}, "no operations")


class _Frame:
    """A module call in progress (private and mutable; records made from it are frozen)."""

    __slots__ = ("call", "children", "counter", "depth", "index", "inner", "inputs", "module", "name", "parent",
                 "quiet")

    def __init__(self, module, index, name, call, depth, parent, counter, inputs):
        self.module, self.index, self.name, self.call = module, index, name, call
        self.depth, self.parent, self.counter, self.inputs = depth, parent, counter, inputs
        self.children = 0
        self.inner: list = []  # a layer's own torch calls (for tools that count them), when asked for
        self.quiet = False  # True while the mode is off the stack for this counted layer's forward


class Tracer(TorchFunctionMode):
    """With ``inner=True`` a layer's own torch calls (nn.ReLU's F.relu) are kept in its record for
    the tools that count them (ptflops); otherwise a counted layer runs with the mode switched off,
    which makes a trace cost little more than the forward pass itself."""

    def __init__(self, model: nn.Module, inner: bool = False, deferred: bool = False):
        super().__init__()
        self.model = model
        self.inner = inner
        # Deferred, each record is worked out after the forward pass, in one run (a fifth of the
        # trace's own cost saved, against the same work between the layers' kernels), but every
        # tensor is held till then, so only for the meta device, where tensors take no memory.
        # Shapes are read as the forward runs either way.
        self.pending: list | None = [] if deferred else None
        self.param_names: dict[int, str] = {}  # id -> its slot name (weight, bias), each parameter once
        self.parameters: list[nn.Parameter] = []
        self.buffers: dict[int, torch.Tensor] = {}
        self._walk = [(m, name) for name, m in model.named_modules()]
        for m, _ in self._walk:
            if m._parameters:
                for slot, p in m._parameters.items():
                    if p is not None and id(p) not in self.param_names:
                        self.param_names[id(p)] = slot
                        self.parameters.append(p)
            if m._buffers:
                for b in m._buffers.values():
                    if b is not None:
                        self.buffers[id(b)] = b
        self.records: dict[int, LayerRecord] = {}
        self.stack: list[_Frame] = []
        self.next_index = 0
        self.op_calls: Counter = Counter()
        self.params_seen: set[int] = set()
        self._replaced: list[tuple[nn.Module, object]] = []
        self.failed_op: tuple | None = None  # (qualified name, op, input shapes, args, kwargs) of a failing op
        self.fields: dict[int, tuple] = {}  # id(tensor) -> (weak reference, receptive field)
        self.layer: _Frame | None = None  # the counted layer whose forward is running, if any
        self._counters: dict[type, object] = {}  # layer type -> its counter (None: not a layer)

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self):
        # Each module of the model runs a forward of the trace's own, and gets its own back on exit.
        # Module hooks, even two process-wide ones, send every module call through PyTorch's slow
        # path, which cost a tenth of a small network's meta forward pass. Modules outside the model
        # (one built inside a forward) are left alone.
        try:
            for module, name in self._walk:
                own = module.__dict__
                self._replaced.append((module, own.get("forward", _ABSENT)))
                own["forward"] = self._traced(module, name, module.forward)
        except BaseException:
            self._restore()
            raise
        entered = super().__enter__()
        self._depth = torch._C._len_torch_function_stack()  # this mode is on top while the stack is this deep
        return entered

    def __exit__(self, *exc):
        self._restore()
        if self.layer is not None and self.layer.quiet:  # a layer's forward raised: put the mode back
            torch._C._push_on_torch_function_stack(self)
            self.layer.quiet = False
        result = super().__exit__(*exc)
        if self.pending:
            with _NO_TORCH_FUNCTION():
                for leave, args in self.pending:
                    leave(*args)
            self.pending.clear()
        return result

    def _restore(self) -> None:
        for module, forward in self._replaced:
            if forward is _ABSENT:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = forward
        self._replaced.clear()

    @property
    def current(self) -> _Frame | None:
        return self.stack[-1] if self.stack else None

    def ordered(self) -> tuple[LayerRecord, ...]:
        return tuple(self.records[i] for i in sorted(self.records))

    def failing_frame(self) -> _Frame | None:
        """The innermost recorded module that was running when the forward pass stopped."""
        frames = [f for f in self.stack if f.index >= 0]
        return frames[-1] if frames else None

    # -- modules ------------------------------------------------------------------------
    def _traced(self, module: nn.Module, name: str, forward):
        """The module's forward, recorded. What does not change from call to call is settled here."""
        kind = type(module)
        counter = self._counters.get(kind, 0)
        if counter == 0:
            counter = self._counters[kind] = module_counter(module)
        # The model itself is a row only when it is a single layer (an nn.Conv2d analysed alone);
        # it is named "" (its operations' names start bare), or its class when a row.
        recorded = module is not self.model or counter is not None or not module._modules
        row = (name or kind.__name__) if recorded else ""
        counter = counter if recorded else None
        calls = 0

        def traced_forward(*args, **kwargs):
            nonlocal calls
            if self.layer is not None:  # inside a counted layer: nothing is recorded
                return forward(*args, **kwargs)
            calls += 1
            frame = self._enter(module, row, calls, counter, recorded, args)
            output = forward(*args, **kwargs)
            self._exit(frame, module, args, kwargs, output)
            return output

        return traced_forward

    def _exit(self, frame: _Frame, module: nn.Module, args, kwargs, output) -> None:
        self.stack.pop()
        if frame.index < 0:
            return
        if kwargs:
            frame.inputs = _tensors(args) + _tensors(kwargs)
        if frame.quiet:  # the mode is off the stack: the layer's tensor queries cannot reach it
            try:
                outputs = _tensors(output)
                shapes = shapes_of(frame.inputs), shapes_of(outputs)
            finally:
                self.layer = None
                torch._C._push_on_torch_function_stack(self)
        else:
            if frame is self.layer:
                self.layer = None
            with _NO_TORCH_FUNCTION():
                outputs = _tensors(output)
                shapes = shapes_of(frame.inputs), shapes_of(outputs)
        if self.pending is None:
            with _NO_TORCH_FUNCTION():
                self._leave(frame, module, outputs, *shapes)
        else:
            self.pending.append((self._leave, (frame, module, outputs, *shapes)))

    def _enter(self, module: nn.Module, name: str, calls: int, counter, recorded: bool, args) -> _Frame:
        stack = self.stack
        parent = stack[-1] if stack else None
        index = -1
        if recorded:
            index = self.next_index
            self.next_index = index + 1
        if parent is None:
            frame = _Frame(module, index, name, calls, 0, None, counter, _tensors(args))
        else:
            frame = _Frame(module, index, name, calls, parent.depth + 1, None if parent.index < 0 else parent.index,
                           counter, _tensors(args))
            parent.children += 1
        if counter is not None:
            self.layer = frame
            if not self.inner and torch._C._len_torch_function_stack() == self._depth:  # the mode steps aside
                torch._C._pop_torch_function_stack()
                frame.quiet = True
        stack.append(frame)
        return frame

    def _leave(self, frame: _Frame, module: nn.Module, outputs: list, shapes_in: tuple, shapes_out: tuple) -> None:
        inputs = frame.inputs
        if frame.counter is not None:
            count, kind = frame.counter(ModuleCall(module, shapes_in, shapes_out)), LAYER
            field = receptive.for_module(module, [self._field(t) for t in inputs], shapes_in, shapes_out)
            if field is not None:
                for t in outputs:
                    self._set_field(t, field)
            elif outputs:  # the output keeps what it had (an in-place layer's input field), if anything
                field = self._field(outputs[0])
            # A layer owns its parameters (a leaf's own slots; an absent bias is None).
            own = list(module.parameters()) if module._modules else \
                [p for p in module._parameters.values() if p is not None]
            elements, size = _new_bytes(outputs, shapes_out, inputs)
        else:  # any other module's parameters go to the operations using them
            count, kind, own = (_CONTAINER if frame.children else _EMPTY), MODULE, ()
            if outputs and not frame.children and self._field(outputs[0]) is None:  # a module that did no operation
                known = [f for f in map(self._field, inputs) if f is not None]
                if known:
                    self._set_field(outputs[0], receptive.merge(known))
            elements = size = 0  # what a container returns was made by a layer or op inside it
            field = self._field(outputs[0]) if outputs else None
        self._record(frame.index, frame.name, frame.call, type(module).__name__, kind, frame.depth, frame.parent,
                     shapes_in, shapes_out, elements, size, count, own, field, "", tuple(frame.inner))

    # -- functional operations ----------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            result = func(*args, **kwargs)
        except Exception:
            parent = self.current
            if self.failed_op is None and parent is not None and self.layer is None:
                name = op_name(func)
                self.failed_op = (f"{parent.name}.{name}" if parent.name else name, name,
                                  shapes_of(_tensors(args) + _tensors(kwargs)), args, kwargs)
            raise
        parent = self.current
        if parent is None:
            return result
        outputs = _tensors(result)
        inputs = _tensors(args) + _tensors(kwargs)
        if not outputs or not inputs:
            return result  # metadata queries (size, dim) and tensor creation
        layer = self.layer
        if layer is not None:  # counted by the layer's formula; kept only as what the layer called
            layer.inner.append((origin(func), shapes_of(inputs), shapes_of(outputs)))
            return result
        name = op_name(func)
        qualified = f"{parent.name}.{name}" if parent.name else name
        self.op_calls[qualified] += 1
        parent.children += 1
        index = self.next_index
        self.next_index += 1
        op = (index, name, qualified, self.op_calls[qualified], parent, func, args, kwargs, inputs, outputs,
              shapes_of(inputs), shapes_of(outputs))
        if self.pending is None:
            self._leave_op(*op)
        else:
            self.pending.append((self._leave_op, op))
        return result

    def _leave_op(self, index, name, qualified, call_number, parent, func, args, kwargs, inputs, outputs,
                  shapes_in, shapes_out) -> None:
        counter = OPS.get(name)
        call = OpCall(name, tuple(args), kwargs, shapes_in, shapes_out)
        count = counter(call) if counter is not None else NOT_COUNTED
        field = receptive.for_op(name, call, [self._field(t) for t in inputs if not isinstance(t, nn.Parameter)])
        for t in outputs:
            self._set_field(t, field)
        self._record(index, qualified, call_number, name, OP, parent.depth + 1,
                     None if parent.index < 0 else parent.index, shapes_in, shapes_out,
                     *_new_bytes(outputs, shapes_out, inputs), count,
                     [t for t in inputs if isinstance(t, nn.Parameter)], field, origin(func), ())

    # -- receptive fields -----------------------------------------------------------------
    def watch_input(self, x: torch.Tensor) -> None:
        if x.dim() >= 3:
            self._set_field(x, receptive.Field.of_input(x.dim() - 2))

    def _set_field(self, t: torch.Tensor, field) -> None:
        if field is not None:
            self.fields[id(t)] = (weakref.ref(t), field)

    def _field(self, t: torch.Tensor):
        entry = self.fields.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    # -- records ------------------------------------------------------------------------
    def _record(self, index, name, call, type_name, kind, depth, parent, shapes_in, shapes_out, elements, size,
                count: Count, params, field, origin: str, inner: tuple) -> None:
        params_total = trainable = param_bytes = 0
        fresh = []
        seen = self.params_seen
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                fresh.append((self.param_names.get(id(p)), p))
                n = p.numel()
                params_total += n
                trainable += n if p.requires_grad else 0
                param_bytes += n * p.element_size()
        self.records[index] = LayerRecord(
            index, name, call, type_name, kind, depth, parent, shapes_in, shapes_out,
            params_total, trainable, param_bytes, count.macs, count.elementwise, elements, size,
            Formulas(count.formulas, fresh), count.note, field, origin, inner,
        )


class Formulas(Mapping):
    """A record's arithmetic, written out the first time it is read: most uses of a trace print
    only some rows, and a table of text costs more to write than the numbers do to count."""

    __slots__ = ("_params", "_source", "_text")

    def __init__(self, source, params: list):
        self._source, self._params, self._text = source, params, None

    def _all(self) -> dict[str, str]:
        if self._text is None:
            text = dict(self._source() if callable(self._source) else self._source)
            if not self._params:
                text.pop("params", None)
            elif "params" not in text:
                named = [(name, tuple(p.shape)) for name, p in self._params if name is not None]
                text["params"] = str(tensor_params(named))
            self._text, self._source, self._params = text, None, None
        return self._text

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
