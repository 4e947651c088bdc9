"""One forward pass, recorded: module hooks for the layer tree, a TorchFunctionMode for the rest.

Every module call becomes a record. A module with a registered formula (a "layer") is counted as
one, and nothing inside it is traced again. Functional operations called anywhere else (the
forward of a container or of the model: torch.add, torch.cat, out * CA_map, expand_as, view,
F.relu, F.max_pool2d) become records of their own, named after the module whose forward runs them.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from dataclasses import dataclass, field

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
# switching torch-function handling off around them saves the mode thousands of calls. The flag
# _busy still guards them where this private switch is missing.
_NO_TORCH_FUNCTION = getattr(torch._C, "DisableTorchFunction", contextlib.nullcontext)


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


def _new_bytes(outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> tuple[int, int]:
    """Elements and bytes the outputs add: views of an input and in-place results add none."""
    seen = {id(t) for t in inputs}
    bases = {id(t) for t in inputs} | {id(t._base) for t in inputs if t._base is not None}
    elements = size = 0
    for t in outputs:
        if id(t) in seen or (t._base is not None and id(t._base) in bases):
            continue
        elements += t.numel()
        size += t.numel() * t.element_size()
    return elements, size


@dataclass
class _Frame:
    """A module call in progress (private and mutable; records made from it are frozen)."""

    module: nn.Module
    index: int
    name: str
    call: int
    depth: int
    parent: int | None
    counter: object | None
    inputs: list[torch.Tensor]
    recorded: bool = True
    children: int = field(default=0)
    inner: list = field(default_factory=list)  # a layer's own torch calls (for tools that count them)


class Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self.records: dict[int, LayerRecord] = {}
        self.stack: list[_Frame] = []
        self.next_index = 0
        self.module_calls: Counter = Counter()
        self.op_calls: Counter = Counter()
        self.params_seen: set[int] = set()
        self._handles: list = []
        self._busy = False  # True while a hook runs: its own tensor queries are not operations
        self.failed_op: tuple | None = None  # (qualified name, op, input shapes, args, kwargs) of a failing op
        self.fields: dict[int, tuple] = {}  # id(tensor) -> (weak reference, receptive field)
        self.layer: _Frame | None = None  # the counted layer whose forward is running, if any
        self._counters: dict[type, object] = {}  # layer type -> its counter (None: not a layer)
        self.param_names = {id(p): name.rsplit(".", 1)[-1] for name, p in model.named_parameters()}

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
        return super().__exit__(*exc)

    @property
    def current(self) -> _Frame | None:
        return self.stack[-1] if self.stack else None

    def ordered(self) -> tuple[LayerRecord, ...]:
        return tuple(self.records[i] for i in sorted(self.records))

    # -- modules ------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args):
        if id(module) not in self.names:
            return
        self._busy = True
        try:
            with _NO_TORCH_FUNCTION():
                self._enter(module, args)
        finally:
            self._busy = False

    def _post(self, module: nn.Module, args, kwargs, output):
        if id(module) not in self.names:
            return
        self._busy = True
        try:
            with _NO_TORCH_FUNCTION():
                if kwargs and self.stack[-1].recorded:
                    self.stack[-1].inputs = _tensors(args) + _tensors(kwargs)
                self._leave(module, output)
        finally:
            self._busy = False

    def _enter(self, module: nn.Module, args) -> None:
        parent = self.current
        if self.layer is not None:
            self.stack.append(_Frame(module, -1, "", 0, 0, None, None, [], recorded=False))
            return
        kind = type(module)
        if kind not in self._counters:
            self._counters[kind] = module_counter(module)
        counter = self._counters[kind]
        # The model itself is a row only when it is a single layer (an nn.Conv2d analysed alone).
        recorded = module is not self.model or counter is not None or next(module.children(), None) is None
        self.module_calls[id(module)] += 1
        frame = _Frame(
            module=module,
            index=self._take_index() if recorded else -1,
            # the model itself is named "" (its operations' names start bare), or its class when a row
            name=(self.names.get(id(module)) or type(module).__name__) if recorded else "",
            call=self.module_calls[id(module)],
            depth=0 if parent is None else parent.depth + 1,
            parent=None if parent is None or parent.index < 0 else parent.index,
            counter=counter if recorded else None,
            inputs=_tensors(args),
            recorded=recorded,
        )
        if parent is not None:
            parent.children += 1
        if frame.counter is not None:
            self.layer = frame
        self.stack.append(frame)

    def _leave(self, module: nn.Module, output) -> None:
        frame = self.stack.pop()
        if frame is self.layer:
            self.layer = None
        if not frame.recorded:
            return
        outputs = _tensors(output)
        in_fields = [self._field(t) for t in frame.inputs]
        shapes = self._shapes(frame.inputs), self._shapes(outputs)
        if frame.counter is not None:
            call = ModuleCall(module, *shapes)
            count, kind = frame.counter(call), LAYER
            field = receptive.for_module(module, in_fields, call.inputs, call.outputs)
            for t in outputs:
                self._set_field(t, field)
        else:
            count, kind = Count(0, 0, {}, "" if frame.children else "no operations"), MODULE
            known = [f for f in in_fields if f is not None]
            if outputs and known and not frame.children and self._field(outputs[0]) is None:
                self._set_field(outputs[0], receptive.merge(known))  # a module that did no operation
        field = self._field(outputs[0]) if outputs else None
        # A layer owns its parameters; any other module's parameters go to the operations using them.
        if frame.counter is None:
            own = []
        elif module._modules:
            own = list(module.parameters())
        else:  # a leaf layer: its own parameter slots (an absent bias is None)
            own = [p for p in module._parameters.values() if p is not None]
        self._record(frame.index, frame.name, frame.call, type(module).__name__, kind, frame.depth,
                     frame.parent, frame.inputs, outputs, count, own, field, inner=tuple(frame.inner), shapes=shapes)

    # -- functional operations ----------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            result = func(*args, **kwargs)
        except Exception:
            parent = self.current
            if self.failed_op is None and not self._busy and parent is not None and self.layer is None:
                name = op_name(func)
                self.failed_op = (f"{parent.name}.{name}" if parent.name else name, name,
                                  self._shapes(_tensors(args) + _tensors(kwargs)), args, kwargs)
            raise
        parent = self.current
        if self._busy or parent is None:
            return result
        outputs = _tensors(result)
        inputs = _tensors(args) + _tensors(kwargs)
        if not outputs or not inputs:
            return result  # metadata queries (size, dim) and tensor creation
        layer = self.layer
        if layer is not None:  # counted by the layer's formula; kept only as what the layer called
            with _NO_TORCH_FUNCTION():
                layer.inner.append((origin(func), self._shapes(inputs), self._shapes(outputs)))
            return result
        name = op_name(func)
        qualified = f"{parent.name}.{name}" if parent.name else name
        self.op_calls[qualified] += 1
        parent.children += 1
        counter = OPS.get(name)
        shapes = self._shapes(inputs), self._shapes(outputs)
        call = OpCall(name, tuple(args), kwargs, *shapes)
        count = counter(call) if counter is not None else NOT_COUNTED
        with _NO_TORCH_FUNCTION():
            field = receptive.for_op(name, call, [self._field(t) for t in inputs if not isinstance(t, nn.Parameter)])
            for t in outputs:
                self._set_field(t, field)
            self._record(self._take_index(), qualified, self.op_calls[qualified], name, OP, parent.depth + 1,
                         None if parent.index < 0 else parent.index, inputs, outputs, count,
                         [t for t in inputs if isinstance(t, nn.Parameter)], field, origin=origin(func), shapes=shapes)
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
    def _take_index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    @staticmethod
    def _shapes(tensors: list[torch.Tensor]) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(t.shape) for t in tensors)

    def _record(self, index, name, call, type_name, kind, depth, parent, inputs, outputs,
                count: Count, params: list[nn.Parameter], field=None, origin: str = "", inner: tuple = (),
                shapes: tuple | None = None) -> None:
        fresh = [p for p in params if id(p) not in self.params_seen]
        self.params_seen.update(id(p) for p in fresh)
        formulas = dict(count.formulas)
        if fresh and "params" not in formulas:
            named = [(n, tuple(p.shape)) for n, p in self._named(fresh)]
            formulas["params"] = str(tensor_params(named))
        if not fresh:
            formulas.pop("params", None)
        # A container creates no tensor itself: what it returns was made by a layer or op inside it.
        elements, size = _new_bytes(outputs, inputs) if kind != MODULE else (0, 0)
        self.records[index] = LayerRecord(
            index=index, name=name, call=call, type=type_name, kind=kind, depth=depth, parent=parent,
            input_shapes=shapes[0] if shapes else self._shapes(inputs),
            output_shapes=shapes[1] if shapes else self._shapes(outputs),
            params=sum(p.numel() for p in fresh),
            trainable_params=sum(p.numel() for p in fresh if p.requires_grad),
            param_bytes=sum(p.numel() * p.element_size() for p in fresh),
            macs=count.macs, elementwise=count.elementwise,
            activation_elements=elements, activation_bytes=size,
            formulas=formulas, note=count.note, receptive=field, origin=origin, inner=inner,
        )

    def _named(self, params: list[nn.Parameter]):
        for p in params:
            if id(p) in self.param_names:
                yield self.param_names[id(p)], p
