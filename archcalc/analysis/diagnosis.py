"""When a forward pass fails: which layer or operation, the shapes it received, what it expected,
and the lecture's rule that was broken, as one line."""

from __future__ import annotations

import re
from math import prod

from torch import nn

from archcalc.analysis.records import LayerRecord
from archcalc.formulas.numbers import product_text, shape_text, shapes_text
from archcalc.errors import COMMAND_LINE, option


def _last_map(records: tuple[LayerRecord, ...]) -> tuple[int, ...] | None:
    """The C x H x W of the last feature map produced before the failure."""
    for r in reversed(records):
        for shape in r.output_shapes:
            if len(shape) == 4:
                return shape[1:]
    return None


def _linear(module: nn.Linear, inputs, records) -> str:
    got = inputs[0][-1] if inputs and inputs[0] else None
    if got is None or got == module.in_features:
        return ""
    chw = _last_map(records)
    flatten = (f"the last feature map is {shape_text(chw)}, so flattening gives C*H*W = {product_text(chw)} = "
               f"{prod(chw)} features per sample" if chw else f"it receives {got} features")
    return (f"expects {module.in_features} input features but receives {got}: {flatten}; "
            f"use nn.Linear({prod(chw) if chw else got}, {module.out_features}) or change the layers before it")


def _conv(module: nn.Module, inputs) -> str:
    got = inputs[0][1] if inputs and len(inputs[0]) > 1 else None
    expected = getattr(module, "in_channels", None)
    if got is not None and expected is not None and got != expected:
        return f"expects {expected} input channels but receives {got} ({shape_text(inputs[0])})"
    return ""


def _binary(op: str, shapes) -> str:
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        return ""
    a, b = shapes[0], shapes[1]
    names = ("batch", "channels", "height", "width") if len(a) == 4 else tuple(f"dim {i}" for i in range(len(a)))
    differ = [f"{names[i]} {a[i]} vs {b[i]}" for i in range(len(a)) if a[i] != b[i] and 1 not in (a[i], b[i])]
    if not differ:
        return ""
    rule = ("a skip connection needs equal width, height and channels: project the shortcut "
            "(e.g. a conv to the same channels and stride) before adding") if op in ("add", "sub") else \
        "element-wise operations need equal (or broadcastable) shapes"
    return f"{shape_text(a)} and {shape_text(b)} differ in {', '.join(differ)}; {rule}"


def _concat(shapes, args, kwargs) -> str:
    dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else 0)
    if len(shapes) < 2 or len({len(s) for s in shapes}) != 1:
        return ""
    dim %= len(shapes[0])
    others = [i for i in range(len(shapes[0])) if i != dim]
    if all(len({s[i] for s in shapes}) == 1 for i in others):
        return ""
    listed = shapes_text(shapes)
    rule = ("a dense connection (torch.cat on channels) needs equal width and height: pool or stride so the "
            "maps match before concatenating") if dim == 1 else f"all sizes but dim {dim} must be equal"
    return f"torch.cat along dim {dim} receives {listed}; {rule}"


_BROADCAST = ("The size of tensor a", "Attempting to broadcast a dimension")  # (shapes that do not broadcast, in
# the words of PyTorch's kernels and of its meta device's references)
_ONE_VALUE = "Expected more than 1 value per channel when training"  # (F.batch_norm's check, in train mode)


_SPATIAL = re.compile(r"(?:Conv|ConvTranspose|MaxPool|AvgPool|LPPool|AdaptiveAvgPool|AdaptiveMaxPool|BatchNorm|"
                      r"InstanceNorm|LazyConv|LazyBatchNorm)([123])d$")
_AXES = {1: "C x L", 2: "C x H x W", 3: "C x D x H x W"}


def unbatched(kind: str, shape: tuple[int, ...], given: tuple[int, ...]) -> str:
    """Where a layer of ``kind`` (Conv2d, MaxPool1d, BatchNorm3d, ...) receives the model's input ``given`` itself
    with one dimension fewer than a batch of its samples: that input taken as one sample without a batch, though
    the sizes were given with the batch first; else ''. (Not BatchNorm1d, which takes N x C or N x C x L.)"""
    match = _SPATIAL.match(kind)
    if not match or tuple(shape) != tuple(given) or len(shape) != int(match.group(1)) + 1 or \
            kind.endswith("BatchNorm1d"):  # (its 2-d input is a batch of vectors, N x C: TabNet's first layer)
        return ""
    dims = int(match.group(1))
    return (f"{kind} takes the input {shape_text(shape)} as one sample without a batch ({_AXES[dims]}), but input "
            f"sizes carry the batch first: for one sample give {shape_text((1, *shape))}")


def unbatched_input(records, model_input: tuple[int, ...]) -> str:
    """unbatched's text for the first record that takes the model's input ``model_input`` itself as one sample
    without a batch, else ''."""
    if not model_input:
        return ""
    return next((text for r in records if r.input_shapes and r.input_shapes[0] == model_input and
                 (text := unbatched(r.type, model_input, model_input))), "")


def with_hint(message: str) -> str:
    """PyTorch's message with what to do, where archcalc knows it: a training step's BatchNorm given one value a
    channel (a batch of 1 after global pooling, or a 1x1 map) cannot take batch statistics."""
    if _ONE_VALUE in message:
        return (f"{message}: in a training step BatchNorm takes its statistics over the batch, which needs more "
                f"than one value per channel; use {option('batch', '2')} or more")
    if _FORWARD_AD in message and "attention" in message:
        return (f"{message.rstrip('.')}: PyTorch's fused attention kernels (the CPU's flash kernel, CUDA's flash and "
                f"memory-efficient ones) have no forward-mode AD; run the forward under torch.nn.attention."
                f"sdpa_kernel(SDPBackend.MATH), or give a Hugging Face model attn_implementation='eager'")
    if _FORWARD_AD in message and "mkldnn_rnn" in message:
        return (f"{message.rstrip('.')}: the CPU runs an LSTM through oneDNN, which has no forward-mode AD; run the "
                f"forward under torch.backends.mkldnn.flags(enabled=False) (PyTorch's own kernels have it)")
    if _TRACED_TYPES in message:
        return (f"{message}: fvcore's TorchScript trace takes a forward whose inputs and outputs are tensors, tuples, "
                f"lists and dicts; a Hugging Face model returns its cache (DynamicCache) unless its config says "
                f"use_cache=False")
    if message.startswith(_GUARDS):
        return (f"{message}: the program was exported for other input sizes (torch.export keeps each size fixed "
                f"unless it was exported with dynamic shapes, torch.export.Dim); leave out {option('input')} and "
                f"{option('batch')} to use its example inputs, or give their sizes")
    return message


_FORWARD_AD = "Trying to use forward AD with"  # (a kernel without a forward-mode formula: jvp, jacfwd, hessian)
_TRACED_TYPES = "received an input of unsupported type"  # (torch.jit's trace, fvcore's, given another object)
_GUARDS = ("Guard failed", "Expected input at")  # (an exported program checking its inputs' sizes)


def refuses_saved_hooks(message: str) -> bool:
    """torch.func's grad, vjp, jacrev or hessian run under saved-tensor hooks, which they refuse (the memory
    simulation then follows the step without them: peak.WITHOUT_HOOKS)."""
    return "don't yet support saved tensor hooks" in message


def explain(failed_op, frame_module, frame_name, frame_inputs, records, message: str) -> tuple[str, str]:
    """(where, what): 'in fc1 (Linear) receiving 1x8192' and the expectation or rule, else torch's message."""
    if failed_op is not None:
        qualified, op, shapes, args, kwargs = failed_op
        where = f"in {qualified} ({op}) receiving {shapes_text(shapes)}"
        broadcast = any(words in message for words in _BROADCAST)  # (not a product's dtype error read as shapes)
        what = _concat(shapes, args, kwargs) if op in ("cat", "concat", "concatenate") else \
            _binary(op, shapes) if broadcast else ""
        return where, what or with_hint(message)
    if frame_module is None:
        return "", with_hint(message)
    where = f"in {frame_name} ({type(frame_module).__name__}) receiving {shapes_text(frame_inputs)}"
    what = ""
    if isinstance(frame_module, nn.Linear):
        what = _linear(frame_module, frame_inputs, records)
    elif isinstance(frame_module, nn.modules.conv._ConvNd):
        what = _conv(frame_module, frame_inputs)
    if not what and isinstance(frame_module, nn.Embedding) and "indices" in message:
        what = (f"an embedding looks up integer token ids, and it receives floating-point numbers: give the input's "
                f"dtype, {option('input-dtype', 'int64') if COMMAND_LINE.get() else 'input_dtypes=[torch.int64]'}")
    if not what and any(k in message for k in ("too small", "can't be greater", "Output size")):
        what = (f"the input {shapes_text(frame_inputs)} is smaller than the window: use a larger "
                f"{option('input')} or fewer downsampling layers ({message})")
    return where, what or with_hint(message)
