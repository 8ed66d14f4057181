"""The cluster bootstrap (against brute force), one resample shared by every seed, Holm, the sign
test, the per-row cell files and the board's choice of resampling unit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from recbole_dlrrec.experiments import board_significance as bs
from recbole_dlrrec.experiments import cell_rows
from recbole_dlrrec.experiments import significance as sig


def _naive_auc(labels, scores) -> float:
    """AUC by comparing every positive with every negative (ties 1/2); nan without both classes."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return float("nan")
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


# Two seeds over the same three users (ids 7, 3, 9), with different rows per seed, as a random split gives.
TINY = [
    (
        np.array([1, 0, 1, 0, 1, 0, 0]),
        np.array([0.9, 0.2, 0.6, 0.6, 0.4, 0.5, 0.1]),
        np.array([0.7, 0.3, 0.2, 0.6, 0.8, 0.1, 0.4]),
        np.array([7, 7, 3, 3, 3, 9, 9]),
    ),
    (
        np.array([0, 1, 1, 0, 1]),
        np.array([0.3, 0.8, 0.4, 0.5, 0.7]),
        np.array([0.6, 0.5, 0.9, 0.5, 0.2]),
        np.array([9, 3, 7, 7, 9]),
    ),
]


def _brute_force(groups, draw):
    """Mean over seeds of the AUC difference when the drawn clusters' rows are repeated as drawn."""
    universe = sorted({int(c) for g in groups for c in g[3]})
    drawn = [universe[i] for i in draw]
    diffs = []
    for labels, a, b, clusters in groups:
        rows = [r for cluster in drawn for r in range(len(labels)) if clusters[r] == cluster]
        diffs.append(_naive_auc(labels[rows], a[rows]) - _naive_auc(labels[rows], b[rows]))
    return float(np.mean(diffs))


def test_cluster_bootstrap_matches_brute_force_on_every_draw():
    seeds, sizes, n_rows = sig._seeds(TINY)
    assert (sizes, n_rows) == ([3], 12)
    draws = np.array(list(itertools.product(range(3), repeat=3)))  # all 27 equally likely ordered draws
    vectorised = sig.replicate_differences(seeds, draws)
    reference = np.array([_brute_force(TINY, d) for d in draws])
    assert np.array_equal(np.isnan(vectorised), np.isnan(reference))
    assert np.allclose(vectorised[~np.isnan(reference)], reference[~np.isnan(reference)], atol=1e-12)


def test_monte_carlo_bootstrap_follows_the_exact_bootstrap_distribution():
    draws = np.array(list(itertools.product(range(3), repeat=3)))
    exact = np.array([_brute_force(TINY, d) for d in draws])
    exact = exact[np.isfinite(exact)]
    result = sig.bootstrap_auc_difference(TINY, n_boot=20000, seed=3)
    assert result.n_clusters == 3 and result.n_rows == 12
    assert result.diff == pytest.approx(np.mean([_naive_auc(g[0], g[1]) - _naive_auc(g[0], g[2]) for g in TINY]))
    seeds, _, _ = sig._seeds(TINY)
    replicates = sig.replicate_differences(seeds, np.random.default_rng(3).integers(0, 3, size=(20000, 3)))
    replicates = replicates[np.isfinite(replicates)]
    for value in np.unique(exact):  # the replicate CDF at every atom of the exact distribution
        assert np.mean(replicates <= value + 1e-12) == pytest.approx(np.mean(exact <= value + 1e-12), abs=0.02)
    # The interval's ends are atoms of the exact distribution: its 2.5% and 97.5% quantiles.
    low, high = np.quantile(exact, [0.025, 0.975], method="inverted_cdf")
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


# Two cold draws, two seeds each. Draw "d1" holds out items 7 and 3, draw "d2" items 7 and 5: item 7
# of d1 and item 7 of d2 are different clusters (different splits, different trained models).
DRAWS = [
    ("d1", np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.2, 0.3, 0.6, 0.5]), np.array([0.4, 0.3, 0.8, 0.2, 0.6]),
     np.array([7, 7, 3, 3, 3])),
    ("d1", np.array([1, 0, 1, 0, 1]), np.array([0.7, 0.1, 0.5, 0.4, 0.2]), np.array([0.6, 0.6, 0.3, 0.5, 0.9]),
     np.array([7, 7, 3, 3, 3])),
    ("d2", np.array([0, 1, 1, 0, 0, 1]), np.array([0.2, 0.8, 0.3, 0.4, 0.9, 0.6]),
     np.array([0.5, 0.4, 0.7, 0.1, 0.3, 0.6]), np.array([5, 5, 7, 7, 5, 7])),
    ("d2", np.array([0, 1, 1, 0, 0, 1]), np.array([0.1, 0.6, 0.7, 0.3, 0.2, 0.5]),
     np.array([0.3, 0.9, 0.2, 0.2, 0.8, 0.4]), np.array([5, 5, 7, 7, 5, 7])),
]  # fmt: skip


def _brute_force_strata(groups, picks):
    """Mean over every (draw, seed) group of the AUC difference when each draw's rows are those of
    the items `picks[draw]` names, repeated as drawn."""
    diffs = []
    for draw, labels, a, b, clusters in groups:
        rows = [r for item in picks[draw] for r in range(len(labels)) if clusters[r] == item]
        diffs.append(_naive_auc(labels[rows], a[rows]) - _naive_auc(labels[rows], b[rows]))
    return float(np.mean(diffs))


def test_stratified_bootstrap_matches_brute_force_over_draws():
    """Items are resampled within each draw (2 of d1's 2 items, 2 of d2's 2): all 16 equally
    likely replicates against the brute-force mean over draw x seed groups."""
    seeds, sizes, n_rows = sig._seeds([g[1:] for g in DRAWS], strata=[g[0] for g in DRAWS])
    assert (sizes, n_rows) == ([2, 2], 22)  # item 7 counts once per draw
    items = {"d1": [3, 7], "d2": [5, 7]}  # cluster order within a draw: sorted ids
    replicates, reference = [], []
    for first in itertools.product(range(2), repeat=2):
        for second in itertools.product(range(2), repeat=2):
            replicates.append([*first, *(2 + i for i in second)])  # d2's clusters follow d1's
            picks = {"d1": [items["d1"][i] for i in first], "d2": [items["d2"][i] for i in second]}
            reference.append(_brute_force_strata(DRAWS, picks))
    vectorised = sig.replicate_differences(seeds, np.array(replicates))
    reference = np.array(reference)
    assert np.array_equal(np.isnan(vectorised), np.isnan(reference))
    assert np.allclose(vectorised[~np.isnan(reference)], reference[~np.isnan(reference)], atol=1e-12)
    # The Monte Carlo draws stay inside each draw: d1's columns index d1's items only.
    draws = sig.draw_clusters(np.random.default_rng(0), sizes, 500)
    assert draws[:, :2].max() == 1 and draws[:, 2:].min() == 2 and set(np.unique(draws)) == {0, 1, 2, 3}
    result = sig.bootstrap_auc_difference([g[1:] for g in DRAWS], n_boot=4000, seed=1, strata=[g[0] for g in DRAWS])
    exact = reference[np.isfinite(reference)]
    assert result.n_clusters == 4 and result.ci_low >= exact.min() - 1e-12 and result.ci_high <= exact.max() + 1e-12
    assert result.diff == pytest.approx(_brute_force_strata(DRAWS, {"d1": [3, 7], "d2": [5, 7]}))
    # Pooling the ids across draws instead would make 3 clusters (3, 5, 7) and mix the draws.
    assert sig._seeds([g[1:] for g in DRAWS])[1] == [3]
    with pytest.raises(sig.SignificanceInputError, match="strata"):
        sig.bootstrap_auc_difference([g[1:] for g in DRAWS], strata=["d1"])


def test_one_stratum_gives_the_unstratified_numbers():
    plain = sig.bootstrap_auc_difference(TINY, n_boot=300, seed=4)
    one = sig.bootstrap_auc_difference(TINY, n_boot=300, seed=4, strata=["d", "d"])
    assert (one.ci_low, one.ci_high, one.p, one.n_clusters) == (plain.ci_low, plain.ci_high, plain.p, 3)


def test_one_resample_is_shared_by_every_seed():
    """Two seeds with identical rows: a shared draw gives each seed the same replicate, so the
    CI of the mean is the CI of one seed (independent draws per seed would narrow it)."""
    rng = np.random.default_rng(0)
    labels = (rng.random(300) < 0.5).astype(float)
    a, b = rng.normal(size=300) + labels, rng.normal(size=300) + 0.8 * labels
    users = rng.integers(0, 40, size=300)
    one = sig.bootstrap_auc_difference([(labels, a, b, users)], n_boot=400, seed=5)
    two = sig.bootstrap_auc_difference([(labels, a, b, users)] * 2, n_boot=400, seed=5)
    assert (two.ci_low, two.ci_high, two.p) == (one.ci_low, one.ci_high, one.p)
    assert two.n_rows == 600 and two.n_clusters == one.n_clusters == len(np.unique(users))
    rows_one = sig.bootstrap_auc_difference([(labels, a, b)], n_boot=400, seed=5)
    rows_two = sig.bootstrap_auc_difference([(labels, a, b)] * 2, n_boot=400, seed=5)
    assert (rows_two.ci_low, rows_two.ci_high) == (rows_one.ci_low, rows_one.ci_high)


def test_clustered_rows_widen_the_interval():
    """A model whose scores carry a per-user offset (good for some users' rows, bad for others'):
    rows within a user are not independent, and only the user bootstrap sees it."""
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(20), 60)
    labels = (rng.random(users.size) < 0.5).astype(float)
    base = rng.normal(size=users.size) + labels
    offset = rng.normal(scale=1.0, size=20)[users] * (labels - 0.5)
    model = base + offset
    by_rows = sig.bootstrap_auc_difference([(labels, model, base)], n_boot=500, seed=2)
    by_users = sig.bootstrap_auc_difference([(labels, model, base, users)], n_boot=500, seed=2)
    assert by_users.ci_high - by_users.ci_low > 1.5 * (by_rows.ci_high - by_rows.ci_low)


def test_bootstrap_input_checks():
    labels, a = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.3, 0.7])
    with pytest.raises(sig.SignificanceInputError, match="cluster ids"):
        sig.bootstrap_auc_difference([(labels, a, a, np.arange(3))])
    with pytest.raises(sig.SignificanceInputError, match="different kinds"):
        sig.bootstrap_auc_difference([(labels, a, a, np.arange(4)), (labels, a, a, np.array(list("abcd")))])


def test_bootstrap_p_is_two_sided_and_never_zero():
    assert sig.bootstrap_p(np.full(99, 0.01)) == pytest.approx(0.02)
    assert sig.bootstrap_p(np.r_[np.full(49, -1.0), np.full(50, 1.0)]) == 1.0
    assert sig.bootstrap_p(np.r_[np.full(9, -1.0), np.full(90, 1.0)]) == pytest.approx(0.2)


def test_holm_matches_hand_computed_values():
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> 0.06 (monotone)
    assert sig.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = sig.holm([0.02, float("nan"), 0.5])  # nan is not a comparison: m = 2
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)
    assert sig.holm([0.6, 0.7]) == [1.0, 1.0]
    assert sig.holm([]) == []


def test_sign_test_exact_values():
    from scipy import stats

    assert sig.sign_test([5, 5, 5, 5, 5], [1, 1, 1, 1, 1]).p == pytest.approx(0.0625)  # 2 / 2**5
    four = sig.sign_test([1, 1, 1, 1, 0], [0, 0, 0, 0, 1])
    assert (four.wins, four.losses, four.p) == (4, 1, pytest.approx(0.375))  # 2 * 6 / 32
    assert sig.sign_test([1, 1, 1, 0, 0], [0, 0, 0, 1, 1]).p == 1.0
    tied = sig.sign_test([1, 1, 1, 0.5], [0, 0, 0, 0.5])  # the tie is dropped: 3 of 3
    assert (tied.wins, tied.losses, tied.p) == (3, 0, pytest.approx(0.25))
    assert tied.p == pytest.approx(stats.binomtest(3, 3).pvalue)
    assert math.isnan(sig.sign_test([1.0], [1.0]).p)


def _comparison(p_boot, diff=0.01, model="DLRREC"):
    c = sig.compare(model, "FM", [0.8, 0.81], [0.79, 0.8], [TINY[0][:3]], n_boot=50)
    c.boot_p, c.diff = p_boot, diff
    return c


def test_holm_decides_significance_over_a_board():
    comparisons = [_comparison(0.01), _comparison(0.04, model="DLRREC-noCL"), _comparison(0.03, model="DLRREC-V0")]
    assert bs.holm_over_board(comparisons[:2], [comparisons[2], {"model": "x", "verdict": "no rows"}]) == 3
    assert [c.boot_p_holm for c in comparisons] == pytest.approx([0.03, 0.06, 0.06])
    assert [c.significant for c in comparisons] == [True, False, False]
    assert "Holm-adjusted bootstrap p < 0.05" in comparisons[0].verdict and "better" in comparisons[0].verdict
    # The same pair in two tables (the best baseline is DLRM) is one comparison of the family.
    twice, other = _comparison(0.02), _comparison(0.04)
    other.baseline = "DLRM"
    copy = _comparison(0.02)
    assert bs.holm_over_board([twice, other], [copy]) == 2
    assert twice.boot_p_holm == copy.boot_p_holm == pytest.approx(0.04) and copy.significant


# -- the board: per-row files and the resampling unit ---------------------------------------------
def _rows(labels, scores, users=None, items=None):
    if users is None:
        return cell_rows.CellRows(np.asarray(labels, float), np.asarray(scores, float))
    n = len(labels)
    return cell_rows.CellRows(
        np.asarray(labels, float),
        np.asarray(scores, float),
        np.asarray(users),
        np.asarray(items),
        np.ones(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
    )


def test_cell_rows_round_trip_and_old_files_stay_readable(tmp_path):
    new = _rows([1, 0, 1], [0.9, 0.1, 0.5], users=[2**40, 3, 5], items=[1, 1, 4])
    cell_rows.save(str(tmp_path / "new.npy"), new)
    back = cell_rows.load(str(tmp_path / "new.npy"))
    assert back.has_ids and back.user_ids.tolist() == [2**40, 3, 5] and back.item_train_rows.tolist() == [0, 0, 0]
    np.save(tmp_path / "old.npy", np.stack([[1, 0], [0.7, 0.2]]).astype(np.float32))  # a cell from before ids
    old = cell_rows.load(str(tmp_path / "old.npy"))
    labels, scores = old
    assert not old.has_ids and labels.tolist() == [1, 0] and scores.tolist() == pytest.approx([0.7, 0.2])
    np.save(tmp_path / "bad.npy", np.zeros((3, 4)))
    with pytest.raises(cell_rows.CellRowsError, match="bad.npy"):
        cell_rows.load(str(tmp_path / "bad.npy"))
    partial = cell_rows.from_recorder(
        [1, 0], [0.5, 0.4], {"user_id": [1, 2], "item_id": [1], "user_train_rows": [0, 0], "item_train_rows": [0, 0]}
    )
    assert not partial.has_ids  # ids that do not cover the rows are not kept


def test_board_unit_is_items_on_cold_boards_users_elsewhere_and_rows_without_ids():
    assert bs.resampling_unit("ml-100k-cold") == bs.resampling_unit("ml-100k-cold-d2021") == sig.UNIT_ITEMS
    assert bs.resampling_unit("google-local-hi-ms") == sig.UNIT_USERS
    a = _rows([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], users=[1, 1, 2, 2], items=[5, 6, 5, 6])
    b = _rows([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.3], users=[1, 1, 2, 2], items=[5, 6, 5, 6])
    groups, unit = bs.paired_groups([(a, b)], sig.UNIT_ITEMS)
    assert unit == sig.UNIT_ITEMS and groups[0][3].tolist() == [5, 6, 5, 6]
    groups, unit = bs.paired_groups([(a, b)], sig.UNIT_USERS)
    assert groups[0][3].tolist() == [1, 1, 2, 2]
    old = _rows([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.3])
    groups, unit = bs.paired_groups([(a, b), (a, old)], sig.UNIT_USERS)
    assert unit == "rows (cells without ids)" and all(len(g) == 3 for g in groups)
    other = _rows([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.3], users=[1, 2, 2, 2], items=[5, 6, 5, 6])
    assert bs.paired_groups([(a, other)], sig.UNIT_USERS)[1].startswith("rows (the two models")


def test_significance_table_names_unit_seed_tests_and_holm():
    c = sig.compare(
        "DLRREC", "FM", [0.8, 0.81, 0.82], [0.79, 0.8, 0.83], [TINY[0], TINY[1]], n_boot=100, unit=sig.UNIT_USERS
    )
    bs.holm_over_board([c])
    text = bs.significance_markdown(
        [c, {"model": "DLRREC-noCL", "baseline": "FM", "verdict": "no seed where both ran"}]
    )
    assert "(users: 3)" in text and "2/1 of 3" in text and "paired t over seeds" in text and "(Holm)" in text
    assert "| DLRREC-noCL | FM |" in text
    lines = bs.method_lines("ml-100k-cold", 7)
    assert any("whole **items**" in line for line in lines) and any("7 comparisons" in line for line in lines)
    csv_text = bs.significance_csv([c])
    assert csv_text.splitlines()[0].split(",") == list(bs.CSV_KEYS) and ",users,3," in csv_text


# -- a whole board, from cells a fake runner records ----------------------------------------------
def _fake_runner(model, dataset, config_dict, epoch_callbacks=(), **kwargs):
    """Ten items x 40 rows per seed; DLRREC scores better than FM; the recorder holds ids."""
    from types import SimpleNamespace

    rng = np.random.default_rng(config_dict["seed"])
    items = np.repeat(np.arange(10), 40)
    users = rng.integers(0, 30, size=items.size)
    labels = (rng.random(items.size) < 0.5).astype(np.float32)
    noise = np.random.default_rng(config_dict["seed"] + (0 if model == "FM" else 1)).normal(size=items.size)
    scores = (1 / (1 + np.exp(-(noise + (2.0 if model != "FM" else 0.3) * (labels - 0.5))))).astype(np.float32)
    recorder = SimpleNamespace(
        labels=labels,
        scores=scores,
        row_ids={
            "user_id": users,
            "item_id": items,
            "user_train_rows": users % 3,
            "item_train_rows": np.zeros_like(items),
        },
    )
    for callback in epoch_callbacks:
        callback(0, 0.5, SimpleNamespace(evaluator=recorder))
    value = sig.auc(labels, scores)
    return {
        "test_result": {"auc": value},
        "valid_result": {"auc": value},
        "best_valid_score": value,
        "best_epoch": 0,
        "timings": {"seconds_per_epoch": 0.1},
    }


@pytest.mark.slow
def test_cold_board_resamples_items_and_states_holm(tmp_path):
    from recbole_dlrrec.experiments import board_cells, board_report

    board = board_cells.Leaderboard("toy-cold", results_dir=str(tmp_path), runner=_fake_runner, log=lambda m: None)
    seeds = [2020, 2021, 2022]
    board.run_cells(board_cells.cells(["DLRREC", "FM"], seeds))
    rows = board.test_scores(board_cells.CellSpec("FM", "FM", 2020))
    assert rows.has_ids and rows.item_ids.tolist() == np.repeat(np.arange(10), 40).tolist()
    paths = board_report.write_leaderboard(board, ["DLRREC", "FM"], seeds, n_boot=200)
    text = open(paths["significance_md"]).read()
    assert "whole **items**" in text and "Holm correction over this board's 1 comparisons" in text
    assert "(items: 10)" in text and "3/0 of 3, p=0.250" in text
    board_md = open(paths["md"]).read()
    assert "(items: 10)" in board_md and "## Per-user, calibration and segment metrics" in board_md
    assert "| DLRREC | " in board_md.split("## Per-user, calibration and segment metrics")[1]


@pytest.mark.slow
def test_cold_draws_pool_into_one_report_resampling_items_within_each_draw(tmp_path):
    from recbole_dlrrec.experiments import board_cells, cold_draws

    seeds = [2020, 2021]
    boards = []
    for name in ("toy-cold-d2020", "toy-cold-d2021"):
        board = board_cells.Leaderboard(name, results_dir=str(tmp_path), runner=_fake_runner, log=lambda m: None)
        board.run_cells(board_cells.cells(["DLRREC", "FM"], seeds))
        boards.append(board)
    out = str(tmp_path / "toy-cold")
    paths = cold_draws.write_pooled_report(boards, ["DLRREC", "FM"], seeds, out, n_boot=200)
    text = open(paths["significance_md"]).read()
    # Both draws use item ids 0..9: resampled within each draw, that is 20 clusters, not 10.
    assert "(items: 20)" in text and "4/0 of 4" in text and "Pooled over 2 cold draws" in text
    board_md = open(paths["md"]).read()
    assert "## Test AUC per draw" in board_md and "| toy-cold-d2020 | toy-cold-d2021 |" in board_md
    assert board_md.split("## Test AUC per draw")[0].count("| 4/4 |") == 2  # runs: 2 draws x 2 seeds
    # The same numbers as the bootstrap called directly on the draw x seed groups, stratified by draw.
    groups, strata = [], []
    for board in boards:
        for seed in seeds:
            a = board.test_scores(board_cells.CellSpec("DLRREC", "DLRREC", seed))
            b = board.test_scores(board_cells.CellSpec("FM", "FM", seed))
            groups.append((a.labels, a.scores, b.scores, a.item_ids))
            strata.append(board.dataset)
    direct = sig.bootstrap_auc_difference(groups, n_boot=200, strata=strata)
    row = next(line for line in text.splitlines() if line.startswith("| DLRREC |"))
    assert f"[{direct.ci_low:+.4f}, {direct.ci_high:+.4f}]" in row
    with pytest.raises(cold_draws.ColdDrawsError, match="cold_draws"):
        cold_draws.draw_seeds(0)
    assert cold_draws.draw_seeds(3) == [2020, 2021, 2022]
