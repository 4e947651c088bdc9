"""The memory a tensor holds: a strided tensor its one storage; a sparse one (a graph's adjacency) its indices and
its stored values (COO: indices, values; CSR and BSR: crow_indices, col_indices, values; CSC and BSC: ccol_indices,
row_indices, values), which have no storage of the tensor's own. ``storages`` are the allocator's blocks (a block
may be larger than what the tensor uses of it: a CSR made from a COO keeps the COO's index storage);
``stored_bytes`` what the tensor itself holds, what reading it moves."""

from __future__ import annotations

import torch


def parts(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if t.layout == torch.strided:
        return (t,)
    if t.layout == torch.sparse_coo:
        return t._indices(), t._values()
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return t.crow_indices(), t.col_indices(), t.values()
    return t.ccol_indices(), t.row_indices(), t.values()


def storages(t: torch.Tensor) -> list[torch.UntypedStorage]:
    return [p.untyped_storage() for p in parts(t)]


def keys(t: torch.Tensor) -> list[int]:
    """Each of its storages' identity (the allocator's block)."""
    return [s._cdata for s in storages(t)]


def nbytes(t: torch.Tensor) -> int:
    """Its storages' bytes (the blocks it keeps alive)."""
    return sum(s.nbytes() for s in storages(t))


def stored_bytes(t: torch.Tensor) -> int:
    """The bytes of its own elements: a sparse tensor's indices and values."""
    return sum(p.numel() * p.element_size() for p in parts(t))
