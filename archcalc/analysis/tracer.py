"""One forward pass, recorded: each module's forward wrapped for the layer tree, a TorchFunctionMode
for the rest.

Every module call becomes a record. A module with a registered formula (a "layer") is counted as
one, and nothing inside it is traced again (the mode steps off the stack while it runs). Functional
operations called anywhere else (the forward of a container or of the model: torch.add, torch.cat,
out * CA_map, expand_as, view, F.relu, F.max_pool2d) become records of their own, named after the
module whose forward runs them.

Here: the module calls, the mode, and the records they make. Apart: what the parts share (calls.py: a call's Frame,
the tensors in its arguments), autograd's work inside a forward (autograd_rows.py: custom autograd.Functions,
torch.autograd.grad, torch.func's transforms), a record's backward count (gradients.py) and the compiled code a
trace runs as Python (eager.py).

Speed: a trace costs Python work between the layers' kernels, so what can wait does. Formula text is
written when a row is read (records.Formulas); on the meta device each record is worked out after
the forward pass (Tracer(deferred=True)); the per-module facts are settled once, when the forward
is wrapped. benchmarks/speed.py measures the result against a bare meta forward pass.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import weakref
from collections import ChainMap, Counter
from functools import partial
from math import prod
from operator import attrgetter

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedTensorMixin
from torch.fx import GraphModule
from torch.overrides import TorchFunctionMode

from archcalc.analysis import (aten, custom_functions, differentiated, receptive, sequence_input, storages,
                               token_fields, transforms)
from archcalc.analysis.autograd_rows import AutogradRows
from archcalc.analysis.calls import (BACKWARD_RUN, NO_TORCH_FUNCTION, Frame, autograd_nodes, new_tuple, shapes_of,
                                     tensors_in)
from archcalc.analysis.counting import (GRAD_OPS, NOT_COUNTED, OPS, Count, ModuleCall, OpCall, counter_for_type,
                                       grad_counter_for_type, layer_parameters, op_name)
from archcalc.analysis.eager import compiled_eagerly, flex_eagerly, scripted_eagerly
from archcalc.analysis.gradients import FORWARD_AD_BACKWARD, gradient
from archcalc.analysis.origins import origin, spelling
from archcalc.analysis.packed import (QUANTIZED, object_weights, packed_object, packed_weights,
                                     quantization_parameters)
from archcalc.analysis.records import LAYER, MODULE, OP, Formulas, LayerRecord
from archcalc.analysis.stand_ins import stand_in
from archcalc.analysis.token_fields import Tokens
from archcalc.errors import chain
from archcalc.patching import on_class, replaced

# A counted layer's forward runs with the mode stepped off PyTorch's torch-function stack (its inner
# calls are not the model's operations, and stepping aside saves their cost). Those are private
# functions: a PyTorch without them gets the public path, where the mode stays on the stack and a
# layer's inner calls are kept as what it called (Tracer.layer), slower and with the same counts.
_stack = [getattr(torch._C, name, None) for name in
          ("_len_torch_function_stack", "_pop_torch_function_stack", "_push_on_torch_function_stack")]
if all(_stack):
    _stack_depth, _pop_mode, _push_mode = _stack
else:  # each answer differs from the last, so the depth never matches and the mode never steps aside
    _stack_depth, _pop_mode, _push_mode = itertools.count().__next__, None, None


def layer_names(model: nn.Module) -> dict[int, str]:
    """id(module) -> the name its rows carry: the qualified name; the class name for the model itself,
    which is a row only when it is a single layer."""
    return {id(m): name or type(m).__name__ for m, name in modules_of(model)}


def modules_of(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, qualified name) for the model and every module inside it, each once, in the order of
    named_modules(): one call per module that has children, where named_modules resumes a generator
    per level for each module it yields."""
    found = [(model, "")]
    seen = {id(model)}

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                found.append((child, prefix + name))
                if child._modules:
                    visit(child, prefix + name + ".")

    visit(model, "")
    return found


_shape = attrgetter("shape")
_CONTAINER = Count(0, 0, {})  # a module's cost is that of the layers and operations inside it
_EMPTY = Count(0, 0, {}, "no operations")


class Tracer(AutogradRows, TorchFunctionMode):
    """With ``inner=True`` a layer's own torch calls (nn.ReLU's F.relu) are kept in its record for
    the tools that count them (ptflops); otherwise a counted layer runs with the mode switched off,
    which makes a trace cost little more than the forward pass itself."""

    # A torch.autograd call in the forward is a row with the cost of the gradients it computes (differentiated.py);
    # a tracer that only names the rows as they run (training.memory's) lets it run as any other call.
    counts_autograd = True

    def __init__(self, model: nn.Module, inner: bool = False, deferred: bool = False, backward: bool = False,
                 nodes: bool = False, differentiating: bool = False):
        super().__init__()
        self.model = model
        self.inner = inner
        # With ``backward``, each record also counts its gradients (the forward then runs with autograd on,
        # so that each tensor says whether it requires a gradient).
        self.backward = backward
        # ... and the autograd node of each row's outputs as made, so that a row whose output leads nowhere
        # (an unused pooler, a head left out of the output) is known to get no gradient (off_the_path).
        # (None for a row made with gradients off, under torch.no_grad or in a custom autograd.Function's
        # forward: autograd never differentiates it; see custom_functions.py.) ``nodes`` keeps them without the
        # gradients' counts, for the rows whose work never reaches the output (unused).
        self.grad_nodes: dict[int, tuple | None] | None = {} if backward or nodes or differentiating else None
        # With ``differentiating`` (a forward that calls torch.autograd.grad: differentiated.py), each row's call kept
        # till the end of the pass: index -> (backward counter, call, count, inputs, parameters, each output's (node,
        # output number)), for the gradients such a call computes.
        self.kept: dict[int, tuple] | None = {} if differentiating else None
        # (a call's row -> the nodes of the gradients it made with create_graph=True, and under forward-mode AD of
        # their tangents: hessian's, jvp of grad's; the calls whose gradients' tangents were out of the trace's sight)
        self.engines_made: dict[int, set] = {}
        self.gradients_tangents: dict[int, set] = {}
        self.tangents_unseen: set[int] = set()
        # a training step's row that computed tangents: the nodes of the operations that did (reverse over forward;
        # each node in one set: engines_made stops at these)
        self.tangents_made: dict[int, set] = {}
        self.tangents_kept: dict[int, tuple] = {}  # (their calls, as kept's, where the forward does not differentiate)
        # The rows made under torch.vmap: index -> (how many times each ran, in words); those whose inputs carry
        # forward-mode AD's tangents: index -> how many times each input's term of the tangent runs more than the
        # row, and its weights' (transforms.py).
        self.vmapped: dict[int, tuple[int, str]] = {}
        # (or, where its tangents are out of sight, why: transforms.out_of_sight's Count)
        self.tangents: dict[int, tuple[tuple[int, ...], int] | Count] = {}
        self.parameter_tangents: dict[int, tuple[int, ...]] = {}  # (a layer's: each parameter's, as Needs names them)
        # With ``nodes``, each read of a tensor's size that TorchScript would trace (x.shape, x.size(), x.numel(): not
        # len or dim, constants in a trace), with the index the next row takes, whose operation likely uses it.
        self.size_reads: list[tuple[Tensor, int]] | None = [] if nodes else None
        # With ``nodes`` too, the rows that wrote into each storage where no autograd node may say so (a value
        # written by x[i] = v, which no row records; an in-place result or a view a row made): storage key -> rows.
        # A later row that reads the storage has them among its sources (unused follows them where no node does).
        self.written: dict[int, list[int]] | None = {} if nodes else None
        self._storages_held: list = []  # (their keys are not reused while the trace runs)
        # The rows whose gradient's work depends on which of their outputs receive one (QR's: gR·Rᴴ and Qᴴ·gQ):
        # index -> (backward counter, call, count, inputs, parameters, each output's (autograd node, output_nr)).
        self.per_output: dict[int, tuple] = {}
        self.functions_seen: set = set()  # the autograd nodes of the custom Functions whose rows are made
        self.function_rows: list[tuple[int, int, str]] = []  # (first, end, Function): the rows its forward made
        self._graph: tuple | None = None  # (output, the autograd nodes its graph reaches), once walked
        self.backward_errors: list[tuple[str, Exception]] = []  # (Function, why its backward could not run)
        self.inside_op = 0  # inside an operation's call (__torch_function__)
        # (dtype, then): then() is called, once, when a call the trace sees gives a floating-point tensor of another
        # dtype than the model's (watch_dtypes)
        self._other_dtype: tuple | None = None
        self._functions = contextlib.ExitStack()  # torch.autograd.Function.apply, the trace's while it runs
        # Deferred, each record is worked out after the forward pass, in one run (a fifth of the
        # trace's own cost saved, against the same work between the layers' kernels), but every
        # tensor is held till then, so only for the meta device, where tensors take no memory.
        # Shapes are read as the forward runs either way.
        self.pending: list | None = [] if deferred else None
        self.swapped: dict[int, list] = {}  # a deferred layer's weights where functional_call swapped others in
        self.param_names: dict[int, str] = {}  # id -> its slot name (weight, bias), each parameter once
        self.parameters: list[nn.Parameter] = []
        self.buffers: dict[int, torch.Tensor] = {}
        self.packed: dict[int, list[Tensor]] = {}  # id(quantized layer) -> its weights, unpacked (packed.py)
        self.packed_objects: dict[int, list[Tensor]] = {}  # id(a packed weight a GraphModule holds) -> its tensors
        self._walk = modules_of(model)
        names, parameters, buffers = self.param_names, self.parameters, self.buffers
        for m, _ in self._walk:
            if m._parameters:
                for slot, p in m._parameters.items():
                    if p is not None and id(p) not in names:
                        names[id(p)] = slot
                        parameters.append(p)
            if m._buffers:
                for b in m._buffers.values():
                    if b is not None:
                        buffers[id(b)] = b
            if not m._parameters and type(m).__module__.startswith(QUANTIZED):  # (its weights packed: packed.py)
                self._unpack(m)
            elif isinstance(m, GraphModule):  # (FX's quantized lowering keeps a functional layer's weights packed)
                self._unpack_attributes(m)
        # A lazy layer (nn.LazyLinear) had parameters still to be made when the trace began (by type: one
        # test per kind of parameter, not per parameter).
        self.lazy = any(issubclass(kind, UninitializedTensorMixin) for kind in set(map(type, parameters)))
        self.records: dict[int, LayerRecord] = {}
        self.stack: list[Frame] = []
        self.next_index = 0
        self.op_calls: Counter = Counter()
        self.params_seen: set[int] = set()
        self._wrapped: list[dict] = []  # the __dict__ of each module whose forward is the trace's
        self._own_forwards: list[tuple[dict, object]] = []  # (__dict__, forward) of instances with their own
        # (error, (qualified name, op, input shapes, args, kwargs)) of the last operation that raised, and (error, the
        # stack as it stood) of the last module call that raised: failure() reads them for the error that stopped the
        # pass (not one the model caught and went on from)
        self._failed_op: tuple | None = None
        self._raised: tuple | None = None
        # The rows of the module calls made as ``module.forward(x)``, not ``module(x)`` (PyG's TAGConv and ChebConv
        # call their linear layers so): no hook runs for them, so the tools that count by hooks see none.
        self.direct: set[int] = set()
        self.fields: dict[int, tuple] = {}  # id(tensor) -> (weak reference, receptive field)
        self.producers: dict[int, tuple] = {}  # id(tensor) -> (weak reference, index of the record that made it)
        self.inputs: list[torch.Tensor] = []  # the model's input tensors (watch_input)
        self.layer: Frame | None = None  # the counted layer whose forward is running, if any
        self.tokens = False  # whether an input is token ids, whose fields are token_fields.Tokens
        # A float input (N, A, B): its fields read as a sequence, id(tensor) -> (weak reference, Tokens), carried
        # beside a signal's until a step says which it is (sequence_input.py), and the rows they were carried to
        self.undecided: dict[int, tuple] | None = None
        self.undecided_rows: list[tuple[int, Tokens]] = []
        self.sequence_reader = ""  # the row that read it as a sequence or an image, and which (sequence_input.py)
        self.sequence_reading = ""
        self.quiet = False  # True while the mode is off the stack for that layer's forward

    def _unpack(self, module: nn.Module) -> None:
        """A quantized layer's packed weights, unpacked: its row owns them."""
        slots = packed_weights(module)
        if slots:
            self.packed[id(module)] = self._registered(slots)

    def _unpack_attributes(self, module: nn.Module) -> None:
        """The packed weights a GraphModule holds as attributes (_packed_weight_0): the operation they are given to
        (quantized::linear, quantized::conv2d) owns them."""
        for value in vars(module).values():
            if packed_object(value) and id(value) not in self.packed_objects:
                self.packed_objects[id(value)] = self._registered(object_weights(value))

    def _registered(self, slots) -> list[Tensor]:
        """Unpacked weights made parameters (at their int8 bytes, named for the arithmetic), their scales and zero
        points buffers."""
        for slot, t in slots:
            self.param_names[id(t)] = slot
            self.parameters.append(t)
            for q in quantization_parameters(t):
                self.buffers[id(q)] = q
        return [t for _, t in slots]

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self):
        # Each module of the model runs a forward of the trace's own, and gets its own back on exit.
        # Module hooks, even two process-wide ones, send every module call through PyTorch's slow
        # path, which cost a tenth of a small network's meta forward pass. Modules outside the model
        # (one built inside a forward) are left alone.
        # Each forward is a partial of one method, with what does not change from call to call of
        # its module: [module, row name, counter (None: not a layer), how its record is made, calls
        # so far]. (A closure per module would cost a cell for each name it holds.)
        wrapped, own_forwards, model = self._wrapped, self._own_forwards, self.model
        traced_forward = self._traced_forward
        leave_layer, leave_module = self._leave_layer, self._leave_module
        try:
            for module, name in self._walk:
                own = module.__dict__
                if "forward" in own:  # a forward of the instance's own: put back on exit
                    own_forwards.append((own, own["forward"]))
                kind = type(module)
                counter = counter_for_type(kind)
                # The model itself is a row only when it is a single layer (an nn.Conv2d analysed
                # alone); it is named "" (its operations' names start bare; no child's name can be
                # empty), or its class when a row.
                row = "" if module is model and counter is None and module._modules else name or kind.__name__
                settled = [module, row, counter, leave_module if counter is None else leave_layer, 0]
                forward = module.forward
                if isinstance(module, _LOOKUPS) and kind.forward in _LOOKUP_FORWARDS:  # (a subclass's own forward
                    # takes what it likes: BART's positions take the ids' shape, OPT's the attention mask)
                    forward = partial(_looked_up, forward)
                own["forward"] = partial(traced_forward, settled, forward)
                wrapped.append(own)
            apply = partial(on_class, vars(torch.autograd.Function)["apply"])  # (C's on 2.14, Python's before)
            self._functions.enter_context(replaced([(torch.autograd.Function, "apply",
                                                     partial(self._applied, apply))]))
            self._functions.enter_context(flex_eagerly())
            self._functions.enter_context(compiled_eagerly())
            self._functions.enter_context(scripted_eagerly(self))
        except BaseException:
            self._restore()
            raise
        entered = super().__enter__()
        self._depth = _stack_depth()  # this mode is on top while the stack is this deep
        return entered

    def __exit__(self, *exc):
        self._restore()
        result = super().__exit__(*exc)
        self._settle()
        return result

    def _settle(self) -> None:
        """The deferred records made (Tracer(deferred=True)), in order."""
        if self.pending:
            with NO_TORCH_FUNCTION():
                for leave, args in self.pending:
                    leave(*args)
            self.pending.clear()

    def _restore(self) -> None:
        for own in self._wrapped:
            own.pop("forward", None)
        for own, forward in self._own_forwards:
            own["forward"] = forward
        self._wrapped.clear()
        self._own_forwards.clear()
        self._functions.close()

    @property
    def current(self) -> Frame | None:
        return self.stack[-1] if self.stack else None

    def ordered(self) -> tuple[LayerRecord, ...]:
        return tuple(map(self.records.__getitem__, sorted(self.records)))

    def off_the_path(self, output) -> set[int]:
        """The rows (indices) whose outputs autograd made but the output's graph does not reach from
        ``output`` (the tensors a loss is taken from): the backward pass computes no gradient there. (Not one whose
        tangents were out of the trace's sight: the graph may reach the operations that computed them, jvp of jvp's,
        though not its output.)"""
        reached = self._reached(output)
        self._graph = None  # (its last use: the graph, and on a real device its saved tensors, not held on)
        return {index for index, nodes in (self.grad_nodes or {}).items()
                if nodes is not None and any(n is not None for n in nodes)
                and not any(n in reached for n in nodes if n is not None)
                and not isinstance(self.tangents.get(index), Count)}

    def unused(self, output, kept: list[torch.Tensor]) -> set[int]:
        """The rows whose work reaches neither ``output`` nor a tensor in ``kept`` that outlives the forward pass
        (a buffer, an input written in place): what TorchScript's dead-code elimination drops from a trace. Each
        row's reach is read off the autograd graph (a trace with gradients on), which follows the data through
        what no row records (``out[:, :8] = linear(x)``). A row the graph does not reach (or has no node for: an
        integer or gradient-free result, a row made under no_grad) is kept where the data's flow says so: it made,
        or wrote into, what outlives the pass (written: x[i] = v, an in-place result or a view), or a kept row's
        inputs come from it (its sources, the writes into their storages) or its size was read just before a kept
        row (size_reads), as TorchScript traces x.shape into the operation that uses it."""
        reached = self._reached([output, *kept])
        self._graph = None
        dead = set()
        for index, nodes in (self.grad_nodes or {}).items():
            if not (nodes and any(n is not None and n in reached for n in nodes)):
                dead.add(index)  # (unreached; a row without nodes, made under no_grad or gradient-free, for now)
        seeds = []  # the rows that made, or wrote into, what outlives the pass
        for t in [*tensors_in(output), *kept]:
            seeds += self._sources([t])
        for index in seeds:
            dead.discard(index)
        sizes: dict[int, list[int]] = {}  # a row -> the rows whose size was read just before it (x.view(y.shape[0], -1))
        for t, reader in self.size_reads or ():
            entry = self.producers.get(id(t))
            if entry is not None and entry[0]() is t and entry[1] >= 0:
                sizes.setdefault(reader if reader in self.records else -1, []).append(entry[1])
        live = [index for index in self.records if index not in dead] + [-1]  # (-1: a size read after the last row)
        while live:
            index = live.pop()
            for source in (*(self.records[index].sources if index >= 0 else ()), *sizes.get(index, ())):
                if source in dead:
                    dead.discard(source)
                    live.append(source)
        return dead

    def per_output_backward(self, output) -> dict[int, Count]:
        """The backward of each row whose gradient's work depends on which of its outputs receive one, counted
        with a flag for each: whether ``output``'s graph reaches it (an edge into that output of its node)."""
        if not self.per_output:
            return {}
        edges = {(t.grad_fn, t.output_nr) for t in tensors_in(output) if t.grad_fn is not None}
        for node in self._reached(output):
            edges.update(node.next_functions)
        recounted = {index: gradient(partial(counter, reached=tuple(pair in edges for pair in made)), call, count,
                                      inputs, params)
                     for index, (counter, call, count, inputs, params, made) in self.per_output.items()}
        self.per_output = {}  # (its calls' tensors not held on)
        return recounted

    def differentiated_backward(self, output) -> dict[int, Count]:
        """The training backward of each torch.autograd.grad row whose gradients were made with create_graph=True:
        the products of the operations its engine ran (and under forward-mode AD those that computed their
        tangents), as the step's backward differentiates them (differentiated.again); of each row that computed
        tangents, its own gradients and its tangents' operations' (differentiated.reverse_over_forward); and of
        each row the step reaches from within only (differentiated.from_within)."""
        if not self.engines_made and not self.tangents_made:
            return {}
        step = differentiated.walk(differentiated.training_step(tensors_in(output)))
        # (each row the step reaches from within only, its inner products: not the nodes another row's tangents or a
        # gradient's engine made, which are theirs, though a row's inside may hold them: _unpack_dual's, the tangent's)
        owned = set().union(*self.tangents_made.values(), *self.engines_made.values())
        with NO_TORCH_FUNCTION():
            within = {index: differentiated.from_within(inner, step) for index, inner in
                      differentiated.entered_within(self.tangents_kept if self.kept is None else self.kept,
                                                    self.grad_nodes, step.runs - owned).items()}
        tangents = {index: differentiated.reverse_over_forward(self.records[index].backward, self.grad_nodes[index],
                                                               made, step, within.get(index))
                    for index, made in self.tangents_made.items() if self.records[index].backward is not None}
        again = {index: FORWARD_AD_BACKWARD if index in self.tangents_unseen else
                 differentiated.again(made, step, tangents=self.gradients_tangents.get(index, frozenset()))
                 for index, made in self.engines_made.items()}
        return within | tangents | again

    def _reached(self, output) -> set:
        """The autograd nodes of ``output``'s graph that its gradient reaches (walked once for both its uses:
        functions_unseen, off_the_path; not through an edge no gradient is sent along: differentiated.sent)."""
        if self._graph is not None and self._graph[0] is output:
            return self._graph[1]
        roots = [t.grad_fn for t in tensors_in(output) if t.grad_fn is not None]
        reached, stack = set(), roots
        while stack:
            node = stack.pop()
            if node not in reached:
                reached.add(node)
                stack.extend(n for n, _ in differentiated.sent(node) if n is not None)
        self._graph = (output, reached)
        return reached

    def _made_nodes(self, outputs) -> tuple | None:
        """The outputs' autograd nodes (grad_nodes), None when made with gradients off."""
        return autograd_nodes(outputs) if torch.is_grad_enabled() else None

    def inside_functions(self, records: tuple[LayerRecord, ...]) -> tuple[LayerRecord, ...]:
        """The records, each made in a custom Function's forward marked with its name (LayerRecord.inside)."""
        if not self.function_rows:
            return records
        inside = {}
        for first, end, name in reversed(self.function_rows):  # (the outer one's name where they nest: it ends last)
            inside.update((i, name) for i in range(first, end) if i not in inside)
        return tuple(r._replace(inside=inside[r.index]) if r.index in inside else r for r in records)

    def gradients_off(self) -> set[int]:
        """The rows made with gradients off (torch.no_grad, a custom autograd.Function's forward): autograd
        computes no gradient for them, whatever their inputs need."""
        return {index for index, nodes in (self.grad_nodes or {}).items() if nodes is None}

    def failure(self, error: BaseException) -> tuple[tuple | None, Frame | None]:
        """What the error that stopped the forward pass is known by: the operation that raised it (qualified name, op,
        input shapes, args, kwargs), where one did, and the innermost recorded module that was running then."""
        raised = set(map(id, chain(error)))
        op = self._failed_op[1] if self._failed_op and id(self._failed_op[0]) in raised else None
        stack = self._raised[1] if self._raised and id(self._raised[0]) in raised else self.stack
        frames = [f for f in stack if f.index is not None]
        return op, frames[-1] if frames else None

    # -- modules ------------------------------------------------------------------------
    def _traced_forward(self, settled: list, forward, *args, **kwargs):
        """A module's forward, recorded (each module's forward is this while the trace runs, with its own
        ``settled`` facts and ``forward``, see __enter__): the call is entered (a frame on the stack; a counted layer
        runs with the mode stepped aside), run, and left (its shapes read, its record made now or,
        deferred, after the pass)."""
        if self.layer is not None:  # inside a counted layer: nothing is recorded
            return forward(*args, **kwargs)
        module, row, counter, leave, calls = settled
        settled[4] = calls = calls + 1
        index = None
        if row:
            index = self.next_index
            self.next_index = index + 1
            if id(sys._getframe(1).f_code) not in _CALLS:  # (not Module.__call__'s: the forward called itself)
                self.direct.add(index)
        stack = self.stack
        if stack:
            caller = stack[-1]
            depth, parent = caller.depth + 1, caller.index
        else:
            depth, parent = 0, None
        # (Inline where a helper would be called per module call: a Python call costs as much as
        # what it does here. The usual call passes one tensor and returns one.)
        inputs = [args[0]] if len(args) == 1 and isinstance(args[0], Tensor) else tensors_in(args)
        if index is not None and transforms.active():
            self._transformed(index, inputs + tensors_in(kwargs), () if counter is None else layer_parameters(module))
        frame = new_tuple(Frame, (module, index, row, calls, depth, parent, counter, inputs, []))
        quiet = False
        if counter is not None:
            self.layer = frame
            if not self.inner and _stack_depth() == self._depth:  # the mode steps aside
                _pop_mode()
                self.quiet = quiet = True
        stack.append(frame)
        try:
            output = forward(*args, **kwargs)
        except BaseException as error:
            self._raised_in(frame, error, quiet, settled)
            raise
        stack.pop()
        if kwargs:
            inputs = inputs + tensors_in(kwargs)
        outputs = [output] if isinstance(output, Tensor) else tensors_in(output)
        if quiet:  # the mode is off the stack: the layer's tensor queries cannot reach it
            try:
                shapes_in = tuple(map(tuple, map(_shape, inputs)))
                shapes_out = tuple(map(tuple, map(_shape, outputs)))
            finally:
                self.layer = None
                self.quiet = False
                _push_mode(self)
        else:
            if frame is self.layer:
                self.layer = None
            with NO_TORCH_FUNCTION():
                shapes_in, shapes_out = shapes_of(inputs), shapes_of(outputs)
        if index is None:  # the model itself, not a row
            return output
        if self.grad_nodes is not None:
            self.grad_nodes[index] = self._made_nodes(outputs)
        if self.tangents and index in self.tangents and counter is not None:
            self._tangents_made(index, inputs, outputs)
        if self.pending is None:
            with NO_TORCH_FUNCTION():
                leave(frame, inputs, outputs, shapes_in, shapes_out, self.next_index)
        else:
            if counter is not None and (self.kept is not None or self.backward):  # (its parameters as they are
                # now, where torch.func.functional_call swapped others in: the gradients are theirs)
                own = list(module.parameters()) if module._modules else list(module._parameters.values())
                if any(p is not None and not isinstance(p, nn.Parameter) for p in own):
                    self.swapped[index] = own
            self.pending.append((leave, (frame, inputs, outputs, shapes_in, shapes_out, self.next_index)))
        return output

    def _raised_in(self, frame: Frame, error: BaseException, quiet: bool, settled: list) -> None:
        """A module's forward raised: the stack as it stood kept for the failure's message (by the innermost call
        the error leaves), and the trace put back as before the call, for a model that catches the error and goes
        on (speechbrain's Xvector: ``try: layer(x, lengths=lens) except TypeError: layer(x)``); the call's row and
        call number given back where nothing ran inside it."""
        if self._raised is None or self._raised[0] is not error:
            self._raised = (error, tuple(self.stack))
        self.stack.pop()
        if frame is self.layer:
            self.layer = None
        if quiet:
            self.quiet = False
            _push_mode(self)
        if frame.index is None or frame.index == self.next_index - 1:
            settled[4] -= 1
            if frame.index is not None:
                self.next_index -= 1
                self.direct.discard(frame.index)

    def _leave_layer(self, frame: Frame, inputs: list, outputs: list, shapes_in: tuple, shapes_out: tuple,
                     end: int) -> None:
        """A counted layer's record: its formula, its output's receptive field, the parameters it owns."""
        # (Written out where a helper would cost a Python call a record: the call to the counter, the
        # field lookups, the receptive rule found by type.)
        module = frame.module
        first_in, first_out = shapes_in[0] if shapes_in else None, shapes_out[0] if shapes_out else None
        call = new_tuple(ModuleCall, (module, shapes_in, shapes_out, first_in, first_out))
        count = frame.counter(call)
        if self.undecided is not None:
            self._sequence_or_signal(frame, module, None, inputs, outputs, shapes_in, shapes_out)
        fields = self.fields
        known = []
        for t in inputs:
            entry = fields.get(id(t))
            known.append(entry[1] if entry is not None and entry[0]() is t else None)
        field = None
        if known and known[0] is not None:
            rule = receptive.RULES.get(type(module)) or receptive.rule_for(module)
            if self.tokens and type(known[0]) is Tokens:  # (a sequence's: token_fields.py)
                field = token_fields.layer(module, known, shapes_in, shapes_out)
            elif rule is receptive.through and len(known) == 1:  # an element-wise layer: the field passes
                field = known[0]
            else:
                field = rule(module, known[0], known, shapes_in, shapes_out)
        if field is not None:
            for t in outputs:
                fields[id(t)] = (weakref.ref(t), field)
        elif outputs:  # the output keeps what it had (an in-place layer's input field), if anything
            field = self._field(outputs[0])
        # A layer owns its parameters (a leaf's own slots; an absent bias is None), and one given to it as an
        # input, if none used it before (SEW-D's relative position table, rel_embeddings.weight, into a
        # LayerNorm): it did run, and its gradient is the layer's ∂x.
        own = layer_parameters(module)
        if self.packed and id(module) in self.packed:
            own = self.packed[id(module)]
        grad = None
        if self.backward or self.kept is not None or self.tangents:
            own = list(own)
            # (the tensors it ran with, where functional_call swapped them in for the call: their gradients, not
            # the parameters', which the layer still owns and counts)
            used = self.swapped.pop(frame.index) if frame.index in self.swapped else own
            counter = grad_counter_for_type(type(module))
            self._keep(frame.index, (counter, call, count, inputs, used, _made(outputs)))
            if self.backward:
                grad = gradient(counter, call, count, inputs, used)
            if self.tangents and frame.index in self.tangents:
                count, grad = self._with_tangents(frame.index, counter, call, count, grad)
        foreign = [t for t in inputs if type(t) is not Tensor and isinstance(t, nn.Parameter)]  # (a plain tensor
        # is none: the test of its class alone, without Parameter's own __instancecheck__, a Python call)
        if foreign:
            own = [*own, *foreign]
        self._record(frame, type_name(module), LAYER, inputs, outputs, shapes_in, shapes_out, count, own, field, "",
                     grad)
        if foreign:  # (named in full in the arithmetic: "weight" would read as the layer's own)
            names = {id(p): n for n, p in self.model.named_parameters() if any(p is f for f in foreign)}
            formulas = self.records[frame.index].formulas
            if isinstance(formulas, Formulas) and formulas._names is not None:
                formulas._names = ChainMap(names, self.param_names)

    def _leave_module(self, frame: Frame, inputs: list, outputs: list, shapes_in: tuple, shapes_out: tuple,
                      end: int) -> None:
        """Any other module's record: its cost is that of the layers and operations inside it (records
        frame.index + 1 up to ``end``), which also use its parameters."""
        inside = end > frame.index + 1
        field = self._field(outputs[0]) if outputs else None
        if self.undecided is not None and outputs and shapes_out and id(outputs[0]) in self.undecided:
            self.undecided_rows.append((frame.index, self.undecided[id(outputs[0])][1]))
        if field is None and outputs and not inside:  # a module that did no operation
            known = [f for f in self._fields(inputs) if f is not None]
            if known and self.tokens and any(type(f) is Tokens for f in known):
                field = token_fields.met(known)  # (a sequence's, passed on)
            elif known:
                field = receptive.merge(known)
                self._set_field(outputs[0], field)
        self._record(frame, type_name(frame.module), MODULE, inputs, (), shapes_in, shapes_out,
                     _CONTAINER if inside else _EMPTY, (), field, "")

    # -- functional operations ----------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        spelled = spelling(func, kwargs, 1)  # (x * y, not x.mul(y): read off the caller's instruction now)
        if func in differentiated.CALLS and self.counts_autograd and self.layer is None and self.stack:
            return self._differentiated(func, args, kwargs, spelled)
        self.inside_op += 1  # (a Function applied inside the operation is its own: a custom op's autograd)
        try:
            result = func(*args, **kwargs)
        except Exception as error:
            self.inside_op -= 1
            result = stand_in(func, args, kwargs)  # (a meta kernel that refuses what the CPU's runs)
            if result is not None:
                return self._traced(func, args, kwargs, result, spelled)
            parent = self.current
            if parent is not None and self.layer is None and (self._failed_op is None or
                                                               self._failed_op[0] is not error):
                name = op_name(func)  # (the innermost operation the error leaves)
                given = [t for t in tensors_in(args) + tensors_in(kwargs) if not isinstance(t, UninitializedTensorMixin)]
                self._failed_op = (error, (f"{parent.name}.{name}" if parent.name else name, name, shapes_of(given),
                                           args, kwargs))
            raise
        self.inside_op -= 1
        if self._other_dtype is not None and isinstance(result, (Tensor, tuple, list)):
            self._dtypes_of(result)
        return self._traced(func, args, kwargs, result, spelled)

    def watch_dtypes(self, dtype: torch.dtype, then) -> None:
        """Call ``then()`` once, the first time a call seen gives a floating-point tensor that is not ``dtype`` (a
        torch.zeros in float32 in a bfloat16 model, x.double()): mixed dtypes may follow (mixed_dtypes.py)."""
        self._other_dtype = (dtype, then)

    def _dtypes_of(self, result) -> None:
        dtype, then = self._other_dtype
        for t in [result] if isinstance(result, Tensor) else tensors_in(result):
            if t.dtype is not dtype and t.is_floating_point():
                self._other_dtype = None
                then()
                return

    def _traced(self, func, args, kwargs, result, spelled: str | None = None):
        parent = self.current
        if parent is None and self.layer is None:  # (a layer here: a custom Function's backward, after the pass)
            return result
        name = None
        if type(func) is _OP_OVERLOAD and func.namespace == "aten":  # (a graph of torch.export's: aten.py)
            name, args, kwargs = aten.in_python_order(op_name(func), tuple(args), kwargs)
        outputs = tensors_in(result)
        inputs = tensors_in(args) + tensors_in(kwargs)
        if not outputs or not inputs:
            if self.size_reads is not None and inputs and func in _SIZE_QUERIES:
                self.size_reads.append((inputs[0], self.next_index))
            elif self.written is not None and len(inputs) > 1 and getattr(func, "__name__", "") == "__setitem__":
                self._wrote(inputs[0], self._sources(inputs[1:]))  # (x[i] = v: v and i written into x)
            if self.tokens and inputs and getattr(func, "__name__", "") == "__setitem__":  # (in order with the rows
                # that make the fields it reads: after the pass, where they wait for it)
                if self.pending is None:
                    self._tokens_written(inputs)
                else:
                    self.pending.append((self._tokens_written, (inputs,)))
            return result  # metadata queries (size, dim) and tensor creation
        try:
            shapes_in, shapes_out = shapes_of(inputs), shapes_of(outputs)
        except RuntimeError:
            if any(isinstance(t, UninitializedTensorMixin) for t in inputs + outputs):
                return result  # a lazy layer making its parameters (its hook runs before its forward)
            raise
        layer = self.layer
        if layer is not None:  # counted by the layer's formula; kept only as what the layer called
            if layer.counter is BACKWARD_RUN:  # (a custom Function's backward, running: its calls are its cost)
                if getattr(func, "__wrapped__", func) in custom_functions.AUTOGRAD or \
                        getattr(func, "__name__", "") == "__get__":
                    return result  # (autograd's work: the differentiated calls' gradients, torch.autograd's functions
                    # being the run's replacements here; a property read, x.grad, x.T: no arithmetic)
                enabled = torch.is_grad_enabled()  # (with gradients on: a forward run again, autograd may differentiate)
                layer.inner.append(custom_functions.Call(
                    OpCall(name or op_name(func), tuple(args), kwargs, shapes_in, shapes_out,
                           enabled and any(t.requires_grad for t in outputs)),
                    inputs, autograd_nodes(outputs) if enabled else None))
            else:
                layer.inner.append((spelled or origin(func), shapes_in, shapes_out))
            return result
        name = name or op_name(func)
        qualified = f"{parent.name}.{name}" if parent.name else name
        self.op_calls[qualified] += 1
        index = self.next_index
        self.next_index += 1
        if self.grad_nodes is not None:
            self.grad_nodes[index] = self._made_nodes(outputs)
        if transforms.active():
            self._transformed(index, inputs)
            self._tangents_made(index, inputs, outputs)
        # (The operation's own frame, though it runs no forward: its record is made as a module's is.)
        frame = Frame(None, index, qualified, self.op_calls[qualified], parent.depth + 1, parent.index, None, inputs,
                       [])
        op = (frame, name, func, args, kwargs, inputs, outputs, shapes_in, shapes_out, spelled)
        if self.pending is None:
            self._leave_op(*op)
        else:
            self.pending.append((self._leave_op, op))
        return result

    def _leave_op(self, frame, name, func, args, kwargs, inputs, outputs, shapes_in, shapes_out, spelled) -> None:
        counter = OPS.get(name)
        call = OpCall(name, tuple(args), kwargs, shapes_in, shapes_out, any(t.requires_grad for t in outputs))
        count = counter(call) if counter is not None else NOT_COUNTED
        if self.undecided is not None:
            self._sequence_or_signal(frame, None, call, inputs, outputs, shapes_in, shapes_out)
        every = self._fields(inputs) if self.tokens else ()
        if any(type(f) is Tokens for f in every):  # (a sequence's: token_fields.py)
            field = token_fields.for_op(name, call, every)
        else:
            field = receptive.for_op(name, call, self._fields([t for t in inputs if not isinstance(t, nn.Parameter)]))
        for t in outputs:
            self._set_field(t, field)
        # (a parameter an operation writes in place, its output itself, is not used by it: nn.init's
        # kaiming_uniform_ on a layer a forward builds, as BigBird's does when it switches its attention)
        params = [t for t in inputs if isinstance(t, nn.Parameter) and not any(o is t for o in outputs)]
        if self.packed_objects:  # (a packed weight given to the operation: its tensors are its parameters)
            params += [t for a in args if id(a) in self.packed_objects for t in self.packed_objects[id(a)]]
        grad = None
        if self.backward or self.kept is not None or self.tangents:
            counter = GRAD_OPS.get(name)
            self._keep(frame.index, (counter, call, count, inputs, params, _made(outputs)))
        if self.backward:
            grad = gradient(counter, call, count, inputs, params)
            if getattr(counter, "per_output", False):  # (recounted once the graph is known: per_output_backward)
                self.per_output[frame.index] = (counter, call, count, inputs, params, _made(outputs))
        if self.tangents and frame.index in self.tangents:
            count, grad = self._with_tangents(frame.index, counter, call, count, grad)
        self._record(frame, name, OP, inputs, outputs, shapes_in, shapes_out, count, params, field,
                     spelled or origin(func), grad)


    def unseen(self, name: str, inputs: list, outputs: list) -> None:
        """A row "not counted" for a call whose operations ran out of the trace's sight (a TorchScript function
        without its Python: eager.scripted_eagerly), owning the parameters it was given."""
        if self.current is None or self.layer is not None:
            return
        frame, shapes_in, shapes_out = self._call_row(self.current, name, inputs, outputs)
        with NO_TORCH_FUNCTION():
            self._record(frame, name, OP, inputs, outputs, shapes_in, shapes_out, _UNSEEN_SCRIPT,
                         [t for t in inputs if isinstance(t, nn.Parameter)], None, "torch.jit.script",
                         NOT_COUNTED if self.backward else None)

    def _call_row(self, parent: Frame, name: str, inputs: list, outputs: list) -> tuple[Frame, tuple, tuple]:
        """The frame of a row for a call the trace handles itself (a custom Function's, torch.autograd.grad's),
        named after its parent, and its shapes."""
        qualified = f"{parent.name}.{name}" if parent.name else name
        self.op_calls[qualified] += 1
        index = self.next_index
        self.next_index += 1
        with NO_TORCH_FUNCTION():
            shapes_in, shapes_out = shapes_of(inputs), shapes_of(outputs)
            if self.grad_nodes is not None:
                self.grad_nodes[index] = self._made_nodes(outputs)
        frame = Frame(None, index, qualified, self.op_calls[qualified], parent.depth + 1, parent.index, None, inputs,
                       [])
        return frame, shapes_in, shapes_out


    def _sources(self, tensors) -> list[int]:
        """The rows that made ``tensors`` (and, tracing for unused, that wrote into their storages)."""
        producers, sources = self.producers, []
        for t in tensors:
            entry = producers.get(id(t))
            if entry is not None and entry[0]() is t:
                sources.append(entry[1])
        return sources + self._written_into(tensors) if self.written else sources

    def _written_into(self, tensors) -> list[int]:
        return [row for t in tensors for key in storages.keys(t) for row in self.written.get(key, ())]

    def _wrote(self, t: Tensor, rows: list[int]) -> None:
        for storage in storages.storages(t):
            self._storages_held.append(storage)
            self.written.setdefault(storage._cdata, []).extend(r for r in rows if r >= 0)

    # -- receptive fields -----------------------------------------------------------------
    def watch_input(self, x: torch.Tensor) -> None:
        self.inputs.append(x)
        self.producers[id(x)] = (weakref.ref(x), -1)
        if x.dim() >= 3:
            self._set_field(x, receptive.Field.of_input(tuple(x.shape[2:])))
            sequence = sequence_input.of_input(tuple(x.shape), x.is_floating_point())
            if sequence is not None and len(self.inputs) == 1:  # (the first input's question only)
                self.undecided = {id(x): (weakref.ref(x), sequence)}
        elif x.dim() == 2 and not (x.is_floating_point() or x.is_complex() or x.dtype is torch.bool):  # token ids
            self._set_field(x, token_fields.of_ids(tuple(x.shape)))
            self.tokens = True

    def _sequence_or_signal(self, frame: Frame, module: nn.Module | None, call: OpCall | None, inputs: list,
                            outputs: list, shapes_in: tuple, shapes_out: tuple) -> None:
        """A step that takes the float input (N, A, B), or what views and steps per element made of it: read as a
        sequence or a signal (sequence_input.py). One that says nothing of it carries the sequence's fields on; the
        first other one decides: a sequence's fields replace the signal's, in the tensors and in the rows."""
        undecided = self.undecided
        shadows = [e[1] if (e := undecided.get(id(t))) is not None and e[0]() is t else None for t in inputs]
        held = next((i for i, f in enumerate(shadows) if f is not None), None)
        if held is None:
            return
        given = tuple(self.inputs[0].shape)
        if module is not None:
            reads = sequence_input.layer_reads(module, shadows[held], shapes_in[held], given)
        else:
            reads = sequence_input.op_reads(call.name, call, shadows[held], shapes_in[held], given)
        if reads is None:
            field = token_fields.layer(module, shadows, shapes_in, shapes_out) if module is not None else \
                token_fields.for_op(call.name, call, shadows)
            if field is not None and not field.part and not field.whole:
                for t in outputs:
                    undecided[id(t)] = (weakref.ref(t), field)
                if shapes_out:  # (a row that made a tensor: its field is replaced once it is decided)
                    self.undecided_rows.append((frame.index, field))
                return
        self.undecided = None
        if reads == sequence_input.IMAGE:  # (N, A, B) given a channel, (N, 1, A, B): an image's fields, A x B
            rows, tensors = self.undecided_rows, [(k, e) for k, e in undecided.items() if e[0]() is not None]
            image = sequence_input.image_fields(given, [self.records[i].output_shapes[0] for i, _ in rows] +
                                                [tuple(e[0]().shape) for _, e in tensors],
                                                [f for _, f in rows] + [e[1] for _, e in tensors])
            if image is None:
                reads = sequence_input.SEQUENCE
            else:
                self.undecided_rows = [(i, f) for (i, _), f in zip(rows, image)]
                undecided = {k: (e[0], f) for (k, e), f in zip(tensors, image[len(rows):])}
        if reads not in (sequence_input.SEQUENCE, sequence_input.IMAGE):
            return
        for ref, field in undecided.values():
            t = ref()
            if t is not None:
                self.fields[id(t)] = (ref, field)
        for index, field in self.undecided_rows:
            self.records[index] = self.records[index]._replace(receptive=field)
        self.tokens = reads == sequence_input.SEQUENCE
        self.sequence_reader = f"{frame.name} ({type_name(module) if module is not None else call.name})"
        self.sequence_reading = reads

    def _tokens_written(self, inputs: list) -> None:
        """x[i] = v where x or v holds token fields: what x's positions see is not followed from here on."""
        if any(type(f) is Tokens for f in self._fields(inputs)):
            self._set_field(inputs[0], token_fields.LOST)

    def _set_field(self, t: torch.Tensor, field) -> None:
        if field is not None:
            self.fields[id(t)] = (weakref.ref(t), field)

    def _field(self, t: torch.Tensor):
        entry = self.fields.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def _fields(self, tensors: list[torch.Tensor]) -> list:
        return [self._field(t) for t in tensors]

    # -- records ------------------------------------------------------------------------
    def _record(self, frame: Frame, type_name: str, kind: str, inputs: list, outputs: list, shapes_in: tuple,
                shapes_out: tuple, count: Count, params, field, origin: str, grad: Count | None = None,
                made: list | None = None) -> None:
        """The record of a frame (a module's call, or an operation's). ``outputs``: the tensors the row
        made (none for a container: its layers made them); each adds its elements and bytes (of its shape
        when made) unless it is an input (an in-place result) or a view of one, or among ``made``, those
        other rows made (a custom Function's outputs, its forward's operations'). ``params``: those the row
        may own; it owns each one it is the first to use (None, an absent bias, is skipped)."""
        _, index, name, call, depth, parent, _, _, inner = frame
        producers = self.producers
        sources = self._sources(inputs)  # which records made its inputs: the arrows of the network's drawing
        elements = size = 0
        within = inputs + made if made else inputs
        for t, shape in zip(outputs, shapes_out):
            producers[id(t)] = (weakref.ref(t), index)
            base = t._base
            if self.written is not None and (base is not None or any(t is i for i in inputs)):
                self._wrote(t, [index])  # (a view or an in-place result: what reads its storage reads this row)
            for i in within:
                if t is i or (base is not None and (base is i or base is i._base)):
                    break
            else:
                n = prod(shape)
                elements += n
                size += n * t.element_size()
        if self.vmapped and index in self.vmapped:  # (one sample's shapes; the work of every sample)
            times, words = self.vmapped[index]
            count, elements, size = transforms.scaled(count, times, words), elements * times, size * times
            grad = transforms.scaled(grad, times, words) if grad is not None else None
        fresh = []
        total = trainable = param_bytes = 0
        if params:
            seen = self.params_seen
            for p in params:  # (one parameter given twice is counted once: it is seen after its first)
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    fresh.append(p)
                    n = p.numel()
                    total += n
                    if p.requires_grad:
                        trainable += n
                    param_bytes += n * p.element_size()
        # Both made without a Python call to their __new__ or __init__ (one a record): the record from
        # every field, in order; the formulas' text is written when first read.
        formulas = _new_object(Formulas)
        formulas._source, formulas._params, formulas._names = count.formulas, fresh, self.param_names
        formulas._text = None
        self.records[index] = new_tuple(LayerRecord, (
            index, name, call, type_name, kind, depth, parent, shapes_in, shapes_out, total, trainable, param_bytes,
            count.macs, count.elementwise, elements, size, formulas, count.note, field, origin, tuple(inner), grad,
            tuple(sources), "", _read_bytes(inputs) if any(t.layout is not _STRIDED for t in inputs) else None,
        ))


def type_name(module: nn.Module) -> str:
    """A row's type: its class's name; a quantized layer's as PyTorch prints it (QuantizedLinear, DynamicQuantizedLSTM:
    its class is named Linear, which would read as the float layer)."""
    cls = type(module)
    return module._get_name() if cls.__module__.startswith(QUANTIZED) else cls.__name__


_new_object = object.__new__  # see _record
_OP_OVERLOAD = torch._ops.OpOverload
_SIZE_QUERIES = frozenset({Tensor.shape.__get__, Tensor.size, Tensor.numel})  # (what a TorchScript trace records)
_STRIDED = torch.strided


def _read_bytes(inputs: list) -> tuple:
    """Each input's stored bytes where one is sparse (its indices' and values'; None for a dense one: its shape's
    elements), what the roofline reads of it."""
    return tuple(None if t.layout is _STRIDED else storages.stored_bytes(t) for t in inputs)


_LOOKUPS = (nn.Embedding, nn.EmbeddingBag)
_LOOKUP_FORWARDS = (nn.Embedding.forward, nn.EmbeddingBag.forward)
# The code that calls a module's forward when the module itself is called, and runs its hooks (Module.__call__ is
# _wrapped_call_impl, which calls _call_impl; torch.jit's tracing calls _slow_forward from _call_impl).
_CALLS = frozenset(id(f.__code__) for f in (getattr(nn.Module, name, None) for name in
                                            ("_call_impl", "_wrapped_call_impl", "_slow_forward")) if f is not None)
# (by id: a code object's hash is computed anew at each test, from its bytecode and constants; these live as long
# as nn.Module)


_UNSEEN_SCRIPT = Count(None, None, {}, "a TorchScript function without the Python it was made from: its operations "
                                       "run in the TorchScript interpreter, out of the trace's sight")


def _made(outputs: list[Tensor]) -> tuple:
    """Each output's (autograd node, output number): the edge a gradient reaches it by."""
    return tuple((t.grad_fn, t.output_nr) for t in outputs)


def _looked_up(forward, indices, *args, **kwargs):
    """An embedding's forward, refusing floating-point ids on every device: the CPU and CUDA refuse them, and
    PyTorch 2.13's meta device does, but 2.11's counted a lookup that no real run could make."""
    if isinstance(indices, Tensor) and (indices.is_floating_point() or indices.is_complex()):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {indices.dtype} instead")
    return forward(indices, *args, **kwargs)
