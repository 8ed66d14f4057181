"""SWING user-user and item-item similarities on the TRAIN interaction graph.

Definition (Yang et al. 2020, the variant the DLRREC paper uses)::

    s(i, j) = sum over ORDERED pairs of distinct users (u, v), both in U_i and in U_j, of
              w_u * w_v / (alpha + |I_u & I_v|)
    w_u     = |I_u| ** -0.5

``U_i`` are the users of item ``i``, ``I_u`` the items of user ``u``. ``s(i, i) = 0``; the matrix
is symmetric. User-user SWING is the same formula on the transposed graph (items become the
"connectors" and users the "nodes"). Throughout the code, *nodes* are what we compute
similarities between (items for :func:`item_similarity`) and *connectors* are what links them
(users for :func:`item_similarity`).

Input conventions (:func:`binarize`)
    Any scipy sparse matrix or array, ``connectors x nodes`` (users x items). Every stored entry
    whose value is non-zero is an edge; stored entries equal to ``0`` are *not* edges; duplicates
    of one (user, item) cell count once (each entry is turned into a 1 before summing, so values
    never cancel). ``NaN`` values are rejected. Users or items without edges get empty rows.

Algorithm (why it is fast and exact)
    Work is split by output row: row ``i`` is owned by one task, so rows are computed in
    parallel (numba ``prange``, all cores) with no write conflicts and no locks. Nothing of size
    ``n_items x n_items`` is ever allocated: memory is ``O(nnz)`` for the graph, per-task
    scratch of ``O(n_items + d^2)`` (``d`` = users of the row, at most ``_DENSE_PAIR_LIMIT``)
    and the output.

    Row ``i`` (users ``U_i``, ``d = |U_i|``) is computed by one of two exact methods:

    * *common lists* (``d <= _DENSE_PAIR_LIMIT``, always the case with the default cap): one
      sweep over ``I_u`` for ``u in U_i`` builds, for every other item ``j``, the list ``L_j``
      of users of ``i`` that also have ``j`` (a counting sort). Counting each pair of each list
      in a ``d x d`` triangle gives ``|I_u & I_v| = 1 + #lists holding (u, v)``; then
      ``s(i, j)`` is the sum of ``2 w_u w_v / (alpha + |I_u & I_v|)`` over the pairs of
      ``L_j``. The cost is ``sum_u |I_u|`` plus the number of (pair, shared item) incidences:
      user pairs that share nothing but ``i`` -- most pairs on sparse data -- cost nothing.
    * *marking* (busier rows, when no cap is set): for each pair ``u < v`` of ``U_i``, mark
      ``I_u`` in a stamp array, scan ``I_v`` to get ``C = I_u & I_v`` and add the pair's term
      to every ``j`` in ``C`` other than ``i``. Time ``O(sum over pairs of |I_v|)``, memory
      ``O(n_items)``.

    Users are relabelled by (sampled) degree, descending, so the marked user is the busier
    one and every row enumerates its pairs in one global order. Users with fewer than two
    (sampled) items cannot share two items with anyone and are dropped before the pair work
    (their weights still use the full degree); on power-law data this removes many pairs. A
    cheap first pass counts each row's non-zeros (columns reached by >= 2 users), so results
    are written straight into pre-sized CSR arrays; rows are scheduled longest-first in a
    snake order over the tasks to balance the cores.

    Why not the textbook loop (per item, per user pair, a merge of the two item lists)? It
    pays a full intersection for every pair, even the many that share only ``i``; the common
    lists pay only for shared items. Why not enumerate user pairs globally and scatter into
    item pairs? Its writes collide across threads and it needs a sparse item-pair
    accumulator; the row-owned version is lock-free, deterministic and bounded in memory.

Exactness and determinism
    Both methods add the pairs of a row in the same global user order, so ``s(i, j)`` (row
    ``i``) and ``s(j, i)`` (row ``j``) add the same terms in the same order, whatever method
    each row used: the full result is *bit-for-bit* symmetric. Results do not depend on the
    number of threads.

``topk``
    Keeps the ``k`` largest scores of each row; ties (equal float64 values) go to the lower
    column index. Because ``j`` may be in the top-k of ``i`` but not vice versa, a top-k result is
    in general **not** symmetric.

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

Dataset glue: :func:`swing_edges_matrix`, :class:`NeighbourTable` / :class:`SwingNeighbours`,
the ``.npz`` cache (:func:`load_or_compute`), :func:`swing_for_dataset`, and a CLI::

    python -m recbole_dlrrec.swing.similarity --dataset=NAME [--topk K] [--config_files a.yaml b.yaml]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import numbers
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from tqdm import tqdm

from recbole_dlrrec.atomic import atomic_path

__all__ = [
    "DEFAULTS",
    "SWING_EDGE_CHOICES",
    "binarize",
    "sample_graph",
    "connector_weights",
    "similarity_from_graph",
    "item_similarity",
    "user_similarity",
    "swing_edges_matrix",
    "NeighbourTable",
    "SwingNeighbours",
    "CacheResult",
    "edges_fingerprint",
    "cache_file_path",
    "load_or_compute",
    "swing_params_from_config",
    "swing_cache_dir",
    "swing_for_dataset",
    "summarize",
    "plot_score_histogram",
    "main",
]

#: Defaults of the SWING config keys; ``properties/swing.yaml`` carries the same values (tested).
DEFAULTS = {
    "swing_alpha": 1.0,
    "swing_topk": 50,
    "swing_max_users_per_item": 1000,
    "swing_max_items_per_user": 1000,
    "swing_edges": "positive",
    "swing_sample_mode": "score",
}
SWING_EDGE_CHOICES = ("all", "positive")
#: Bump when the algorithm or the cached layout changes: old cache files then stop matching.
CACHE_FORMAT_VERSION = 1
_META_KEY = "__swing_meta__"
#: Scratch sets per thread: more, smaller tasks balance the cores better but cost memory
#: (each set is about 36 bytes per node, plus the pair counter below).
_TASKS_PER_THREAD = 4
#: Rows whose node has at most this many (sampled) connectors use the per-row pair counter
#: (d (d - 1) / 2 int32 per task: 8 MiB at 2048); busier rows use the O(n_nodes) marking method.
_DENSE_PAIR_LIMIT = 2048
#: Below this estimated work (sum over rows of d (d - 1) / 2 + d) one thread is used.
_PARALLEL_MIN_WORK = 200_000
#: Row batches when a progress bar is shown (one numba call per batch).
_PROGRESS_BATCHES = 20


# --------------------------------------------------------------------------------------------
# Input validation and graph preparation
# --------------------------------------------------------------------------------------------
def _check_sparse(matrix, name: str = "matrix") -> None:
    if not sp.issparse(matrix):
        raise ValueError(
            f"{name} must be a scipy.sparse matrix (users x items), got {type(matrix).__name__}"
        )
    if len(matrix.shape) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}")


def _check_count(value, name: str, allow_none: bool = True) -> Optional[int]:
    """A positive integer (``bool`` refused) or, when allowed, ``None``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}")
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
    graph = sp.csr_matrix(
        (np.ones(rows.shape[0], dtype=np.float64), (rows, cols)), shape=coo.shape
    )
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
    sampled = sp.csr_matrix(
        (np.ones(int(keep.sum())), (csc.indices[keep], column[keep])), shape=graph.shape
    )
    sampled.sort_indices()
    return sampled


def sample_graph(matrix, max_users_per_item: Optional[int] = None, seed: int = 0,
                 max_items_per_user: Optional[int] = None) -> sp.csr_matrix:
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


# --------------------------------------------------------------------------------------------
# numba kernels. Shared arguments:
#   rows, task_ptr: rows[task_ptr[t]:task_ptr[t+1]] are the rows computed by task t
#   node_indptr/node_conn: CSR nodes -> connectors, each list sorted by connector label
#   conn_indptr/conn_nodes: CSR connectors -> nodes
# --------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _count_row_nnz(rows, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes, out_nnz,
                   out_work):
    """out_nnz[i] = number of j != i reached from i by at least two connectors.

    out_work[i] estimates the cost of row i for the common-lists method: entries swept plus
    (pair, shared column) incidences, sum over j of |L_j| (|L_j| - 1) / 2.
    """
    n_nodes = node_indptr.shape[0] - 1
    n_tasks = task_ptr.shape[0] - 1
    for t in prange(n_tasks):
        hits = np.zeros(n_nodes, np.int32)
        touched = np.empty(n_nodes, np.int32)
        for r in range(task_ptr[t], task_ptr[t + 1]):
            i = rows[r]
            n_touched = 0
            nnz = 0
            for a in range(node_indptr[i], node_indptr[i + 1]):
                u = node_conn[a]
                for p in range(conn_indptr[u], conn_indptr[u + 1]):
                    j = conn_nodes[p]
                    if hits[j] == 0:
                        touched[n_touched] = j
                        n_touched += 1
                    hits[j] += 1
                    if hits[j] == 2 and j != i:
                        nnz += 1
            work = 0.0
            for q in range(n_touched):
                h = hits[touched[q]]
                work += 1.0 if touched[q] == i else 1.0 + 0.5 * h * (h - 1)
                hits[touched[q]] = 0
            out_nnz[i] = nnz
            out_work[i] = work


@njit(cache=True)
def _row_by_marking(i, start, stop, node_conn, conn_indptr, conn_nodes, weights, alpha,
                    mark, stamp, seen, common, touched, acc):
    """Row i, pair by pair: mark I_u, scan I_v, add the pair's term to every shared column.

    Memory O(n_nodes); time sum over pairs (u, v) of U_i of |I_v|. Returns (columns, stamp).
    """
    n_touched = 0
    for a in range(start, stop - 1):
        u = node_conn[a]
        stamp += 1
        for p in range(conn_indptr[u], conn_indptr[u + 1]):
            mark[conn_nodes[p]] = stamp
        w2u = 2.0 * weights[u]
        for b in range(a + 1, stop):
            v = node_conn[b]
            n_common = 0
            for p in range(conn_indptr[v], conn_indptr[v + 1]):
                j = conn_nodes[p]
                if mark[j] == stamp:
                    common[n_common] = j
                    n_common += 1
            if n_common < 2:  # only i itself is shared
                continue
            term = w2u * weights[v] / (alpha + n_common)
            for q in range(n_common):
                j = common[q]
                if j != i:
                    if seen[j] != i:
                        seen[j] = i
                        touched[n_touched] = j
                        n_touched += 1
                    acc[j] += term
    return n_touched, stamp


@njit(cache=True)
def _row_by_common_lists(i, start, stop, node_conn, conn_indptr, conn_nodes, weights, alpha,
                         count, cursor, touched, acc, pair_common):
    """Row i via, per column j, the list L_j of users of i that also have j.

    1. One sweep over I_u for u in U_i gives |L_j|; the columns are the j != i with
       |L_j| >= 2 and the lists are filled in user order (counting sort).
    2. For each pair (u, v) in some L_j, pair_common[u, v] += 1: afterwards
       |I_u & I_v| = 1 + pair_common[u, v] (i is the one common item not listed).
    3. s(i, j) = sum over pairs (u, v) of L_j of 2 w_u w_v / (alpha + |I_u & I_v|).
    Pairs that share only i cost nothing here, unlike in _row_by_marking; the price is a
    d x d counter (d = |U_i|). Pairs are summed in the same order as _row_by_marking, so both
    give bit-identical results. Returns the number of columns (in touched, values in acc).
    """
    d = stop - start
    n_seen = 0
    for a in range(start, stop):
        u = node_conn[a]
        for p in range(conn_indptr[u], conn_indptr[u + 1]):
            j = conn_nodes[p]
            if count[j] == 0:
                touched[n_seen] = j
                n_seen += 1
            count[j] += 1
    n_cols = 0
    total = 0
    for q in range(n_seen):
        j = touched[q]
        if count[j] >= 2 and j != i:
            touched[n_cols] = j
            n_cols += 1
            cursor[j] = total
            total += count[j]
        else:
            count[j] = 0
    members = np.empty(total, np.int32)  # L_j as local user positions, ascending
    for a in range(d):
        u = node_conn[start + a]
        for p in range(conn_indptr[u], conn_indptr[u + 1]):
            j = conn_nodes[p]
            if count[j] != 0:
                members[cursor[j]] = a
                cursor[j] += 1
    # pair_common holds the strict lower triangle, packed: (a < b) -> b * (b - 1) / 2 + a
    pair_common[: d * (d - 1) // 2] = 0
    local_weight = np.empty(d, np.float64)
    for a in range(d):
        local_weight[a] = weights[node_conn[start + a]]
    for q in range(n_cols):
        j = touched[q]
        end = cursor[j]
        for r in range(end - count[j] + 1, end):
            b = members[r]
            row = b * (b - 1) // 2
            for p in range(end - count[j], r):
                pair_common[row + members[p]] += 1
    for q in range(n_cols):
        j = touched[q]
        end = cursor[j]
        value = 0.0
        for p in range(end - count[j], end):
            a = members[p]
            w2u = 2.0 * local_weight[a]
            for r in range(p + 1, end):
                b = members[r]
                value += w2u * local_weight[b] / (alpha + (1 + pair_common[b * (b - 1) // 2 + a]))
        acc[j] = value
        count[j] = 0
    return n_cols


@njit(parallel=True, cache=True)
def _swing_rows(rows, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes, weights,
                alpha, topk, max_conn_degree, dense_limit, out_indptr, out_cols, out_vals,
                out_len):
    """Compute the SWING rows ``rows`` into the CSR slots out_indptr[i]:out_indptr[i+1].

    Rows with at most ``dense_limit`` users use _row_by_common_lists, others
    _row_by_marking. ``topk < 0`` keeps every non-zero. out_len[i] receives the count written.
    """
    n_nodes = node_indptr.shape[0] - 1
    n_tasks = task_ptr.shape[0] - 1
    for t in prange(n_tasks):
        largest = 0
        for r in range(task_ptr[t], task_ptr[t + 1]):
            d = node_indptr[rows[r] + 1] - node_indptr[rows[r]]
            if d <= dense_limit and d > largest:
                largest = d
        pair_common = np.empty(largest * (largest - 1) // 2, np.int32)
        acc = np.zeros(n_nodes, np.float64)
        touched = np.empty(n_nodes, np.int32)
        count = np.zeros(n_nodes, np.int32)
        cursor = np.empty(n_nodes, np.int64)
        mark = np.zeros(n_nodes, np.int64)  # stamp of the connector u currently marked
        seen = np.full(n_nodes, -1, np.int32)  # row that last touched the column
        common = np.empty(max(max_conn_degree, 1), np.int32)
        stamp = 0
        for r in range(task_ptr[t], task_ptr[t + 1]):
            i = rows[r]
            start = node_indptr[i]
            stop = node_indptr[i + 1]
            if stop - start <= dense_limit:
                n_touched = _row_by_common_lists(i, start, stop, node_conn, conn_indptr,
                                                 conn_nodes, weights, alpha, count, cursor,
                                                 touched, acc, pair_common)
            else:
                n_touched, stamp = _row_by_marking(i, start, stop, node_conn, conn_indptr,
                                                   conn_nodes, weights, alpha, mark, stamp,
                                                   seen, common, touched, acc)
            capacity = out_indptr[i + 1] - out_indptr[i]
            base = out_indptr[i]
            cols = np.sort(touched[:n_touched])
            if topk < 0 or n_touched <= topk:
                n_out = min(n_touched, capacity)
                for q in range(n_out):
                    out_cols[base + q] = cols[q]
                    out_vals[base + q] = acc[cols[q]]
            else:
                neg = np.empty(n_touched, np.float64)
                for q in range(n_touched):
                    neg[q] = -acc[cols[q]]
                best = np.argsort(neg, kind="mergesort")  # stable: ties keep the lower column
                chosen = np.sort(cols[best[:topk]])
                n_out = min(topk, capacity)
                for q in range(n_out):
                    out_cols[base + q] = chosen[q]
                    out_vals[base + q] = acc[chosen[q]]
            out_len[i] = n_out
            for q in range(n_touched):
                acc[touched[q]] = 0.0


def _schedule(rows: np.ndarray, cost: np.ndarray, n_tasks: int):
    """Group ``rows`` into ``n_tasks`` tasks of similar total cost (longest first, snake order)."""
    order = np.argsort(-cost[rows], kind="stable")
    rows = rows[order]
    n_tasks = max(1, min(n_tasks, rows.shape[0]))
    position = np.arange(rows.shape[0])
    lap, offset = np.divmod(position, n_tasks)
    task = np.where(lap % 2 == 0, offset, n_tasks - 1 - offset)
    by_task = np.argsort(task, kind="stable")
    task_ptr = np.zeros(n_tasks + 1, dtype=np.int64)
    task_ptr[1:] = np.cumsum(np.bincount(task, minlength=n_tasks))
    return np.ascontiguousarray(rows[by_task], dtype=np.int64), task_ptr


def similarity_from_graph(graph, weights, alpha: float = 1.0, topk: Optional[int] = None,
                          progress: bool = False, desc: str = "SWING") -> sp.csr_matrix:
    """SWING between the columns of a (possibly sampled) ``connectors x nodes`` graph.

    This is the exact core behind :func:`item_similarity`: ``graph`` is used as is (after
    :func:`binarize`) and ``weights[u]`` is the weight of connector ``u`` (``|I_u| ** -0.5`` on
    the *full* graph). Returns a float64 CSR ``nodes x nodes`` with sorted indices.
    """
    alpha = _check_alpha(alpha)
    topk = _check_count(topk, "topk")
    graph = binarize(graph)
    n_conn, n_nodes = graph.shape
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_conn,):
        raise ValueError(f"weights must have shape ({n_conn},), got {weights.shape}")
    empty = sp.csr_matrix((n_nodes, n_nodes), dtype=np.float64)
    degree = np.diff(graph.indptr)
    if n_nodes == 0 or n_conn == 0 or not (degree >= 2).any():
        return empty
    if (weights[degree >= 2] <= 0).any() or not np.isfinite(weights).all():
        raise ValueError("weights must be finite and > 0 for every connector with edges")

    # Relabel connectors by degree (descending, ties by id) and drop those with < 2 edges.
    order = np.lexsort((np.arange(n_conn), -degree))
    kept = order[: int((degree >= 2).sum())]
    conn_major = graph[kept]  # kept connectors x nodes
    node_major = conn_major.T.tocsr()
    node_major.sort_indices()  # each node's connector list in the global (degree) order

    conn_indptr = conn_major.indptr.astype(np.int64)
    conn_nodes = conn_major.indices.astype(np.int32)
    node_indptr = node_major.indptr.astype(np.int64)
    node_conn = node_major.indices.astype(np.int32)
    kept_weights = np.ascontiguousarray(weights[kept])
    max_conn_degree = int(np.diff(conn_indptr).max())

    node_degree = np.diff(node_indptr)
    rows = np.flatnonzero(node_degree >= 2).astype(np.int64)
    pair_cost = node_degree.astype(np.float64) * (node_degree - 1) / 2.0 + node_degree
    threads = numba.get_num_threads()
    if float(pair_cost[rows].sum()) < _PARALLEL_MIN_WORK:
        threads = 1  # waking worker threads would cost more than the work (esp. on busy CPUs)
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return _similarity_rows(rows, pair_cost, threads, node_indptr, node_conn, conn_indptr,
                                conn_nodes, kept_weights, alpha, topk, max_conn_degree,
                                n_nodes, progress, desc)
    finally:
        numba.set_num_threads(previous_threads)


def _similarity_rows(rows, pair_cost, threads, node_indptr, node_conn, conn_indptr, conn_nodes,
                     kept_weights, alpha, topk, max_conn_degree, n_nodes, progress, desc):
    """Both kernel passes of :func:`similarity_from_graph` on prepared arrays."""
    node_degree = np.diff(node_indptr)
    n_tasks = _TASKS_PER_THREAD * threads
    # Pass 1: exact non-zeros per row, hence the CSR layout of the result.
    nnz = np.zeros(n_nodes, dtype=np.int64)
    work = np.zeros(n_nodes, dtype=np.float64)
    scheduled, task_ptr = _schedule(rows, node_degree.astype(np.float64), n_tasks)
    _count_row_nnz(scheduled, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes, nnz,
                   work)
    # Pass-2 cost of a row: the common-lists work (2 sweeps over the incidences, the pair
    # triangle) or, for the marking method, its pair loop.
    dense = node_degree <= _DENSE_PAIR_LIMIT
    row_cost = np.where(dense, 2.0 * work + 0.1 * pair_cost, pair_cost * 8.0)
    lengths = nnz if topk is None else np.minimum(nnz, topk)
    out_indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_indptr[1:])
    out_cols = np.empty(out_indptr[-1], dtype=np.int32)
    out_vals = np.empty(out_indptr[-1], dtype=np.float64)
    out_len = np.zeros(n_nodes, dtype=np.int64)

    # Pass 2: the scores, in interleaved row batches so a progress bar can move.
    rows = rows[nnz[rows] > 0]
    by_cost = rows[np.argsort(-row_cost[rows], kind="stable")]
    n_batches = min(_PROGRESS_BATCHES, max(1, by_cost.shape[0])) if progress else 1
    bar = (tqdm(total=float(row_cost[rows].sum()), desc=desc, unit="op", unit_scale=True,
                leave=False) if progress else None)
    try:
        for b in range(n_batches):
            batch = by_cost[b::n_batches]
            if batch.shape[0] == 0:
                continue
            scheduled, task_ptr = _schedule(batch, row_cost, n_tasks)
            _swing_rows(scheduled, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes,
                        kept_weights, alpha, -1 if topk is None else topk, max_conn_degree,
                        _DENSE_PAIR_LIMIT, out_indptr, out_cols, out_vals, out_len)
            if bar is not None:
                bar.update(float(row_cost[batch].sum()))
    finally:
        if bar is not None:
            bar.close()
    if not np.array_equal(out_len, lengths):  # the two passes must agree; a bug otherwise
        raise RuntimeError("SWING kernel wrote a different number of entries than it counted")
    return sp.csr_matrix((out_vals, out_cols, out_indptr), shape=(n_nodes, n_nodes))


def _similarity(matrix, side: str, alpha, topk, max_users_per_item, seed, progress,
                max_items_per_user) -> sp.csr_matrix:
    _check_sparse(matrix)
    alpha = _check_alpha(alpha)
    topk = _check_count(topk, "topk")
    sampled = sample_graph(matrix, max_users_per_item, seed, max_items_per_user)
    full = binarize(matrix)
    if side == "users":
        full, sampled = full.T.tocsr(), sampled.T.tocsr()
    return similarity_from_graph(sampled, connector_weights(full), alpha=alpha, topk=topk,
                                 progress=progress, desc=f"SWING {side[:-1]}-{side[:-1]}")


def item_similarity(matrix, alpha: float = 1.0, topk: Optional[int] = None,
                    max_users_per_item: Optional[int] = None, seed: int = 0,
                    progress: bool = False,
                    max_items_per_user: Optional[int] = None) -> sp.csr_matrix:
    """Item-item SWING of a ``users x items`` sparse matrix: float64 CSR ``items x items``.

    ``alpha >= 0`` smooths ``1 / (alpha + |I_u & I_v|)``; ``topk`` keeps the k best per row
    (ties to the lower column; breaks symmetry). ``max_users_per_item`` (and, optionally,
    ``max_items_per_user``) first sample the graph (:func:`sample_graph`, seeded by ``seed``);
    SWING is then exact on the sampled graph, with weights from the full degrees. ``None`` =
    exact SWING. ``progress`` shows a tqdm bar. See the module docstring.
    """
    return _similarity(matrix, "items", alpha, topk, max_users_per_item, seed, progress,
                       max_items_per_user)


def user_similarity(matrix, alpha: float = 1.0, topk: Optional[int] = None,
                    max_users_per_item: Optional[int] = None, seed: int = 0,
                    progress: bool = False,
                    max_items_per_user: Optional[int] = None) -> sp.csr_matrix:
    """User-user SWING of a ``users x items`` matrix: float64 CSR ``users x users``.

    Without caps this is exactly ``item_similarity(matrix.T)``. The caps keep their meaning
    on ``matrix`` (users per item, items per user), so both sides use the same sampled graph;
    ``max_users_per_item`` bounds the cost here too (it caps the connectors' degree).
    """
    return _similarity(matrix, "users", alpha, topk, max_users_per_item, seed, progress,
                       max_items_per_user)


# --------------------------------------------------------------------------------------------
# Dataset glue: edges, neighbour tables, cache
# --------------------------------------------------------------------------------------------
def _as_numpy(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def swing_edges_matrix(user_ids, item_ids, labels, n_users: int, n_items: int,
                       edges: str = "positive") -> sp.csr_matrix:
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
            raise ValueError(f"{name} must lie in [0, {bound}), got range "
                             f"[{ids.min()}, {ids.max()}]")
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
            raise ValueError(f"ids and scores must be equal n x k arrays, got {self.ids.shape} "
                             f"and {self.scores.shape}")
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
        return sp.csr_matrix((self.scores[valid], (rows, self.ids[valid])),
                             shape=(self.n_nodes, n_columns))


@dataclass
class SwingNeighbours:
    """User-user and item-item top-k SWING neighbours (internal RecBole ids; 0 = padding)."""

    users: NeighbourTable
    items: NeighbourTable

    @classmethod
    def from_csr(cls, user_csr, item_csr, k: int) -> "SwingNeighbours":
        return cls(users=NeighbourTable.from_csr(user_csr, k),
                   items=NeighbourTable.from_csr(item_csr, k))


class CacheResult(NamedTuple):
    """What :func:`load_or_compute` did: the arrays, the file, whether it was loaded, seconds."""

    arrays: Dict[str, np.ndarray]
    path: str
    loaded: bool
    seconds: float


def edges_fingerprint(graph) -> str:
    """SHA-256 of the binarized edge structure (shape and edges; values ignored)."""
    graph = binarize(graph)
    digest = hashlib.sha256()
    digest.update(np.asarray(graph.shape, dtype=np.int64).tobytes())
    digest.update(graph.indptr.astype(np.int64).tobytes())
    digest.update(graph.indices.astype(np.int64).tobytes())
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cache key parameter of type {type(value).__name__} is not JSON-serialisable")


def _cache_meta(key_params: dict, fingerprint: str) -> str:
    return json.dumps({"version": CACHE_FORMAT_VERSION, "params": key_params,
                       "fingerprint": fingerprint}, sort_keys=True, default=_json_default)


def cache_file_path(cache_dir: str, key_params: dict, fingerprint: str = "",
                    prefix: str = "swing") -> str:
    """``<cache_dir>/<prefix>_<16 hex of sha256(params, fingerprint, version)>.npz``."""
    digest = hashlib.sha256(_cache_meta(key_params, fingerprint).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"{prefix}_{digest}.npz")


def _say(logger, level: str, message: str) -> None:
    if logger is not None:
        getattr(logger, level)(message)
    elif level == "warning":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        print(message)


def load_or_compute(cache_dir: str, key_params: dict,
                    compute_fn: Callable[[], Dict[str, np.ndarray]], fingerprint: str = "",
                    logger=None, prefix: str = "swing") -> CacheResult:
    """Load the arrays cached for (``key_params``, ``fingerprint``) or compute and save them.

    ``compute_fn()`` returns a dict of numpy arrays (names not starting with ``__``). The file
    name hashes the parameters and the fingerprint (and :data:`CACHE_FORMAT_VERSION`); the
    parameters are also stored in the file and checked on load. Writes are atomic (temporary
    file in ``cache_dir``, then ``os.replace``). A file that cannot be read or does not match
    is recomputed with a warning. Messages go to ``logger`` (``info``/``warning``) or, without a
    logger, to stdout / ``warnings.warn``.
    """
    path = cache_file_path(cache_dir, key_params, fingerprint, prefix)
    meta = _cache_meta(key_params, fingerprint)
    start = time.perf_counter()
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as stored:
                if _META_KEY not in stored.files or str(stored[_META_KEY]) != meta:
                    raise ValueError("parameters stored in the file do not match")
                arrays = {name: stored[name] for name in stored.files if name != _META_KEY}
            _say(logger, "info", f"loaded SWING cache {path}")
            return CacheResult(arrays, path, True, time.perf_counter() - start)
        except Exception as error:  # noqa: BLE001 - any unreadable file is recomputed
            _say(logger, "warning",
                 f"SWING cache {path} is unreadable ({type(error).__name__}: {error}); "
                 "recomputing")
    arrays = compute_fn()
    if not isinstance(arrays, dict) or any(name.startswith("__") for name in arrays):
        raise ValueError("compute_fn must return a dict of arrays with names not starting '__'")
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as tmp:
        np.savez(tmp, **arrays, **{_META_KEY: np.array(meta)})
        tmp.flush()
        os.fsync(tmp.fileno())
    _say(logger, "info", f"saved SWING cache {path}")
    return CacheResult(arrays, path, False, time.perf_counter() - start)


def _config_value(config, key: str):
    return config[key] if key in config else DEFAULTS.get(key)


def swing_params_from_config(config) -> dict:
    """Validated SWING parameters from a RecBole ``Config`` (or a dict); errors name the key."""
    alpha = _check_alpha(_config_value(config, "swing_alpha"), "swing_alpha")
    topk = _check_count(_config_value(config, "swing_topk"), "swing_topk", allow_none=False)
    item_cap = _check_count(_config_value(config, "swing_max_users_per_item"),
                            "swing_max_users_per_item")
    user_cap = _check_count(_config_value(config, "swing_max_items_per_user"),
                            "swing_max_items_per_user")
    edges = _config_value(config, "swing_edges")
    if edges not in SWING_EDGE_CHOICES:
        raise ValueError(f"swing_edges must be one of {SWING_EDGE_CHOICES}, got {edges!r}")
    seed = _check_seed(config["seed"] if "seed" in config else 0, "seed")
    return {"alpha": alpha, "topk": topk, "max_users_per_item": item_cap,
            "max_items_per_user": user_cap, "edges": edges,
            "seed": seed}


def _csr_arrays(prefix: str, csr: sp.csr_matrix) -> Dict[str, np.ndarray]:
    return {f"{prefix}_indptr": csr.indptr, f"{prefix}_indices": csr.indices,
            f"{prefix}_data": csr.data, f"{prefix}_shape": np.asarray(csr.shape, dtype=np.int64)}


def _csr_from_arrays(prefix: str, arrays: Dict[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"],
                          arrays[f"{prefix}_indptr"]), shape=shape)


def swing_cache_dir(config) -> str:
    """``<side_data_path>/swing_cache`` when ``side_data_path`` is set, else ``<data_path>/...``."""
    side = config["side_data_path"] if "side_data_path" in config else None
    return os.path.join(side or config["data_path"], "swing_cache")


def _swing_for_dataset(config, train_dataset, logger=None, progress: bool = True):
    params = swing_params_from_config(config)
    inter = train_dataset.inter_feat
    label_field = config["LABEL_FIELD"] if "LABEL_FIELD" in config else None
    labels = None
    if params["edges"] == "positive":
        if label_field is None or label_field not in inter:
            raise ValueError(f"swing_edges='positive' needs the label field {label_field!r} in "
                             "the train interactions; set swing_edges: all to use every row")
        labels = inter[label_field]
    graph = swing_edges_matrix(inter[config["USER_ID_FIELD"]], inter[config["ITEM_ID_FIELD"]],
                               labels, train_dataset.user_num, train_dataset.item_num,
                               params["edges"])
    key_params = {"dataset": str(config["dataset"]), **params}
    common = dict(alpha=params["alpha"], topk=params["topk"],
                  max_users_per_item=params["max_users_per_item"],
                  max_items_per_user=params["max_items_per_user"], seed=params["seed"],
                  progress=progress)

    def compute():
        arrays = _csr_arrays("item", item_similarity(graph, **common))
        arrays.update(_csr_arrays("user", user_similarity(graph, **common)))
        return arrays

    cache_dir = swing_cache_dir(config)
    result = load_or_compute(cache_dir, key_params, compute, edges_fingerprint(graph), logger)
    neighbours = SwingNeighbours.from_csr(_csr_from_arrays("user", result.arrays),
                                          _csr_from_arrays("item", result.arrays),
                                          params["topk"])
    return neighbours, result


def swing_for_dataset(config, train_dataset, logger=None, progress: bool = True) -> SwingNeighbours:
    """Top-k user-user and item-item SWING neighbours of a RecBole TRAIN split, cached.

    Reads ``swing_alpha``, ``swing_topk``, ``swing_max_users_per_item``,
    ``swing_max_items_per_user``, ``swing_edges`` and ``seed`` from ``config`` (defaults: :data:`DEFAULTS`), builds the edge matrix from
    ``train_dataset.inter_feat`` (``user_num x item_num``) and caches the result in
    :func:`swing_cache_dir`. Only the train split must be passed, or labels leak.
    """
    return _swing_for_dataset(config, train_dataset, logger, progress)[0]


# --------------------------------------------------------------------------------------------
# Audit: summary and histogram, CLI
# --------------------------------------------------------------------------------------------
_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def summarize(neighbours: SwingNeighbours) -> dict:
    """Per side: nodes, nodes with neighbours, mean neighbours, score quantiles."""
    summary = {}
    for side in ("users", "items"):
        table: NeighbourTable = getattr(neighbours, side)
        scores = table.scores[table.ids != NeighbourTable.PAD_ID]
        with_any = int((table.counts > 0).sum())
        summary[side] = {
            "nodes": table.n_nodes,
            "with_neighbours": with_any,
            "mean_neighbours": float(table.counts[table.counts > 0].mean()) if with_any else 0.0,
            "score_quantiles": ({f"q{int(q * 100)}": float(v) for q, v in
                                 zip(_QUANTILES, np.quantile(scores, _QUANTILES))}
                                if scores.size else {}),
        }
    return summary


def plot_score_histogram(neighbours: SwingNeighbours, path: str) -> str:
    """Save a PNG with the kept SWING score histograms of users and items (log-log axes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    FigureCanvasAgg(figure)
    for position, side in enumerate(("users", "items")):
        table: NeighbourTable = getattr(neighbours, side)
        scores = table.scores[table.ids != NeighbourTable.PAD_ID]
        axes = figure.add_subplot(1, 2, position + 1)
        if scores.size:  # scores are heavy-tailed: log-spaced bins on a log x axis
            low, high = float(scores.min()), float(scores.max())
            bins = np.geomspace(low, high * (1 + 1e-9), 50) if high > low else 1
            axes.hist(scores, bins=bins, color="tab:blue" if side == "users" else "tab:orange")
            axes.set_xscale("log")
            axes.set_yscale("log")
        axes.set_title(f"{side[:-1]}-{side[:-1]} SWING, top-{table.k} ({scores.size} scores)")
        axes.set_xlabel("SWING score")
        axes.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_dlrrec.swing.similarity",
        description="Build (or load) the SWING neighbour cache of a dataset's TRAIN split.")
    parser.add_argument("--dataset", required=True, help="RecBole dataset name")
    parser.add_argument("--model", default="DLRREC", help="model whose config is used")
    parser.add_argument("--topk", type=int, default=None, help="overrides swing_topk")
    parser.add_argument("--config_files", nargs="+", default=None,
                        help="YAML config files (space separated, as in run_recbole.py)")
    args = parser.parse_args(argv)

    from recbole_dlrrec.runtime.quick_start import build_config, load_splits

    config_files = None
    if args.config_files:
        config_files = [name for chunk in args.config_files for name in chunk.split()]
    config_dict = {} if args.topk is None else {"swing_topk": args.topk}
    config = build_config(args.model, args.dataset, config_file_list=config_files,
                          config_dict=config_dict)
    _, train_data, _, _ = load_splits(config)
    start = time.perf_counter()
    neighbours, result = _swing_for_dataset(config, train_data.dataset, logger=None,
                                            progress=True)
    elapsed = time.perf_counter() - start
    summary = summarize(neighbours)
    png = plot_score_histogram(neighbours, os.path.splitext(result.path)[0] + "_hist.png")
    print(f"SWING for dataset {args.dataset}: {'loaded' if result.loaded else 'computed'} "
          f"in {elapsed:.2f} s; cache {result.path}")
    for side, info in summary.items():
        quantiles = " ".join(f"{name}={value:.4g}"
                             for name, value in info["score_quantiles"].items())
        print(f"  {side}: {info['with_neighbours']}/{info['nodes']} with neighbours, "
              f"mean {info['mean_neighbours']:.1f} neighbours; scores {quantiles or '(none)'}")
    print(f"  histogram: {png}")
    return {"summary": summary, "cache": result.path, "histogram": png, "seconds": elapsed,
            "loaded": result.loaded}


if __name__ == "__main__":
    main(sys.argv[1:])
