"""The rows of autograd's work inside a forward pass, a part of the Tracer (tracer.py; its state is made in
Tracer.__init__): a custom autograd.Function's forward and its own backward (custom_functions.py),
torch.autograd.grad called by the forward (differentiated.py), and the rows made under torch.func's transforms and
forward-mode AD, with their tangents (transforms.py, forward_over_reverse.py)."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from archcalc.analysis import custom_functions, differentiated, forward_over_reverse, transforms
from archcalc.analysis.calls import BACKWARD_RUN, NO_TORCH_FUNCTION, Frame, new_tuple, tensors_in
from archcalc.analysis.counting import Count, ModuleCall, Needs
from archcalc.analysis.gradients import FORWARD_AD_BACKWARD, alike, gradient_for, operation_gradient
from archcalc.analysis.origins import origin
from archcalc.analysis.records import OP


class AutogradRows:
    """Tracer's methods for custom Functions, torch.autograd.grad in a forward, and torch.func's transforms."""

    def _applied(self, apply, cls, *args, **kwargs):
        """torch.autograd.Function.apply while the trace runs: the Function's forward runs (its operations are
        rows, made with gradients off, marked as its: inside_functions), and a row of the Function's own follows;
        when the trace counts gradients, its backward runs once, its calls counted on that row."""
        parent = self.current
        if parent is None or self.layer is not None:  # (inside a counted layer, or a Function's backward)
            return apply(cls, *args, **kwargs)
        if self.inside_op:  # (an operation's own: a custom op's generated Function, counted on the op's row)
            result = apply(cls, *args, **kwargs)
            outputs = tensors_in(result)
            node = custom_functions.node_of(outputs) if self.backward and outputs else None
            if node is not None:
                self.functions_seen.add(node)  # (not a Function of the model's, for functions_unseen)
            return result
        first = self.next_index
        if issubclass(cls, custom_functions.RECOMPUTED):
            try:
                return custom_functions.recomputed(apply, cls, args, kwargs, self.backward)
            finally:
                self.function_rows.append((first, self.next_index, cls.__name__))
        result = apply(cls, *args, **kwargs)
        self.function_rows.append((first, self.next_index, cls.__name__))
        outputs = tensors_in(result)
        if not outputs:
            return result
        node = custom_functions.node_of(outputs) if self.backward else None
        if not self.backward:
            grad = None
        elif node is None:
            grad = custom_functions.no_backward(cls.__name__)
        else:
            self.functions_seen.add(node)
            with NO_TORCH_FUNCTION():
                grads = [torch.zeros_like(t) for t in outputs]
            grad = self._backward_of(cls.__name__, node, grads)
        inputs = tensors_in(args) + tensors_in(kwargs)
        frame, shapes_in, shapes_out = self._call_row(parent, cls.__name__, inputs, outputs)
        done = (frame, cls, first, inputs, outputs, shapes_in, shapes_out, grad)
        if self.pending is None:
            with NO_TORCH_FUNCTION():
                self._leave_function(*done)
        else:
            self.pending.append((self._leave_function, done))
        return result

    def _differentiated(self, func, args, kwargs, spelled: str | None):
        """torch.autograd.grad (or a backward) called by the forward: a row of its own, its cost the gradients the
        engine computes for it (differentiated.py), worked out before it runs (the graph may be freed after)."""
        if self.kept is None:  # (rows made without their calls kept, or with gradients off: trace it again)
            raise differentiated.Differentiates(f"the forward calls torch.{differentiated.CALLS[func]}")
        self._settle()  # (every row made so far is needed now)
        asked = differentiated.asked(func, args, kwargs)
        with NO_TORCH_FUNCTION():
            names = {index: self.records[index].name for index in self.kept if index in self.records}
            engine = differentiated.walk(asked)
            # (the rows' tangents' operations that it runs: grad of jvp, reverse over forward, counted node by node;
            # a tangent jacfwd batched by its basis shows the basis in its nodes' sizes, as jacrev of jacfwd's do)
            tangents = set().union(*self.tangents_made.values()) & engine.runs
            count = differentiated.cost(asked, engine, self.kept, self.grad_nodes, names, gradient_for,
                                        set().union(*self.engines_made.values()), tangents)
        if asked.batched:  # (is_grads_batched: autograd's engine run under vmap over the grad_outputs' rows)
            count = transforms.scaled(count, asked.batched, f"is_grads_batched over {asked.batched} grad_outputs",
                                      "vector-Jacobian product", f"is_grads_batched: one vector-Jacobian product "
                                      f"for each of the {asked.batched} grad_outputs, its work x {asked.batched}")
        over = transforms.active() and transforms.tangents(asked.roots + list(asked.given)) is not None
        seen = None  # (hessian's, jvp of grad's: forward over reverse, the tangents of its gradients' operations)
        if over and transforms.out_of_sight() is None and not asked.batched:
            with NO_TORCH_FUNCTION():
                seen = forward_over_reverse.watch(asked, engine, self.kept, self.grad_nodes)
        try:
            result = func(*args, **kwargs)
        finally:
            if seen is not None:
                seen.close()
        if over:
            count = self._over_reverse(count, asked, engine, names, seen)
        inputs, outputs = asked.roots + (asked.inputs or []), tensors_in(result)
        frame, shapes_in, shapes_out = self._call_row(self.current, asked.name, inputs, outputs)
        if transforms.active():  # (torch.func.grad's call; under vmap, or jacrev's vmap over its ∂y)
            self._transformed(frame.index, inputs + list(asked.given))
            self.tangents.pop(frame.index, None)  # (its roots' tangents: its gradients' are counted above)
        if not over and any(any(n in engine.runs for n in self.grad_nodes.get(i) or ()) for i in self.tangents
                            if i in self.kept and i not in self.tangents_made):  # (grad of jvp, or of a dual tensor's
            count = transforms.REVERSE_OVER_FORWARD  # tangent, whose operations' nodes were not found)
        if asked.create_graph:
            self._engine_made(frame.index, asked, engine, outputs, over, seen is not None)
        with NO_TORCH_FUNCTION():
            self._record(frame, asked.name, OP, inputs, outputs, shapes_in, shapes_out, count, [], None,
                         spelled or origin(func), differentiated.row_backward(asked, outputs) if self.backward else None)
        return result

    def _engine_made(self, index: int, asked, engine, outputs: list, over: bool, seen: bool) -> None:
        """The nodes of the operations a call's engine ran to make gradients with create_graph=True, and under
        forward-mode AD (hessian, jvp of grad: ``over``) those of the operations that computed their tangents (where
        ``seen``: else the call's training backward is not counted), for differentiated_backward."""
        with NO_TORCH_FUNCTION():
            known = set().union(*self.tangents_made.values())  # (the forward's rows' tangents', counted with them)
            made = differentiated.made_by_the_engine(outputs, asked.roots, engine.seen, known)
            tangents = [t for t in transforms.tangents(outputs) or () if t is not None] if over and seen else []
            self.gradients_tangents[index] = differentiated.made_by_the_engine(tangents, asked.roots, engine.seen,
                                                                               known | made) if tangents else set()
        self.engines_made[index] = made | self.gradients_tangents[index]
        if over and not seen:
            self.tangents_unseen.add(index)

    def _over_reverse(self, count: Count, asked, engine, names: dict, seen) -> Count:
        """A gradient computed while forward-mode AD's tangents flow (forward_over_reverse.py): its count with its
        operations' tangents added; "not counted" where they are out of the trace's sight."""
        if seen is None:
            return transforms.FORWARD_OVER_REVERSE
        with NO_TORCH_FUNCTION():
            tangent = forward_over_reverse.cost(asked, engine, self.kept, self.grad_nodes, names, gradient_for,
                                                set().union(*self.engines_made.values()), self.tangents, seen)
        if count.macs is None or tangent.macs is None:
            return count if count.macs is None else tangent
        return transforms.with_tangents(count, tangent, "forward-mode AD runs over it (forward over reverse): its "
                                                        "gradients' tangents' products added")

    def _transformed(self, index: int, inputs: list, params=()) -> None:
        """A row made while a torch.func transform runs: how many times it runs, where torch.vmap batches an input;
        how many times more each input's term of its tangent runs, where they carry forward-mode AD's."""
        params = list(params)
        with NO_TORCH_FUNCTION():
            times = transforms.factor(inputs)
            tangents = transforms.tangent_terms(inputs, params, times)
        if times is not None:
            self.vmapped[index] = times
        why = transforms.out_of_sight() if transforms.active() else None
        if why is transforms.NESTED_TANGENTS or (why is not None and tangents is None):
            self.tangents[index] = why  # (its tangents, if any, are out of sight: not counted)
        elif tangents is not None:
            self.tangents[index] = tangents[:2]
            self.parameter_tangents[index] = tangents[2]

    def _keep(self, index: int, call: tuple) -> None:
        """A row's call kept till the end of the pass, where the forward differentiates (kept), or where a training
        step's row computed tangents (tangents_kept: the step may reach its inside through them, from_within)."""
        if self.kept is not None:
            self.kept[index] = call
        elif index in self.tangents_made:
            self.tangents_kept[index] = call

    def _tangents_made(self, index: int, inputs: list, outputs: list) -> None:
        """A training step's row that computed tangents: the nodes of the operations that did, found while its
        tangents are at hand (the dual level ends with the call), for differentiated_backward."""
        why = self.tangents.get(index)  # ((extra, weights); a Count, itself a tuple, where out of sight)
        if (self.backward or self.kept is not None) and isinstance(why, tuple) and not isinstance(why, Count) and \
                torch.is_grad_enabled():
            with NO_TORCH_FUNCTION():
                self.tangents_made[index] = differentiated.tangents_made(inputs, outputs)

    def _with_tangents(self, index: int, counter, call, count: Count, grad: Count | None) -> tuple[Count, Count | None]:
        """A row's count (and backward) where its inputs carried tangents (transforms.with_tangents), a layer's
        parameters each by its own tangent's batch (parameter_tangents); in a training step its backward is its own
        gradients, the tangents' operations' added once the step is known (differentiated.reverse_over_forward), or
        "not counted" where their nodes were not found."""
        why = self.tangents[index]
        if isinstance(why, Count):
            return (count if not (count.macs or count.elementwise) else why), \
                (None if grad is None else FORWARD_AD_BACKWARD)
        rule = getattr(counter, "tangent", None)  # (one not its gradients' terms, a recurrent layer's: own_tangent)
        params = self.parameter_tangents.get(index, ()) if isinstance(call, ModuleCall) else ()
        if rule and not alike(call, params):  # (a rule of its own takes one figure for every weight)
            tangent = transforms.SOME_PARAMETERS
        elif rule:
            tangent = gradient_for(lambda c, _: rule(c, *why), call, count, Needs((True,), True))
        else:
            tangent = transforms.tangent_count(partial(gradient_for, counter, call, count), *why, params,
                                               getattr(call, "module", None))
        # (the step's backward: its own gradients, and its tangents' operations' once the step is known)
        own = grad if grad is None or index in self.tangents_made else FORWARD_AD_BACKWARD
        return transforms.with_tangents(count, tangent), own

    def functions_unseen(self, output) -> None:
        """The rows, after all others, of the custom Functions in ``output``'s graph that were applied out of
        the trace's sight (by an alias of their apply taken before it began, ``fn = F.apply``): their
        backward counted as _applied counts it, where PyTorch tells the shapes of its ∂y (2.13 does)."""
        for node in self._reached(output):
            if not isinstance(node, torch.autograd.function.BackwardCFunction) or node in self.functions_seen:
                continue
            cls = getattr(node, "_forward_cls", None)
            if cls is None or issubclass(cls, custom_functions.RECOMPUTED):
                continue
            grads = custom_functions.grads_for(node)
            grad = (self._backward_of(cls.__name__, node, grads) if grads is not None else
                    custom_functions.failed(cls.__name__, RuntimeError("PyTorch does not tell the shapes of its ∂y")))
            self.functions_seen.add(node)
            self.op_calls[cls.__name__] += 1
            index = self.next_index
            self.next_index += 1
            frame = Frame(None, index, cls.__name__, self.op_calls[cls.__name__], 1, None, None, [], [])
            with NO_TORCH_FUNCTION():
                self._leave_function(frame, cls, index, [], [], (), (), grad)

    def _backward_of(self, name: str, node, grads: list[Tensor]) -> Count:
        """A Function's backward, run with ``grads`` as its ∂y, its calls counted (custom_functions.py)."""
        calls: list[custom_functions.Call] = []
        layer, self.layer = self.layer, new_tuple(Frame, (None, None, name, 0, 0, None, BACKWARD_RUN, [], calls))
        try:
            ran = custom_functions.run_backward(node, grads, calls)  # (the mode on: it sees the backward's calls)
            return custom_functions.backward_count(name, ran, operation_gradient)
        except Exception as error:  # (its backward needs values the meta device has not, or fails)
            self.backward_errors.append((name, error))
            return custom_functions.failed(name, error)
        finally:
            self.layer = layer

    def _leave_function(self, frame, cls, first: int, inputs: list, outputs: list, shapes_in: tuple,
                        shapes_out: tuple, grad: Count) -> None:
        """A custom Function's row: no forward cost of its own (its operations are the rows from ``first``),
        the activations only of outputs none of them made, its backward's count."""
        made = []
        for t in outputs:
            entry = self.producers.get(id(t))
            if entry is not None and entry[0]() is t and entry[1] >= first:
                made.append(t)
        field = self._field(outputs[0]) if outputs else None
        note = "custom autograd.Function: its forward's operations are the rows above it" + (
            f"; {grad.note}" if grad is not None else "")
        self._record(frame, cls.__name__, OP, inputs, outputs, shapes_in, shapes_out, Count(0, 0, {}, note), (),
                     field, f"{cls.__module__}.{cls.__qualname__}.apply", grad, made)
