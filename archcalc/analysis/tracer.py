"""One forward pass, recorded: module hooks for the layer tree, a TorchFunctionMode for the rest.

Every module call becomes a record. A module with a registered formula (a "layer") is counted as
one, and nothing inside it is traced again. Functional operations called anywhere else (the
forward of a container or of the model: torch.add, torch.cat, out * CA_map, expand_as, view,
F.relu, F.max_pool2d) become records of their own, named after the module whose forward runs them.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from archcalc.analysis import receptive
from archcalc.analysis.counting import NOT_COUNTED, OPS, Count, ModuleCall, OpCall, module_counter, op_name
from archcalc.analysis.origins import origin
from archcalc.analysis.records import LAYER, MODULE, OP, LayerRecord
from archcalc.formulas.params import tensor_params

# The hooks' own tensor queries (shape, numel, element_size) are not operations of the model:
# switching torch-function handling off around them saves the mode thousands of calls.
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction


def _top_mode():
    n = torch._C._len_torch_function_stack()
    return torch._C._get_function_stack_at(n - 1) if n else None


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


def _new_bytes(outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> tuple[int, int]:
    """Elements and bytes the outputs add: views of an input and in-place results add none."""
    elements = size = 0
    for t in outputs:
        base = t._base
        if any(t is i or (base is not None and (base is i or base is i._base)) for i in inputs):
            continue
        n = t.numel()
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

    def __init__(self, model: nn.Module, inner: bool = False):
        super().__init__()
        self.model = model
        self.inner = inner
        self.names: dict[int, str] = {}
        self.param_names: dict[int, str] = {}  # id -> its slot name (weight, bias), each parameter once
        self.parameters: list[nn.Parameter] = []
        self.buffers: dict[int, torch.Tensor] = {}
        for name, m in model.named_modules():
            self.names[id(m)] = name
            for slot, p in m._parameters.items():
                if p is not None and id(p) not in self.param_names:
                    self.param_names[id(p)] = slot
                    self.parameters.append(p)
            for b in m._buffers.values():
                if b is not None:
                    self.buffers[id(b)] = b
        self.records: dict[int, LayerRecord] = {}
        self.stack: list[_Frame | None] = []  # None: a module running inside a counted layer
        self.next_index = 0
        self.module_calls: Counter = Counter()
        self.op_calls: Counter = Counter()
        self.params_seen: set[int] = set()
        self._handles: list = []
        self.failed_op: tuple | None = None  # (qualified name, op, input shapes, args, kwargs) of a failing op
        self.fields: dict[int, tuple] = {}  # id(tensor) -> (weak reference, receptive field)
        self.layer: _Frame | None = None  # the counted layer whose forward is running, if any
        self._counters: dict[type, object] = {}  # layer type -> its counter (None: not a layer)

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self):
        # Two process-wide hooks instead of two per module: registering and removing hundreds of
        # hooks cost as much as a small network's whole meta forward pass. Modules outside the
        # model (one built inside a forward) are left alone, as they were never hooked.
        self._handles.append(register_module_forward_pre_hook(self._pre))
        self._handles.append(register_module_forward_hook(self._post, with_kwargs=True))
        return super().__enter__()

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self.layer is not None and self.layer.quiet:  # a layer's forward raised: put the mode back
            torch._C._push_on_torch_function_stack(self)
            self.layer.quiet = False
        return super().__exit__(*exc)

    @property
    def current(self) -> _Frame | None:
        return self.stack[-1] if self.stack else None

    def ordered(self) -> tuple[LayerRecord, ...]:
        return tuple(self.records[i] for i in sorted(self.records))

    def failing_frame(self) -> _Frame | None:
        """The innermost recorded module that was running when the forward pass stopped."""
        frames = [f for f in self.stack if f is not None and f.index >= 0]
        return frames[-1] if frames else None

    # -- modules ------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args):
        name = self.names.get(id(module))
        if name is None:
            return
        if self.layer is not None:  # inside a counted layer: nothing is recorded
            self.stack.append(None)
            return
        with _NO_TORCH_FUNCTION():
            self._enter(module, name, args)

    def _post(self, module: nn.Module, args, kwargs, output):
        if id(module) not in self.names:
            return
        frame = self.stack.pop()
        if frame is None:
            return
        if frame is self.layer:
            self.layer = None
            if frame.quiet:
                torch._C._push_on_torch_function_stack(self)
        if frame.index < 0:
            return
        with _NO_TORCH_FUNCTION():
            if kwargs:
                frame.inputs = _tensors(args) + _tensors(kwargs)
            self._leave(frame, module, output)

    def _enter(self, module: nn.Module, name: str, args) -> None:
        parent = self.stack[-1] if self.stack else None
        kind = type(module)
        counter = self._counters.get(kind, 0)
        if counter == 0:
            counter = self._counters[kind] = module_counter(module)
        # The model itself is a row only when it is a single layer (an nn.Conv2d analysed alone).
        recorded = module is not self.model or counter is not None or next(module.children(), None) is None
        key = id(module)
        calls = self.module_calls[key] = self.module_calls[key] + 1
        if recorded:
            index = self.next_index
            self.next_index += 1
        frame = _Frame(
            module,
            index if recorded else -1,
            # the model itself is named "" (its operations' names start bare), or its class when a row
            (name or kind.__name__) if recorded else "",
            calls,
            0 if parent is None else parent.depth + 1,
            None if parent is None or parent.index < 0 else parent.index,
            counter if recorded else None,
            _tensors(args),
        )
        if parent is not None:
            parent.children += 1
        if frame.counter is not None:
            self.layer = frame
            if not self.inner and _top_mode() is self:  # the mode steps aside while the layer runs
                torch._C._pop_torch_function_stack()
                frame.quiet = True
        self.stack.append(frame)

    def _leave(self, frame: _Frame, module: nn.Module, output) -> None:
        inputs, outputs = frame.inputs, _tensors(output)
        shapes_in, shapes_out = shapes_of(inputs), shapes_of(outputs)
        if frame.counter is not None:
            count, kind = frame.counter(ModuleCall(module, shapes_in, shapes_out)), LAYER
            field = receptive.for_module(module, [self._field(t) for t in inputs], shapes_in, shapes_out)
            for t in outputs:
                self._set_field(t, field)
            # A layer owns its parameters (a leaf's own slots; an absent bias is None).
            own = list(module.parameters()) if module._modules else \
                [p for p in module._parameters.values() if p is not None]
            elements, size = _new_bytes(outputs, inputs)
        else:  # any other module's parameters go to the operations using them
            count, kind, own = (_CONTAINER if frame.children else _EMPTY), MODULE, ()
            if outputs and not frame.children and self._field(outputs[0]) is None:  # a module that did no operation
                known = [f for f in map(self._field, inputs) if f is not None]
                if known:
                    self._set_field(outputs[0], receptive.merge(known))
            elements = size = 0  # what a container returns was made by a layer or op inside it
        self._record(frame.index, frame.name, frame.call, type(module).__name__, kind, frame.depth, frame.parent,
                     shapes_in, shapes_out, elements, size, count, own, self._field(outputs[0]) if outputs else None,
                     "", tuple(frame.inner))

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
        counter = OPS.get(name)
        shapes = shapes_of(inputs), shapes_of(outputs)
        call = OpCall(name, tuple(args), kwargs, *shapes)
        count = counter(call) if counter is not None else NOT_COUNTED
        field = receptive.for_op(name, call, [self._field(t) for t in inputs if not isinstance(t, nn.Parameter)])
        for t in outputs:
            self._set_field(t, field)
        index = self.next_index
        self.next_index += 1
        self._record(index, qualified, self.op_calls[qualified], name, OP, parent.depth + 1,
                     None if parent.index < 0 else parent.index, *shapes, *_new_bytes(outputs, inputs), count,
                     [t for t in inputs if isinstance(t, nn.Parameter)], field, origin(func), ())
        return result

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
