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

Anything else keeps the signal's fields (a Conv1d that takes the A rows as its input channels, the common case of
audio): where the two readings agree (attention and recurrence see the whole input either way) nothing changes.
An input of one row, (N, 1, B), is a signal.
"""

from __future__ import annotations

import re

from torch import nn

from archcalc.analysis import token_fields
from archcalc.analysis.token_fields import Tokens, locate

_TRANSPOSES = frozenset({"transpose", "swapaxes", "swapdims", "t", "T", "mT", "permute", "movedim", "moveaxis"})
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


def layer_reads(m: nn.Module, field: Tokens, shape: tuple) -> bool | None:
    """Whether layer ``m``, given the sequence's reading ``field`` of its input of ``shape``, reads a sequence
    (True), a signal (False), or says nothing of it (None)."""
    if isinstance(m, _NEUTRAL_LAYERS):
        return None
    found = locate(field, shape) if field.before is not None else None
    if found is None:
        return False
    a, rank = found[0], len(shape)
    if isinstance(m, (nn.Linear, nn.Bilinear)):
        return a < rank - 1
    if isinstance(m, _NORMS):
        return a < rank - len(m.normalized_shape)
    if isinstance(m, (nn.RNNBase, nn.MultiheadAttention)):
        return bool(m.batch_first) and a == 1 and rank == 3
    if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd):
        return a >= rank - len(m.kernel_size)
    pooled = _POOLS.match(type(m).__name__)
    if pooled:
        return a >= rank - int(pooled.group(1))
    return False


def op_reads(name: str, call, field: Tokens, shape: tuple) -> bool | None:
    """op ``name`` as layer_reads says of a layer; ``shape``: the shape of the input that holds ``field``."""
    if name in _NEUTRAL_OPS:
        return None
    found = locate(field, shape) if field.before is not None else None
    if found is None:
        return False
    a, rank = found[0], len(shape)
    if name == "linear":
        return a < rank - 1
    if name in ("layer_norm", "rms_norm"):
        normalized = call.arg(1, "normalized_shape")
        return a < rank - (len(normalized) if isinstance(normalized, (tuple, list)) else 1)
    if name in ("conv1d", "conv2d", "conv3d"):
        return a >= rank - int(name[4])
    pooled = _POOL_OPS.match(name)
    if pooled:
        return a >= rank - int(pooled.group(1))
    if name in _ATTENTION_OPS:
        return a == rank - 2
    return False


NOTE_START = "receptive fields: "  # (a note the tables of receptive fields show, the others not)


def note(shape: tuple[int, ...], reader: str) -> str:
    """What the analysis says of an input read as a sequence."""
    return (f"{NOTE_START}the input {'x'.join(map(str, shape))} is read as a sequence (N, L, D) of {shape[1]} "
            f"positions, as {reader} reads it (a signal, (N, C, L), would be read along its last axis): the fields "
            f"count positions, as tokens")
