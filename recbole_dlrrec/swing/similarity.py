"""Co-occurrence similarities beside SWING for the contrastive positives (``cl_similarity``).

The paper leaves open which similarity gives the best InfoNCE positives; these are the two
classic item-CF baselines, on the very graph SWING reads::

    itemcf_cosine  s(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|)
    jaccard        s(i, j) = |U_i & U_j| / (|U_i| + |U_j| - |U_i & U_j|)

``U_i`` are the users of item ``i``; the user-user tables swap the roles (``I_u & I_v`` over
``|I_u|``, ``|I_v|``). ``s(i, i)`` is never kept. The graph is the TRAIN edges (``swing_edges``)
sampled with the SWING degree caps and seed (:func:`~recbole_dlrrec.swing.graph.sample_graph`),
and counts *and* degrees are both taken on that sampled graph: the similarity is exact on it,
as SWING is. The top-k (``swing_topk``) and the tie rule (lower id first) are those of
:class:`~recbole_dlrrec.swing.graph.NeighbourTable`.

Cost: the co-count matrix ``B B^T`` (``B`` = nodes x connectors) is a scipy sparse product
computed in row chunks, each cut to its top-k before the next chunk starts, so memory is
bounded by one chunk's product and never ``n x n``. A row's work is the sum of its
connectors' degrees; a chunk holds rows up to :data:`CHUNK_WORK` of it.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp

from recbole_dlrrec.swing.graph import NeighbourTable, _check_count, binarize, sample_graph

__all__ = ["SIMILARITIES", "CO_OCCURRENCE", "cooccurrence_similarity", "similarity_tables"]

#: Values of ``cl_similarity``: SWING (recbole_dlrrec/swing/kernels.py) or a co-occurrence score.
SIMILARITIES = ("swing", "itemcf_cosine", "jaccard")
#: The similarities this module computes.
CO_OCCURRENCE = ("itemcf_cosine", "jaccard")
#: Co-count products (pairs of a row and a connector's node) per chunk: bounds the chunk's memory.
CHUNK_WORK = 2_000_000


def _scores(kind: str, co: np.ndarray, degree_row: np.ndarray, degree_col: np.ndarray) -> np.ndarray:
    """Each formula is symmetric in (row, col) bit for bit (products and sums commute), so
    s(i, j) == s(j, i) exactly and ties break the same way from both ends."""
    if kind == "itemcf_cosine":
        return co / np.sqrt(degree_row * degree_col)
    return co / (degree_row + degree_col - co)


def _chunks(work: np.ndarray, budget: int):
    """Consecutive [start, end) row ranges of at most ``budget`` work (one row at least)."""
    n = work.shape[0]
    start = 0
    cumulative = np.cumsum(work)
    while start < n:
        before = cumulative[start - 1] if start else 0.0
        end = int(np.searchsorted(cumulative, before + budget, side="right"))
        end = min(n, max(end, start + 1))
        yield start, end
        start = end


def cooccurrence_similarity(graph, kind: str, topk: int, chunk_work: int = CHUNK_WORK) -> sp.csr_matrix:
    """Top-``topk`` ``kind`` similarities between the rows of ``graph`` (nodes x connectors).

    Returns float64 CSR ``nodes x nodes`` holding each row's ``topk`` best scores > 0 (ties
    to the lower column); rows without a shared connector are empty.
    """
    if kind not in CO_OCCURRENCE:
        raise ValueError(f"kind must be one of {CO_OCCURRENCE}, got {kind!r}")
    topk = _check_count(topk, "topk", allow_none=False)
    nodes = binarize(graph)
    connectors = nodes.T.tocsr()
    n = nodes.shape[0]
    degree = np.diff(nodes.indptr).astype(np.float64)
    work = nodes @ np.diff(connectors.indptr).astype(np.float64)  # products per row
    pieces = []
    for start, end in _chunks(work, chunk_work):
        co = (nodes[start:end] @ connectors).tocoo()
        rows, cols = co.row.astype(np.int64), co.col.astype(np.int64)
        off_diagonal = rows + start != cols
        rows, cols, counts = rows[off_diagonal], cols[off_diagonal], co.data[off_diagonal]
        scores = _scores(kind, counts, degree[rows + start], degree[cols])
        block = sp.csr_matrix((scores, (rows, cols)), shape=(end - start, n))
        pieces.append(NeighbourTable.from_csr(block, topk).to_csr(n))
    if not pieces:
        return sp.csr_matrix((n, n), dtype=np.float64)
    return sp.vstack(pieces, format="csr")


def similarity_tables(
    matrix,
    kind: str,
    topk: int,
    max_users_per_item: Optional[int] = None,
    max_items_per_user: Optional[int] = None,
    seed: int = 0,
) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    """(users x users, items x items) top-k ``kind`` similarities of a ``users x items`` edge
    matrix, on the graph sampled with the SWING caps and seed (one sampled graph for both)."""
    sampled = sample_graph(matrix, max_users_per_item, seed, max_items_per_user)
    return (cooccurrence_similarity(sampled, kind, topk), cooccurrence_similarity(sampled.T.tocsr(), kind, topk))
