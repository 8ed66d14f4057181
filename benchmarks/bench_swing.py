"""Benchmark of recbole_dlrrec.swing.kernels.item_similarity.

1. Speed-up over a straightforward Python implementation (per item, loop over the pairs of its
   users, intersect their item sets) on a power-law graph of 30k interactions, exact SWING.
   When the Python loop would take longer than --naive-budget seconds it runs on a random
   subset of items and its time is extrapolated linearly in the number of user pairs those
   items hold (the loop's work is one set intersection per pair); the output says so. The rows
   it did compute are checked against the fast result.
2. 1M interactions (100k users x 20k items, Zipf-like item popularity and user activity),
   max_users_per_item=1000, topk=50: wall time, CPU use (process CPU time / wall time; ~N on N
   busy cores), peak RSS and the RSS growth during the call, against the size a dense
   items x items float64 matrix would have needed. Also user-user SWING on the same graph
   with both caps (users per item and items per user) at 1000, for information.
The machine may be shared: the 1-minute load average before and after is printed.

Prints a table and, last, one JSON line. ``--quick`` runs a tiny smoke version (for CI).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import scipy.sparse as sp

try:
    import recbole_dlrrec  # noqa: F401  (only to find it; importing it changes nothing)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402

from recbole_dlrrec.swing.graph import binarize, connector_weights  # noqa: E402
from recbole_dlrrec.swing.kernels import item_similarity, user_similarity  # noqa: E402


def power_law_graph(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    item_exponent: float = 1.0,
    user_exponent: float = 0.8,
) -> sp.csr_matrix:
    """``n_users x n_items`` binary CSR with exactly ``n_interactions`` distinct edges.

    Item popularity and user activity follow Zipf-like laws (weight ``rank ** -exponent``),
    the ranks shuffled over the ids; edges are drawn independently and de-duplicated.
    """
    rng = np.random.default_rng(seed)
    item_p = rng.permutation(np.arange(1, n_items + 1) ** -item_exponent)
    user_p = rng.permutation(np.arange(1, n_users + 1) ** -user_exponent)
    item_p /= item_p.sum()
    user_p /= user_p.sum()
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n_interactions:
        draw = int((n_interactions - keys.size) * 1.3) + 1000
        users = rng.choice(n_users, size=draw, p=user_p)
        items = rng.choice(n_items, size=draw, p=item_p)
        fresh = users.astype(np.int64) * n_items + items
        _, first = np.unique(np.concatenate([keys, fresh]), return_index=True)
        keys = np.concatenate([keys, fresh])[np.sort(first)]
    keys = keys[:n_interactions]
    users, items = np.divmod(keys, n_items)
    return binarize(sp.csr_matrix((np.ones(keys.size), (users, items)), shape=(n_users, n_items)))


def naive_rows(graph: sp.csr_matrix, items, alpha: float = 1.0) -> dict:
    """The straightforward loop: for each item, each pair of its users, intersect item sets."""
    csc = graph.tocsc()
    items_of = [set(graph.indices[graph.indptr[u] : graph.indptr[u + 1]].tolist()) for u in range(graph.shape[0])]
    weight = connector_weights(graph).tolist()
    rows = {}
    for i in items:
        users = csc.indices[csc.indptr[i] : csc.indptr[i + 1]].tolist()
        acc = {}
        for a, u in enumerate(users):
            items_u = items_of[u]
            for v in users[a + 1 :]:
                common = items_u & items_of[v]
                term = 2.0 * weight[u] * weight[v] / (alpha + len(common))
                for j in common:
                    if j != i:
                        acc[j] = acc.get(j, 0.0) + term
        rows[int(i)] = acc
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the high-water mark
        return peak_rss_mb()


def cpu_seconds() -> float:
    return time.process_time()  # all threads of the process, fine-grained clock


def timed(fn, repeats: int = 1):
    best, result, cpu = float("inf"), None, 0.0
    for _ in range(repeats):
        cpu0, start = cpu_seconds(), time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, cpu = elapsed, cpu_seconds() - cpu0
    return best, cpu, result


def bench_speedup(n_users, n_items, n_interactions, budget, seed=0):
    graph = power_law_graph(n_users, n_items, n_interactions, seed=seed)
    fast_s, fast_cpu, fast = timed(lambda: item_similarity(graph), repeats=3)

    degree = np.diff(graph.tocsc().indptr).astype(np.float64)
    pairs = degree * (degree - 1) / 2
    order = np.random.default_rng(seed).permutation(graph.shape[1])
    done, naive_s, rows = [], 0.0, {}
    start, cpu0 = time.perf_counter(), cpu_seconds()
    for chunk in np.array_split(order, 50):  # stop early once over budget
        rows.update(naive_rows(graph, chunk))
        done.extend(chunk.tolist())
        naive_s = time.perf_counter() - start
        if naive_s > budget and len(done) < graph.shape[1]:
            break
    naive_cpu = cpu_seconds() - cpu0
    covered = pairs[done].sum() / max(pairs.sum(), 1.0)
    extrapolated = len(done) < graph.shape[1]
    naive_total = naive_s / covered if extrapolated else naive_s
    naive_cpu_total = naive_cpu / covered if extrapolated else naive_cpu

    max_diff = 0.0
    for i, acc in rows.items():
        row = fast.getrow(i)
        mine = dict(zip(row.indices.tolist(), row.data.tolist()))
        if set(mine) != set(acc):
            raise AssertionError(f"row {i}: fast and naive differ in their non-zeros")
        for j, value in acc.items():
            max_diff = max(max_diff, abs(value - mine[j]) / value)
    return {
        "interactions": int(graph.nnz),
        "users": n_users,
        "items": n_items,
        "max_item_degree": int(degree.max()),
        "user_pairs": float(pairs.sum()),
        "fast_s": fast_s,
        "naive_s": naive_total,
        "naive_measured_s": naive_s,
        "naive_extrapolated": extrapolated,
        "naive_items_run": len(done),
        "naive_pair_fraction": float(covered),
        "speedup": naive_total / fast_s,
        "fast_cpu_s": fast_cpu,
        "naive_cpu_s": naive_cpu_total,
        "speedup_cpu_time": naive_cpu_total / max(fast_cpu, 1e-9),
        "max_rel_diff_vs_naive": max_diff,
    }


def bench_large(n_users, n_items, n_interactions, cap, topk, seed=0):
    graph = power_law_graph(n_users, n_items, n_interactions, seed=seed)
    rss_before = current_rss_mb()
    wall, cpu, result = timed(lambda: item_similarity(graph, max_users_per_item=cap, topk=topk, seed=seed))
    user_wall, user_cpu, users = timed(
        lambda: user_similarity(graph, max_users_per_item=cap, max_items_per_user=cap, topk=topk, seed=seed)
    )
    degree = np.diff(graph.tocsc().indptr)
    activity = np.diff(graph.indptr)
    return {
        "user_side_wall_s": user_wall,
        "user_side_cpu_s": user_cpu,
        "user_side_output_nnz": int(users.nnz),
        "interactions": int(graph.nnz),
        "users": n_users,
        "items": n_items,
        "max_item_degree": int(degree.max()),
        "items_over_cap": int((degree > cap).sum()),
        "max_user_activity": int(activity.max()),
        "max_users_per_item": cap,
        "topk": topk,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_utilisation": cpu / wall,
        "threads": numba.get_num_threads(),
        "rss_mb_before": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "extra_rss_mb_upper_bound": max(0.0, peak_rss_mb() - rss_before),
        "dense_items_x_items_mb": n_items * n_items * 8 / 2**20,
        "output_nnz": int(result.nnz),
        "items_with_neighbours": int((np.diff(result.indptr) > 0).sum()),
    }


def main(argv=None) -> dict:
    from recbole_dlrrec import patches

    patches.apply()  # RecBole fixes, OMP_WAIT_POLICY and malloc settings, as every CLI (patches.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (CI)")
    parser.add_argument(
        "--naive-budget",
        type=float,
        default=None,
        help="seconds the Python loop may run before extrapolating (default 60, --quick: 2)",
    )
    args = parser.parse_args(argv)
    budget = args.naive_budget if args.naive_budget is not None else (2.0 if args.quick else 60.0)
    if args.quick:
        speed_graph, large_graph = (600, 200, 3000), (2000, 500, 10_000)
    else:
        speed_graph, large_graph = (3000, 1000, 30_000), (100_000, 20_000, 1_000_000)

    load_before = os.getloadavg()[0]
    item_similarity(sp.csr_matrix(np.ones((3, 3))))  # load / compile the numba kernels first
    speed = bench_speedup(*speed_graph, budget=budget)
    large = bench_large(*large_graph, cap=1000, topk=50)

    print(
        f"SWING benchmark ({'quick' if args.quick else 'full'}), numba threads "
        f"{numba.get_num_threads()}, {os.cpu_count()} CPUs visible"
    )
    print(f"{'case':<46}{'value':>18}")
    lines = [
        (
            f"speed graph {speed['users']}u x {speed['items']}i, {speed['interactions']} inter",
            f"{speed['user_pairs']:.3g} pairs",
        ),
        ("  fast item_similarity (exact, best of 3)", f"{speed['fast_s']:.4f} s"),
        (
            "  naive Python loop" + (" (EXTRAPOLATED)" if speed["naive_extrapolated"] else ""),
            f"{speed['naive_s']:.2f} s",
        ),
        ("    measured on items / pair share", f"{speed['naive_items_run']} / {speed['naive_pair_fraction']:.1%}"),
        ("  speed-up, wall time (target >= 50x)", f"{speed['speedup']:.0f}x"),
        ("  speed-up, CPU time (all threads)", f"{speed['speedup_cpu_time']:.0f}x"),
        ("  max relative difference vs naive", f"{speed['max_rel_diff_vs_naive']:.1e}"),
        (
            f"large graph {large['users']}u x {large['items']}i, {large['interactions']} inter",
            f"max deg {large['max_item_degree']}",
        ),
        (
            f"  cap {large['max_users_per_item']} ({large['items_over_cap']} items over), "
            f"topk {large['topk']}: wall (target < 60 s)",
            f"{large['wall_s']:.2f} s",
        ),
        ("  CPU time / wall time", f"{large['cpu_utilisation']:.2f}"),
        ("  peak RSS of the process", f"{large['peak_rss_mb']:.0f} MB"),
        ("  RSS growth during the call (upper bound)", f"{large['extra_rss_mb_upper_bound']:.0f} MB"),
        ("  a dense items x items float64 would need", f"{large['dense_items_x_items_mb']:.0f} MB"),
        ("  output nnz / items with neighbours", f"{large['output_nnz']} / {large['items_with_neighbours']}"),
        (
            f"  user-user, caps {large['max_users_per_item']} users/item and items/user: wall",
            f"{large['user_side_wall_s']:.2f} s",
        ),
        ("  user-user CPU time / wall time", f"{large['user_side_cpu_s'] / large['user_side_wall_s']:.2f}"),
        ("load average (1 min) before / after", f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"),
    ]
    for name, value in lines:
        print(f"{name:<46}{value:>18}" if len(name) <= 46 else f"{name}\n{'':<46}{value:>18}")
    if speed["naive_extrapolated"]:
        print(
            f"note: the naive loop ran {speed['naive_measured_s']:.1f} s on a random subset of "
            f"items holding {speed['naive_pair_fraction']:.1%} of the user pairs; its total is "
            "extrapolated linearly in user pairs."
        )
    no_dense = large["extra_rss_mb_upper_bound"] < large["dense_items_x_items_mb"]
    report = {
        "quick": args.quick,
        "speed": speed,
        "large": large,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "targets": {
            "speedup_ge_50x": speed["speedup"] >= 50,
            "large_wall_lt_60s": large["wall_s"] < 60,
            "rss_growth_below_dense_size": no_dense,
        },
    }
    print(json.dumps(report, sort_keys=True))
    return report


if __name__ == "__main__":
    main()
