"""SWING user-user and item-item similarities on the TRAIN interaction graph (numba kernels).

Definition (Yang et al. 2020, the variant the DLRREC paper uses)::

    s(i, j) = sum over ORDERED pairs of distinct users (u, v), both in U_i and in U_j, of
              w_u * w_v / (alpha + |I_u & I_v|)
    w_u     = |I_u| ** -0.5

``U_i`` are the users of item ``i``, ``I_u`` the items of user ``u``. ``s(i, i) = 0``; the matrix
is symmetric. User-user SWING is the same formula on the transposed graph (items become the
"connectors" and users the "nodes"). Throughout the code, *nodes* are what we compute
similarities between (items for :func:`item_similarity`) and *connectors* are what links them
(users for :func:`item_similarity`).

Input: see :mod:`recbole_dlrrec.swing.graph` (:func:`~recbole_dlrrec.swing.graph.binarize`,
the degree caps of :func:`~recbole_dlrrec.swing.graph.sample_graph`).

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
"""

from __future__ import annotations

import contextlib
from typing import Optional

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from tqdm import tqdm

from recbole_dlrrec.swing.graph import (
    _check_alpha,
    _check_count,
    _check_sparse,
    binarize,
    connector_weights,
    sample_graph,
)

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
# numba kernels. Shared arguments:
#   rows, task_ptr: rows[task_ptr[t]:task_ptr[t+1]] are the rows computed by task t
#   node_indptr/node_conn: CSR nodes -> connectors, each list sorted by connector label
#   conn_indptr/conn_nodes: CSR connectors -> nodes
# --------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _count_row_nnz(rows, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes, out_nnz, out_work):
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
def _row_by_marking(
    i, start, stop, node_conn, conn_indptr, conn_nodes, weights, alpha, mark, stamp, seen, common, touched, acc
):
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
def _row_by_common_lists(
    i, start, stop, node_conn, conn_indptr, conn_nodes, weights, alpha, count, cursor, touched, acc, pair_common
):
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
def _swing_rows(
    rows,
    task_ptr,
    node_indptr,
    node_conn,
    conn_indptr,
    conn_nodes,
    weights,
    alpha,
    topk,
    max_conn_degree,
    dense_limit,
    out_indptr,
    out_cols,
    out_vals,
    out_len,
):
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
                n_touched = _row_by_common_lists(
                    i,
                    start,
                    stop,
                    node_conn,
                    conn_indptr,
                    conn_nodes,
                    weights,
                    alpha,
                    count,
                    cursor,
                    touched,
                    acc,
                    pair_common,
                )
            else:
                n_touched, stamp = _row_by_marking(
                    i,
                    start,
                    stop,
                    node_conn,
                    conn_indptr,
                    conn_nodes,
                    weights,
                    alpha,
                    mark,
                    stamp,
                    seen,
                    common,
                    touched,
                    acc,
                )
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


def similarity_from_graph(
    graph, weights, alpha: float = 1.0, topk: Optional[int] = None, progress: bool = False, desc: str = "SWING"
) -> sp.csr_matrix:
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
    with _kernel_threads(float(pair_cost[rows].sum())) as threads:
        return _similarity_rows(
            rows,
            pair_cost,
            threads,
            node_indptr,
            node_conn,
            conn_indptr,
            conn_nodes,
            kept_weights,
            alpha,
            topk,
            max_conn_degree,
            n_nodes,
            progress,
            desc,
        )


@contextlib.contextmanager
def _kernel_threads(work: float):
    """numba's thread count for one kernel run (one thread for small `work`: waking worker threads
    would cost more than the work, esp. on busy CPUs); numba's and torch's counts as before after
    it. numba's pool, started by its first thread query or launch, sets OpenMP's count to
    NUMBA_NUM_THREADS, and torch reads that back as its own: without restoring torch's, computing
    SWING tables changed the thread count (so the float sums, so the numbers) of every model
    trained after it in the process. (swing may not import runtime/threads.py, the owner of thread
    counts: the layers point down.)"""
    import torch

    torch_before = torch.get_num_threads()  # before numba's first query, which may start its pool
    numba_before = numba.get_num_threads()
    threads = 1 if work < _PARALLEL_MIN_WORK else numba_before
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(numba_before)  # numba first, torch last (see runtime/threads.py)
        torch.set_num_threads(torch_before)


def _similarity_rows(
    rows,
    pair_cost,
    threads,
    node_indptr,
    node_conn,
    conn_indptr,
    conn_nodes,
    kept_weights,
    alpha,
    topk,
    max_conn_degree,
    n_nodes,
    progress,
    desc,
):
    """Both kernel passes of :func:`similarity_from_graph` on prepared arrays."""
    node_degree = np.diff(node_indptr)
    n_tasks = _TASKS_PER_THREAD * threads
    # Pass 1: exact non-zeros per row, hence the CSR layout of the result.
    nnz = np.zeros(n_nodes, dtype=np.int64)
    work = np.zeros(n_nodes, dtype=np.float64)
    scheduled, task_ptr = _schedule(rows, node_degree.astype(np.float64), n_tasks)
    _count_row_nnz(scheduled, task_ptr, node_indptr, node_conn, conn_indptr, conn_nodes, nnz, work)
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
    bar = (
        tqdm(total=float(row_cost[rows].sum()), desc=desc, unit="op", unit_scale=True, leave=False)
        if progress
        else None
    )
    try:
        for b in range(n_batches):
            batch = by_cost[b::n_batches]
            if batch.shape[0] == 0:
                continue
            scheduled, task_ptr = _schedule(batch, row_cost, n_tasks)
            _swing_rows(
                scheduled,
                task_ptr,
                node_indptr,
                node_conn,
                conn_indptr,
                conn_nodes,
                kept_weights,
                alpha,
                -1 if topk is None else topk,
                max_conn_degree,
                _DENSE_PAIR_LIMIT,
                out_indptr,
                out_cols,
                out_vals,
                out_len,
            )
            if bar is not None:
                bar.update(float(row_cost[batch].sum()))
    finally:
        if bar is not None:
            bar.close()
    if not np.array_equal(out_len, lengths):  # the two passes must agree; a bug otherwise
        raise RuntimeError("SWING kernel wrote a different number of entries than it counted")
    return sp.csr_matrix((out_vals, out_cols, out_indptr), shape=(n_nodes, n_nodes))


def _similarity(
    matrix, side: str, alpha, topk, max_users_per_item, seed, progress, max_items_per_user
) -> sp.csr_matrix:
    _check_sparse(matrix)
    alpha = _check_alpha(alpha)
    topk = _check_count(topk, "topk")
    sampled = sample_graph(matrix, max_users_per_item, seed, max_items_per_user)
    full = binarize(matrix)
    if side == "users":
        full, sampled = full.T.tocsr(), sampled.T.tocsr()
    return similarity_from_graph(
        sampled,
        connector_weights(full),
        alpha=alpha,
        topk=topk,
        progress=progress,
        desc=f"SWING {side[:-1]}-{side[:-1]}",
    )


def item_similarity(
    matrix,
    alpha: float = 1.0,
    topk: Optional[int] = None,
    max_users_per_item: Optional[int] = None,
    seed: int = 0,
    progress: bool = False,
    max_items_per_user: Optional[int] = None,
) -> sp.csr_matrix:
    """Item-item SWING of a ``users x items`` sparse matrix: float64 CSR ``items x items``.

    ``alpha >= 0`` smooths ``1 / (alpha + |I_u & I_v|)``; ``topk`` keeps the k best per row
    (ties to the lower column; breaks symmetry). ``max_users_per_item`` (and, optionally,
    ``max_items_per_user``) first sample the graph (:func:`sample_graph`, seeded by ``seed``);
    SWING is then exact on the sampled graph, with weights from the full degrees. ``None`` =
    exact SWING. ``progress`` shows a tqdm bar. See the module docstring.
    """
    return _similarity(matrix, "items", alpha, topk, max_users_per_item, seed, progress, max_items_per_user)


def user_similarity(
    matrix,
    alpha: float = 1.0,
    topk: Optional[int] = None,
    max_users_per_item: Optional[int] = None,
    seed: int = 0,
    progress: bool = False,
    max_items_per_user: Optional[int] = None,
) -> sp.csr_matrix:
    """User-user SWING of a ``users x items`` matrix: float64 CSR ``users x users``.

    Without caps this is exactly ``item_similarity(matrix.T)``. The caps keep their meaning
    on ``matrix`` (users per item, items per user), so both sides use the same sampled graph;
    ``max_users_per_item`` bounds the cost here too (it caps the connectors' degree).
    """
    return _similarity(matrix, "users", alpha, topk, max_users_per_item, seed, progress, max_items_per_user)
