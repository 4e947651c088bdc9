"""A floating-point input of three axes, (N, A, B): a sequence or a signal?

Its shape cannot say. A transformer's embeddings or a speech model's frames are a sequence, (N, L, D): L positions
of D features each; a 1-d convolutional network's audio is a signal, (N, C, L): C channels at L positions. The
receptive fields of the two differ (a linear map over the last axis sees one position of a sequence, every position
of a signal), so the input's fields start as a signal's (receptive.py: the last axis the positions, as before) and,
beside them, as a sequence's (token_fields.py: the positions on axis 1). The steps that say nothing of which it is,
views, transposes and steps per element (a positional embedding added, a scale, dropout, BatchNorm), carry both.
The first other step decides. A sequence where it reads one:

- a linear map or a LayerNorm / RMSNorm over the features, the positions left apart (a transformer's first
  projection, its first norm);
- a convolution or a pooling along the positions (after the transpose a Conv1d over time wants, or the unsqueeze
  a speech model's 2-d subsampling wants);
- attention over the positions (scaled_dot_product_attention, nn.MultiheadAttention with batch_first), a
  recurrent layer with batch_first.

A 2-d convolution or pooling over (N, 1, A, B), the input given one channel (a speech model's frames
subsampled in time and frequency), reads an image of A x B: fields in both, as an image's (receptive.py).
Anything else keeps the signal's fields (a Conv1d that takes the A rows as its input channels, the common case of
audio): where the two readings agree (attention and recurrence see the whole input either way) nothing changes.
An input of one row, (N, 1, B), is a signal.
"""

from __future__ import annotations

import re

from torch import nn

from archcalc.analysis import token_fields
from archcalc.analysis.receptive import Field
from archcalc.analysis.token_fields import Tokens, locate

_TRANSPOSES = frozenset({"transpose", "swapaxes", "swapdims", "t", "T", "mT", "permute", "movedim", "moveaxis",
                         "flip"})
_NEUTRAL_OPS = token_fields.VIEWS | token_fields.PASS | _TRANSPOSES | {"pad"}  # (which it is, they do not say)
_NEUTRAL_LAYERS = (*token_fields.PASSING, nn.Flatten, nn.Unflatten)
_NORMS = (nn.LayerNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))
_POOLS = re.compile(r"(?:Max|Avg|AdaptiveAvg|AdaptiveMax)Pool([123])d$")
_POOL_OPS = re.compile(r"(?:adaptive_)?(?:max|avg)_pool([123])d(?:_with_indices)?$")
_ATTENTION_OPS = frozenset({"scaled_dot_product_attention", "flex_attention"})


def of_input(shape: tuple[int, ...], floating: bool) -> Tokens | None:
    """The sequence's reading of an input (N, L, D), beside the signal's; None where there is no question."""
    if not floating or len(shape) != 3 or shape[1] < 2:
        return None
    return Tokens((1,), (1.0,), (0.5,), (shape[1],), shape[0])


SEQUENCE, SIGNAL, IMAGE = "sequence", "signal", "image"  # (what a step reads the input as)


def layer_reads(m: nn.Module, field: Tokens, shape: tuple, given: tuple) -> str | None:
    """What layer ``m``, given the sequence's reading ``field`` of its input of ``shape``, reads the model's input
    of shape ``given`` as: SEQUENCE, SIGNAL, IMAGE, or None where it says nothing of it."""
    if isinstance(m, _NEUTRAL_LAYERS):
        return None
    found = locate(field, shape) if field.before is not None else None
    if found is None:
        return SIGNAL
    a, rank = found[0], len(shape)
    if isinstance(m, (nn.Linear, nn.Bilinear)):
        return _sequence_if(a < rank - 1)
    if isinstance(m, _NORMS):
        return _sequence_if(a < rank - len(m.normalized_shape))
    if isinstance(m, (nn.RNNBase, nn.MultiheadAttention)):
        return _sequence_if(bool(m.batch_first) and a == 1 and rank == 3)
    if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
        return _window_reads(len(m.kernel_size), a, shape, given)
    pooled = _POOLS.match(type(m).__name__)
    if pooled:
        return _window_reads(int(pooled.group(1)), a, shape, given)
    return SIGNAL


def op_reads(name: str, call, field: Tokens, shape: tuple, given: tuple) -> str | None:
    """op ``name`` as layer_reads says of a layer; ``shape``: the shape of the input that holds ``field``."""
    if name in _NEUTRAL_OPS:
        return None
    found = locate(field, shape) if field.before is not None else None
    if found is None:
        return SIGNAL
    a, rank = found[0], len(shape)
    if name == "linear":
        return _sequence_if(a < rank - 1)
    if name in ("layer_norm", "rms_norm"):
        normalized = call.arg(1, "normalized_shape")
        return _sequence_if(a < rank - (len(normalized) if isinstance(normalized, (tuple, list)) else 1))
    if name in ("conv1d", "conv2d", "conv3d"):
        return _window_reads(int(name[4]), a, shape, given)
    pooled = _POOL_OPS.match(name)
    if pooled:
        return _window_reads(int(pooled.group(1)), a, shape, given)
    if name in _ATTENTION_OPS:
        return _sequence_if(a == rank - 2)
    return SIGNAL


def _sequence_if(reads: bool) -> str:
    return SEQUENCE if reads else SIGNAL


def _window_reads(d: int, a: int, shape: tuple, given: tuple) -> str:
    """A convolution or a pooling over the last d axes, the positions on axis a: along them a sequence's window,
    or, in 2-d over the input's own two axes (N, 1, A, B), an image's."""
    if a < len(shape) - d:
        return SIGNAL
    image = d == 2 and a >= len(shape) - 2 and tuple(shape[-2:]) in (tuple(given[1:]), tuple(given[:0:-1]))
    return IMAGE if image else SEQUENCE


def image_fields(given: tuple, shapes: list, fields: list) -> list[Field] | None:
    """An image's fields, A x B, for the tensors and rows of these shapes whose sequence's fields are ``fields``: in
    the order a tensor holds the two axes where its last two are B and A (an Audio Spectrogram Transformer swaps
    them), else A x B (a step per element on the way, over another layout: views and transposes keep an image's
    field as it is); None where one of them is not one position of the input (a pad on the way moved it)."""
    swapped = tuple(given[:0:-1])
    if any(tuple(f[:3]) != ((1,), (1.0,), (0.5,)) for f in fields):
        return None
    return [Field.of_input(swapped if tuple(s[-2:]) == swapped else tuple(given[1:])) for s in shapes]


NOTE_START = "receptive fields: "  # (a note the tables of receptive fields show, the others not)


def note(shape: tuple[int, ...], reader: str, reading: str) -> str:
    """What the analysis says of an input read as a sequence or an image."""
    read = f"an image of {shape[1]}x{shape[2]}" if reading == IMAGE else \
        f"a sequence (N, L, D) of {shape[1]} positions"
    counted = "its rows and columns" if reading == IMAGE else "positions, as tokens"
    return (f"{NOTE_START}the input {'x'.join(map(str, shape))} is read as {read}, as {reader} reads it (a signal, "
            f"(N, C, L), would be read along its last axis): the fields count {counted}")
