"""The SWING input graph: edges, sampling with degree caps, connector weights, and the
top-k neighbour tables the models read.

Input conventions (:func:`binarize`)
    Any scipy sparse matrix or array, ``connectors x nodes`` (users x items). Every stored entry
    whose value is non-zero is an edge; stored entries equal to ``0`` are *not* edges; duplicates
    of one (user, item) cell count once (each entry is turned into a 1 before summing, so values
    never cancel). ``NaN`` values are rejected. Users or items without edges get empty rows.

Caps: ``max_users_per_item`` and ``max_items_per_user`` (cost bounds)
    The graph is first sampled (:func:`sample_graph`): each item keeps at most ``m`` of its
    users, then each user at most ``n`` of its items, uniformly without replacement with
    ``numpy.random.default_rng(seed)``. SWING then runs exactly on that sampled graph
    (``U_i``, ``I_u`` and ``|I_u & I_v|`` all on the sampled graph) while the weights keep the
    *full* degrees (``w_u = |I_u| ** -0.5`` on the unsampled graph). ``None`` = no cap; both
    ``None`` is exact SWING. The caps always mean users per item / items per user of the
    ``users x items`` input, for :func:`user_similarity` too, so both sides share one sampled
    graph. That matters for cost: a row's work grows with its own degree *and* with its
    connectors' degrees, so item-item is bounded by users per item (and user activity),
    user-user by items per user and users per item. (Reading the cap "on the transposed
    graph" would cap only items per user for user-user and leave a popular item's tens of
    thousands of users as one connector: quadratic in them.)

Dataset glue: :func:`swing_edges_matrix` (TRAIN interactions -> edge matrix) and the top-k
tables :class:`NeighbourTable` / :class:`SwingNeighbours` (the similarity itself:
:mod:`recbole_dlrrec.swing.kernels`; the cache: :mod:`recbole_dlrrec.swing.cache`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, Optional, overload

import numpy as np
import scipy.sparse as sp

SWING_EDGE_CHOICES = ("all", "positive")


def _check_sparse(matrix, name: str = "matrix") -> None:
    if not sp.issparse(matrix):
        raise ValueError(f"{name} must be a scipy.sparse matrix (users x items), got {type(matrix).__name__}")
    if len(matrix.shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}")


@overload
def _check_count(value, name: str, allow_none: Literal[False]) -> int: ...
@overload
def _check_count(value, name: str, allow_none: bool = True) -> Optional[int]: ...
def _check_count(value, name: str, allow_none: bool = True) -> Optional[int]:
    """A positive integer (``bool`` refused) or, when allowed, ``None``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_alpha(alpha, name: str = "alpha") -> float:
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"{name} must be a real number >= 0, got {alpha!r}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {alpha!r}")
    return alpha


def _check_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def binarize(matrix) -> sp.csr_matrix:
    """The 0/1 edge matrix (float64 CSR, sorted indices) of ``matrix``; see the module docstring."""
    _check_sparse(matrix)
    coo = sp.coo_matrix(matrix)
    data = coo.data
    if data.dtype.kind in "fc" and np.isnan(data).any():
        raise ValueError("matrix contains NaN values; edges must be non-zero numbers")
    keep = data != 0
    rows = coo.row[keep]
    cols = coo.col[keep]
    graph = sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float64), (rows, cols)), shape=coo.shape)
    graph.sum_duplicates()
    graph.data[:] = 1.0
    graph.sort_indices()
    return graph


def _cap_columns(graph: sp.csr_matrix, cap: int, rng: np.random.Generator) -> sp.csr_matrix:
    """Keep a uniform random sample (without replacement) of ``cap`` entries per column."""
    csc = graph.tocsc()
    csc.sort_indices()
    degree = np.diff(csc.indptr)
    if degree.size == 0 or degree.max() <= cap:
        return graph
    keys = rng.random(csc.indices.shape[0])
    column = np.repeat(np.arange(csc.shape[1], dtype=np.int64), degree)
    order = np.lexsort((keys, column))  # by column, random order inside a column
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - csc.indptr[column[order]]
    keep = rank < cap
    sampled = sp.csr_matrix((np.ones(int(keep.sum())), (csc.indices[keep], column[keep])), shape=graph.shape)
    sampled.sort_indices()
    return sampled


def sample_graph(
    matrix, max_users_per_item: Optional[int] = None, seed: int = 0, max_items_per_user: Optional[int] = None
) -> sp.csr_matrix:
    """The binarized ``users x items`` graph with capped degrees, seeded.

    First every item keeps at most ``max_users_per_item`` of its users, then every user at
    most ``max_items_per_user`` of its remaining items; each is a uniform sample without
    replacement from ``numpy.random.default_rng(seed)``. Both caps hold in the result (the
    second step only removes edges). ``None`` = no cap; the same input and seed give the same
    graph.
    """
    item_cap = _check_count(max_users_per_item, "max_users_per_item")
    user_cap = _check_count(max_items_per_user, "max_items_per_user")
    seed = _check_seed(seed)
    graph = binarize(matrix)
    rng = np.random.default_rng(seed)
    if item_cap is not None:
        graph = _cap_columns(graph, item_cap, rng)
    if user_cap is not None:
        graph = _cap_columns(graph.T.tocsr(), user_cap, rng).T.tocsr()
        graph.sort_indices()
    return graph


def connector_weights(graph) -> np.ndarray:
    """``w_u = |I_u| ** -0.5`` per row of a binarized graph (0 for rows without edges)."""
    degree = np.diff(sp.csr_matrix(graph).indptr).astype(np.float64)
    weights = np.zeros_like(degree)
    has = degree > 0
    weights[has] = degree[has] ** -0.5
    return weights


def _as_numpy(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def swing_edges_matrix(
    user_ids, item_ids, labels, n_users: int, n_items: int, edges: str = "positive"
) -> sp.csr_matrix:
    """Binary ``n_users x n_items`` CSR of TRAIN interactions.

    ``edges='all'`` uses every row; ``edges='positive'`` only rows with ``label == 1``
    (``labels`` may then not be ``None``). Duplicated pairs count once.
    """
    if edges not in SWING_EDGE_CHOICES:
        raise ValueError(f"swing_edges must be one of {SWING_EDGE_CHOICES}, got {edges!r}")
    n_users = _check_count(n_users, "n_users", allow_none=False)
    n_items = _check_count(n_items, "n_items", allow_none=False)
    users = _as_numpy(user_ids, "user_ids").astype(np.int64, copy=False)
    items = _as_numpy(item_ids, "item_ids").astype(np.int64, copy=False)
    if users.shape != items.shape:
        raise ValueError(f"user_ids and item_ids differ in length: {users.shape} vs {items.shape}")
    if edges == "positive":
        if labels is None:
            raise ValueError("swing_edges='positive' needs the interaction labels (LABEL_FIELD)")
        label = _as_numpy(labels, "labels")
        if label.shape != users.shape:
            raise ValueError(f"labels has length {label.shape[0]}, ids have {users.shape[0]}")
        keep = label == 1
        users, items = users[keep], items[keep]
    for name, ids, bound in (("user_ids", users, n_users), ("item_ids", items, n_items)):
        if ids.size and (ids.min() < 0 or ids.max() >= bound):
            raise ValueError(f"{name} must lie in [0, {bound}), got range [{ids.min()}, {ids.max()}]")
    matrix = sp.csr_matrix((np.ones(users.shape[0]), (users, items)), shape=(n_users, n_items))
    return binarize(matrix)


@dataclass
class NeighbourTable:
    """Top-k neighbours of ``n`` nodes as padded arrays.

    ids:    int64 ``n x k``, best first (ties: lower id first); padding is :attr:`PAD_ID` (-1)
    scores: float64 ``n x k``, SWING scores; padding is 0
    counts: int64 ``n``, number of real neighbours per node
    """

    ids: np.ndarray
    scores: np.ndarray
    counts: np.ndarray

    PAD_ID = -1

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.ids.ndim != 2 or self.ids.shape != self.scores.shape:
            raise ValueError(f"ids and scores must be equal n x k arrays, got {self.ids.shape} and {self.scores.shape}")
        if self.counts.shape != (self.ids.shape[0],):
            raise ValueError(f"counts must have shape ({self.ids.shape[0]},)")

    @property
    def n_nodes(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    @classmethod
    def from_csr(cls, csr, k: int) -> "NeighbourTable":
        """Keep each row's ``k`` best entries with score > 0 (ties to the lower column)."""
        k = _check_count(k, "k", allow_none=False)
        _check_sparse(csr, "csr")
        csr = sp.csr_matrix(csr, dtype=np.float64)
        csr.sum_duplicates()
        n = csr.shape[0]
        row = np.repeat(np.arange(n, dtype=np.int64), np.diff(csr.indptr))
        positive = csr.data > 0
        row, col, score = row[positive], csr.indices[positive].astype(np.int64), csr.data[positive]
        order = np.lexsort((col, -score, row))
        row, col, score = row[order], col[order], score[order]
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n), out=starts[1:])
        rank = np.arange(row.shape[0]) - starts[row]
        keep = rank < k
        ids = np.full((n, k), cls.PAD_ID, dtype=np.int64)
        scores = np.zeros((n, k), dtype=np.float64)
        ids[row[keep], rank[keep]] = col[keep]
        scores[row[keep], rank[keep]] = score[keep]
        counts = np.minimum(np.diff(starts), k)
        return cls(ids=ids, scores=scores, counts=counts)

    def to_csr(self, n_columns: Optional[int] = None) -> sp.csr_matrix:
        """The kept neighbours as a CSR (``n x n_columns``, default square)."""
        valid = self.ids != self.PAD_ID
        rows = np.nonzero(valid)[0]
        n_columns = self.n_nodes if n_columns is None else n_columns
        return sp.csr_matrix((self.scores[valid], (rows, self.ids[valid])), shape=(self.n_nodes, n_columns))


@dataclass
class SwingNeighbours:
    """User-user and item-item top-k SWING neighbours (internal RecBole ids; 0 = padding)."""

    users: NeighbourTable
    items: NeighbourTable

    @classmethod
    def from_csr(cls, user_csr, item_csr, k: int) -> "SwingNeighbours":
        return cls(users=NeighbourTable.from_csr(user_csr, k), items=NeighbourTable.from_csr(item_csr, k))
