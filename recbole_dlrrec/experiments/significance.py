"""Is a model's AUC gain over a baseline real? Three tests, on the leaderboard's own cells.

1. Paired bootstrap over clusters of test rows, one resample per replicate shared by every seed.
   The unit is what the rows cluster on: whole users on a warm board (a user's rows share that
   user's taste), whole items on a cold board (every test row sits on one of a few held-out items),
   single rows where a cell stored no ids. Each replicate draws K clusters with replacement from
   the K clusters seen in any seed's test rows; every seed weights its rows by how often their
   cluster was drawn (the same draw for every seed, and for model A and B, so both pairings are
   kept), computes AUC(A) - AUC(B) and the replicate is the mean over seeds. The percentile
   interval of those replicates is the confidence interval of the mean AUC difference; the
   bootstrap p-value is the two-sided share of replicates on the other side of 0.
   Drawing each seed's rows afresh would count the rows of five seeds as five times the test set.
   With `strata` (a label per group: the cold draw it was tested on), clusters are resampled
   within each stratum: a replicate draws K_s clusters of stratum s from its own K_s, so every
   draw keeps its size, and an id seen in two strata (one item held out by two draws) is two
   clusters. The replicate is still the mean over every group (draw x seed).
2. Paired t-test over seeds (scipy.stats.ttest_rel): seed s trains both models on the same split,
   so the per-seed test AUCs form pairs; it covers training randomness, with little power at a
   handful of seeds.
3. Exact two-sided sign test over seeds: how many seeds the model beats the baseline on, against
   a fair coin (ties dropped).

Over a board's comparisons the p-values of each test are Holm-adjusted (`holm`: step-down,
monotone), and a comparison is called significant when its Holm-adjusted bootstrap p is below
`ALPHA`.

Resampling is done with per-row weights (how often each row's cluster was drawn), and the AUC of
a weighted sample is computed from one sort of the scores, so 1,000 replicates over 10,000 rows
take well under a second per model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from recbole_dlrrec.errors import InputError

DEFAULT_BOOTSTRAP = 1000  # replicates
DEFAULT_LEVEL = 0.95  # two-sided confidence level
_CHUNK = 100  # replicates evaluated at once (bounds memory at CHUNK x rows doubles)


class SignificanceInputError(InputError, ValueError):
    """Inputs that cannot be compared (mismatched rows or labels, one class only, ...)."""


def _as_arrays(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise SignificanceInputError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if y.size == 0:
        raise SignificanceInputError("no test rows to compare")
    if not np.all((y == 0) | (y == 1)):
        raise SignificanceInputError("labels must be 0 or 1")
    if not np.all(np.isfinite(s)):
        raise SignificanceInputError("scores must be finite")
    return y, s


class _SortedScores:
    """Scores of one model, sorted once, for weighted AUCs under many row weightings."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        order = np.argsort(scores, kind="mergesort")
        sorted_scores = scores[order]
        self.order = order
        self.labels = labels[order]
        # Start of each run of equal scores (ties share the credit 1/2).
        self.starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """AUC for each row of `weights` (R x n, in the caller's row order) -> R values
        (nan where a weighting has no positive or no negative weight)."""
        w = weights[:, self.order]
        pos = np.add.reduceat(w * self.labels, self.starts, axis=1)
        neg = np.add.reduceat(w * (1.0 - self.labels), self.starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        numerator = (pos * (below + 0.5 * neg)).sum(axis=1)
        denominator = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def auc(labels, scores) -> float:
    """ROC AUC with ties counted as 1/2 (the Mann-Whitney statistic)."""
    y, s = _as_arrays(labels, scores)
    if y.min() == y.max():
        raise SignificanceInputError("AUC needs both positive and negative rows")
    return float(_SortedScores(y, s).auc(np.ones((1, y.size)))[0])


UNIT_ROWS = "rows"
UNIT_USERS = "users"
UNIT_ITEMS = "items"
ALPHA = 0.05  # family-wise error rate of a board's Holm-adjusted comparisons


@dataclass
class BootstrapResult:
    diff: float  # mean over seeds of AUC(A) - AUC(B) on the full test rows
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    n_rows: int  # test rows summed over seeds
    share_not_above_zero: float  # fraction of replicates with diff <= 0 (one-sided check)
    n_clusters: int = 0  # clusters the replicates draw from (distinct ids over the seeds' rows)
    p: float = float("nan")  # two-sided bootstrap p-value (`bootstrap_p`)

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 0."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


@dataclass
class _Seed:
    """One seed's rows, sorted once per model, and the cluster index (0..K-1) of each row."""

    a: _SortedScores
    b: _SortedScores
    cluster_index: np.ndarray  # n
    diff: float


def _seeds(groups, strata: Optional[Sequence] = None) -> Tuple[List[_Seed], List[int], int]:
    """Checked seeds, the number of clusters of each stratum (one stratum without `strata`; the
    clusters of stratum s are numbered after those of the strata before it) and the rows summed
    over seeds. A group is (labels, scores_a, scores_b) or (labels, scores_a, scores_b,
    cluster_ids); without cluster ids, the row's position is its cluster, so seeds share draws
    position by position. `strata`: one label per group (module doc)."""
    checked, cluster_ids = [], []
    for group in groups:
        if len(group) not in (3, 4):
            raise SignificanceInputError("a group is (labels, scores_a, scores_b[, cluster_ids])")
        y, a = _as_arrays(group[0], group[1])
        _, b = _as_arrays(group[0], group[2])
        if a.shape != b.shape:
            raise SignificanceInputError(f"models scored different rows ({a.size} vs {b.size})")
        if y.min() == y.max():
            raise SignificanceInputError("a seed's test rows hold only one class; AUC is undefined")
        ids = np.arange(y.size) if len(group) == 3 or group[3] is None else np.asarray(group[3]).ravel()
        if ids.shape != y.shape:
            raise SignificanceInputError(f"cluster ids ({ids.size}) and rows ({y.size}) differ in length")
        checked.append((y, a, b))
        cluster_ids.append(ids)
    if not checked:
        raise SignificanceInputError("no (labels, scores_a, scores_b) groups to bootstrap")
    if len({ids.dtype.kind in "iuf" for ids in cluster_ids}) > 1:
        raise SignificanceInputError("cluster ids of the seeds have different kinds (numbers and text)")
    labels = [0] * len(checked) if strata is None else list(strata)
    if len(labels) != len(checked):
        raise SignificanceInputError(f"strata ({len(labels)}) and groups ({len(checked)}) differ in length")
    indices: List[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(checked)
    sizes: List[int] = []
    for stratum in dict.fromkeys(labels):  # strata in order of first appearance
        members = [i for i, label in enumerate(labels) if label == stratum]
        universe, inverse = np.unique(np.concatenate([cluster_ids[i] for i in members]), return_inverse=True)
        bounds = np.cumsum([0] + [cluster_ids[i].size for i in members])
        for i, start, stop in zip(members, bounds[:-1], bounds[1:]):
            indices[i] = inverse[start:stop] + sum(sizes)
        sizes.append(int(universe.size))
    seeds = []
    for (y, a, b), index in zip(checked, indices):
        sa, sb = _SortedScores(y, a), _SortedScores(y, b)
        full = np.ones((1, y.size))
        seeds.append(_Seed(sa, sb, index, float(sa.auc(full)[0] - sb.auc(full)[0])))
    return seeds, sizes, int(sum(y.size for y, _, _ in checked))


def draw_clusters(rng: np.random.Generator, sizes: Sequence[int], replicates: int) -> np.ndarray:
    """R x K cluster indices, K = sum(sizes): each stratum's K_s clusters drawn with replacement
    from its own (one stratum: R x K draws from all K, as before strata existed)."""
    bounds = np.cumsum([0, *sizes])
    return np.concatenate(
        [rng.integers(start, stop, size=(replicates, stop - start)) for start, stop in zip(bounds[:-1], bounds[1:])],
        axis=1,
    )


def replicate_differences(seeds: Sequence[_Seed], draws: np.ndarray) -> np.ndarray:
    """Mean over seeds of AUC(A) - AUC(B) under each row of `draws` (R x K cluster indices drawn
    with replacement, shared by every seed) -> R values (nan where a seed lost a class)."""
    n_clusters = int(draws.shape[1])
    offsets = (np.arange(draws.shape[0]) * n_clusters)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=draws.shape[0] * n_clusters)
    counts = counts.reshape(draws.shape[0], n_clusters).astype(np.float64)
    total = np.zeros(draws.shape[0])
    for seed in seeds:
        weights = counts[:, seed.cluster_index]  # R x n: each row weighs as often as its cluster was drawn
        total += seed.a.auc(weights) - seed.b.auc(weights)
    return total / len(seeds)


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'no difference': twice the smaller share of replicates at or
    beyond 0 on either side, each counted as (hits + 1) / (R + 1) so that it is never 0."""
    r = np.asarray(replicates, dtype=np.float64)
    below = (np.sum(r <= 0) + 1) / (r.size + 1)
    above = (np.sum(r >= 0) + 1) / (r.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def bootstrap_auc_difference(
    groups: Sequence[Tuple[np.ndarray, ...]],
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    strata: Optional[Sequence] = None,
) -> BootstrapResult:
    """Paired cluster bootstrap CI of the mean (over seeds) AUC difference A - B (module doc).

    Args:
        groups: one (labels, scores_a, scores_b[, cluster_ids]) per seed, each n rows: that seed's
            test rows, the same rows for A and B; cluster_ids (n, e.g. the user of each row) name
            the resampling unit, the same id meaning the same cluster in every seed.
        n_boot: replicates; level: two-sided confidence level; seed: the resampling RNG seed.
        strata: one label per group (its cold draw); clusters are resampled within each stratum.
    """
    if not groups:
        raise SignificanceInputError("no (labels, scores_a, scores_b) groups to bootstrap")
    if int(n_boot) < 10:
        raise SignificanceInputError(f"n_boot must be >= 10, got {n_boot}")
    if not 0 < level < 1:
        raise SignificanceInputError(f"level must be in (0, 1), got {level}")
    seeds, sizes, n_rows = _seeds(groups, strata)
    rng = np.random.default_rng(seed)
    replicates = np.empty(int(n_boot))
    for start in range(0, int(n_boot), _CHUNK):
        size = min(_CHUNK, int(n_boot) - start)
        replicates[start : start + size] = replicate_differences(seeds, draw_clusters(rng, sizes, size))
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        raise SignificanceInputError("every bootstrap replicate lost a class; too few test rows")
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return BootstrapResult(
        diff=float(np.mean([s.diff for s in seeds])),
        ci_low=float(low),
        ci_high=float(high),
        level=float(level),
        n_boot=int(finite.size),
        n_rows=n_rows,
        share_not_above_zero=float(np.mean(finite <= 0)),
        n_clusters=sum(sizes),
        p=bootstrap_p(finite),
    )


@dataclass
class PairedTTest:
    t: float
    p: float
    n: int  # pairs (seeds)
    mean_diff: float


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTTest:
    """Two-sided paired t-test of a - b over seeds. Fewer than 2 pairs: t and p are nan.
    All differences equal: p = 1 when they are 0, else p = 0 (scipy gives nan / warns there)."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise SignificanceInputError(f"paired t-test needs equal lengths, got {x.size} and {y.size}")
    diff = x - y
    n = int(diff.size)
    mean = float(diff.mean()) if n else float("nan")
    if n < 2:
        return PairedTTest(float("nan"), float("nan"), n, mean)
    if np.allclose(diff, diff[0], rtol=0, atol=1e-12):
        if abs(mean) <= 1e-12:
            return PairedTTest(0.0, 1.0, n, mean)
        return PairedTTest(math.copysign(math.inf, mean), 0.0, n, mean)
    result = stats.ttest_rel(x, y)
    return PairedTTest(float(result.statistic), float(result.pvalue), n, mean)


@dataclass
class SignTest:
    wins: int  # seeds where a > b
    losses: int  # seeds where a < b (ties are dropped)
    p: float  # exact two-sided p under a fair coin; nan with no untied seed


def sign_test(a: Sequence[float], b: Sequence[float]) -> SignTest:
    """Exact two-sided sign test of a - b over seeds: p = min(1, 2 P(X <= min(wins, losses)))
    for X ~ Binomial(wins + losses, 1/2)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise SignificanceInputError(f"sign test needs equal lengths, got {x.size} and {y.size}")
    wins, losses = int(np.sum(x > y)), int(np.sum(x < y))
    n = wins + losses
    if n == 0:
        return SignTest(wins, losses, float("nan"))
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return SignTest(wins, losses, float(min(1.0, 2 * tail)))


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of the m finite
    p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)), so adjusted values keep the
    order of the raw ones. nan stays nan and does not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="mergesort")]
    m, running = order.size, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return [float(v) for v in adjusted]


@dataclass
class Comparison:
    """A model against a baseline: the numbers the significance table shows."""

    model: str
    baseline: str
    baseline_valid_auc: float
    model_test_auc: float
    baseline_test_auc: float
    seeds: int
    t: float
    p: float  # paired t-test over seeds
    diff: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    n_rows: int
    significant: bool  # the CI excludes 0; after `apply_holm`: the Holm-adjusted bootstrap p < ALPHA
    verdict: str
    seeds_better: int = 0  # seeds whose test AUC is above the baseline's (the "4 of 5 seeds agree" check)
    unit: str = UNIT_ROWS  # what the bootstrap resampled
    n_clusters: int = 0
    boot_p: float = float("nan")
    sign_p: float = float("nan")
    seeds_worse: int = 0
    boot_p_holm: float = float("nan")
    t_p_holm: float = float("nan")
    sign_p_holm: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def compare(
    model: str,
    baseline: str,
    model_aucs: Sequence[float],
    baseline_aucs: Sequence[float],
    groups: Sequence[Tuple[np.ndarray, ...]],
    baseline_valid_auc: float = float("nan"),
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    unit: str = UNIT_ROWS,
    strata: Optional[Sequence] = None,
) -> Comparison:
    """The bootstrap (over `unit`, named by the groups' cluster ids, within `strata` when given)
    and the seed-level tests for `model` against `baseline` (the AUC pairs: one per seed, or per
    draw x seed). Before `apply_holm`, significance is the unadjusted CI's."""
    ttest = paired_t_test(model_aucs, baseline_aucs)
    signs = sign_test(model_aucs, baseline_aucs)
    boot = bootstrap_auc_difference(groups, n_boot=n_boot, level=level, seed=seed, strata=strata)
    comparison = Comparison(
        model=model,
        baseline=baseline,
        baseline_valid_auc=float(baseline_valid_auc),
        model_test_auc=float(np.mean(model_aucs)),
        baseline_test_auc=float(np.mean(baseline_aucs)),
        seeds=ttest.n,
        t=ttest.t,
        p=ttest.p,
        diff=boot.diff,
        ci_low=boot.ci_low,
        ci_high=boot.ci_high,
        level=boot.level,
        n_boot=boot.n_boot,
        n_rows=boot.n_rows,
        significant=boot.significant,
        verdict="",
        seeds_better=signs.wins,
        seeds_worse=signs.losses,
        unit=unit,
        n_clusters=boot.n_clusters,
        boot_p=boot.p,
        sign_p=signs.p,
    )
    comparison.verdict = _verdict(comparison, "CI")
    return comparison


def _verdict(c: Comparison, by: str) -> str:
    if c.significant:
        return f"{c.model} {'better' if c.diff > 0 else 'worse'} ({by})"
    return f"no significant difference ({by})"


def apply_holm(comparisons: Sequence[Comparison], alpha: float = ALPHA) -> None:
    """Holm-adjust the bootstrap, t-test and sign-test p-values over `comparisons` (a board's
    family) in place; `significant` becomes: Holm-adjusted bootstrap p < alpha."""
    for source, target in (("boot_p", "boot_p_holm"), ("p", "t_p_holm"), ("sign_p", "sign_p_holm")):
        for comparison, value in zip(comparisons, holm([getattr(c, source) for c in comparisons])):
            setattr(comparison, target, value)
    for comparison in comparisons:
        comparison.significant = bool(comparison.boot_p_holm < alpha)
        comparison.verdict = _verdict(
            comparison, f"Holm-adjusted bootstrap p {'<' if comparison.significant else '>='} {alpha:g}"
        )


def select_best_baseline(valid_auc: dict, exclude_prefix: str = "DLRREC") -> Optional[str]:
    """The model with the best mean VALID AUC among names not starting with `exclude_prefix`
    (so DLRREC's own variants are not its baselines). None when there is none."""
    candidates = {
        name: value
        for name, value in valid_auc.items()
        if not name.upper().startswith(exclude_prefix.upper()) and value is not None and np.isfinite(value)
    }
    if not candidates:
        return None
    return max(sorted(candidates), key=lambda name: candidates[name])
