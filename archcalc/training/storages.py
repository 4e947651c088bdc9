"""The memory blocks a tensor holds: a strided tensor its one storage; a sparse one (a graph's adjacency) the
storages of its indices and its stored values (COO: indices, values; CSR and BSR: crow_indices, col_indices,
values; CSC and BSC: ccol_indices, row_indices, values), which have no storage of the tensor's own."""

from __future__ import annotations

import torch


def storages(t: torch.Tensor) -> list[torch.UntypedStorage]:
    if t.layout == torch.strided:
        return [t.untyped_storage()]
    if t.layout == torch.sparse_coo:
        parts = (t._indices(), t._values())
    elif t.layout in (torch.sparse_csr, torch.sparse_bsr):
        parts = (t.crow_indices(), t.col_indices(), t.values())
    else:
        parts = (t.ccol_indices(), t.row_indices(), t.values())
    return [p.untyped_storage() for p in parts]


def keys(t: torch.Tensor) -> list[int]:
    """Each of its storages' identity (the allocator's block)."""
    return [s._cdata for s in storages(t)]


def nbytes(t: torch.Tensor) -> int:
    return sum(s.nbytes() for s in storages(t))
