"""Data movement and bookkeeping: 0 operations, by a declared rule (not "not counted").

  views and copies      view, reshape, permute, transpose, expand, contiguous, clone, to, casts, ...
  concatenation         cat, stack (the output-size arithmetic shown for cat)
  rearrangement         unbind, roll, flip, tile, repeat_interleave, pixel_shuffle, pad, gather, packing and
                        unpacking a padded sequence, ...
  bookkeeping           new_zeros / zeros_like / full_like, meshgrid, masked_fill, triu / tril,
                        comparisons and logical masks (eq, lt, isnan, ...), sorting (sort, topk), one_hot
  lookups               nn.Embedding / F.embedding: a row read per index, 0 MACs
(Dropout, element-wise work in train mode, is counted in elementwise.py.)
"""

from __future__ import annotations

from functools import partial
from math import prod

from torch import nn

from archcalc.analysis.counting import MODULES, OPS, Count, ModuleCall, OpCall
from archcalc.analysis.shapes import elements_text
from archcalc.formulas.numbers import grouped
from archcalc.formulas.terms import product

VIEWS_AND_COPIES = (
    "view", "reshape", "flatten", "unflatten", "expand", "expand_as", "squeeze", "unsqueeze", "permute",
    "transpose", "t", "contiguous", "getitem", "setitem", "chunk", "split", "split_with_sizes", "tensor_split",
    "hsplit", "vsplit", "dsplit", "narrow", "select", "index_select", "view_as", "reshape_as", "repeat", "clone",
    "detach", "to", "type", "type_as", "float", "half", "bfloat16", "double", "int", "long", "short", "bool", "byte",
    "char", "real", "imag", "T", "mT", "H", "mH", "data", "identity", "movedim", "moveaxis", "swapaxes", "swapdims",
    "copy", "as_strided", "diagonal", "diag", "diag_embed", "atleast_1d", "atleast_2d", "atleast_3d", "ravel",
    "broadcast_to", "broadcast_tensors", "unfold_copy", "cpu", "cuda", "conj", "resolve_conj", "resolve_neg",
    "as_tensor", "asarray",  # (of a tensor: itself, or a copy where the dtype or device differs; MONAI's HighResNet)
    "_make_dual", "make_dual", "_unpack_dual", "unpack_dual",  # (forward-mode AD's views: a primal and its tangent)
)
REARRANGEMENTS = (
    "unbind", "roll", "flip", "fliplr", "flipud", "rot90", "tile", "repeat_interleave", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "pad", "gather", "scatter", "index", "take",
    "take_along_dim", "index_put", "index_copy", "masked_select", "narrow_copy", "nonzero",
    "_pack_padded_sequence", "_pad_packed_sequence",  # packed sequences (nn.utils.rnn): the rows rearranged
    "pad_sequence",  # (nn.utils.rnn.pad_sequence: a list of sequences copied into one padded tensor)
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "block_diag", "cartesian_prod", "combinations", "masked_scatter",
    "put", "diagflat", "view_as_real", "view_as_complex", "complex", "argwhere", "tril_indices",
    "triu_indices",
    "to_sparse", "to_sparse_coo", "to_sparse_csr", "to_sparse_csc", "to_sparse_bsr", "to_sparse_bsc", "to_dense",
    "coalesce",  # (a layout's change: the stored values found or placed)
    "slice_scatter", "select_scatter", "diagonal_scatter", "as_strided_scatter",  # (a copy into a view of a copy)
)
BOOKKEEPING = (
    "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "zeros_like", "ones_like", "full_like",
    "empty_like", "rand_like", "randn_like", "randint_like", "fill", "zero", "masked_fill", "index_fill", "meshgrid",
    "triu", "tril", "one_hot", "eq", "ne", "lt", "gt", "le", "ge", "equal", "isclose", "allclose", "isnan", "isinf",
    "isfinite", "isneginf", "isposinf", "logical_not", "logical_and", "logical_or", "logical_xor", "bitwise_not",
    "bitwise_and", "bitwise_or", "bitwise_xor", "and", "or", "xor", "invert", "lshift", "rshift", "size", "numel",
    "bucketize", "searchsorted", "requires_grad", "retain_grad", "new",  # Tensor.new: legacy uninitialised
    "histc", "bincount", "histogram",  # counting into bins (a mixture of experts' load): comparisons
    "sort", "argsort", "msort", "topk", "kthvalue", "unique", "unique_consecutive",  # comparisons, as above
    "median", "nanmedian", "mode", "isin", "greater", "greater_equal", "less", "less_equal", "not_equal", "signbit",
    "is_nonzero", "is_same_size",
    "bernoulli", "uniform", "normal", "exponential", "cauchy", "geometric", "log_normal", "random",  # random fills
    "multinomial", "poisson", "binomial",  # random draws given their probabilities or rates (a masked
    # autoencoder's choice of patches)
)


def declared(note: str):
    """A counter for what does no arithmetic by a declared rule: the same 0 every call, with its reason."""
    count = Count(0, 0, {}, note)

    def zero(call) -> Count:
        return count

    zero.__name__ = f"declared({note!r})"
    return zero


OPS.register(*VIEWS_AND_COPIES)(declared("shape or copy only"))
OPS.register(*REARRANGEMENTS)(declared("data movement, no arithmetic"))
OPS.register(*BOOKKEEPING)(declared("bookkeeping (a mask, a comparison, a constant): no arithmetic counted"))
OPS.register("embedding")(declared("a lookup: one row read per index, no arithmetic"))


@OPS.register("cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack", "column_stack")
def concatenate(call: OpCall) -> Count:
    if call.name != "cat" and call.name not in ("concat", "concatenate"):
        return Count(0, 0, {}, "copy, no arithmetic")
    dim = call.arg(1, "dim", 0) % len(call.output)
    joined = [s for s in call.inputs if s != (0,)]  # torch.cat skips a 1-d empty tensor (an empty cache, say)
    parts = " + ".join(str(s[dim]) for s in joined)
    axis = "channels" if dim == 1 and len(call.output) >= 4 else f"dim {dim}"  # (N, T, C): dim 1 is the tokens
    return Count(0, 0, {"output": f"{axis}: {parts} = {call.output[dim]}"}, "copy, no arithmetic")


# -- modules ------------------------------------------------------------------------------------

MODULES.register(nn.Flatten, nn.Unflatten, nn.Identity)(declared("shape only"))
MODULES.register(nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d,
                 nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d,
                 nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
                 nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d)(declared("data movement, no arithmetic"))


@MODULES.register(nn.Embedding)
def embedding(call: ModuleCall) -> Count:
    m = call.module
    return Count(0, 0, partial(_embedding_text, m), "a lookup: one row read per index, no arithmetic")


def _embedding_text(m: nn.Embedding) -> dict[str, str]:
    return {"params": f"num_embeddings*embedding_dim = {product(m.num_embeddings, m.embedding_dim)}"}


@MODULES.register(nn.EmbeddingBag)
def embedding_bag(call: ModuleCall) -> Count:
    """Each bag's rows summed (or averaged, or maxed): 1 operation per looked-up element."""
    m = call.module
    rows = call.input
    n = 0 if m.mode is None else prod(rows) * m.embedding_dim
    return Count(0, n, lambda: {"elementwise": f"{m.mode} of the bags' rows: {elements_text(rows)}*{m.embedding_dim} "
                                               f"= {grouped(n)}"}, "a lookup, then each bag reduced")
