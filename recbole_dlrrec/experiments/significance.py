"""Is a model's AUC gain over a baseline real? Two tests, on the leaderboard's own cells.

1. Paired t-test over seeds (scipy.stats.ttest_rel): seed s trains both models on the same split,
   so the per-seed test AUCs form pairs. With a handful of seeds it has little power; it is reported, not
   relied on alone.
2. Paired bootstrap over test rows: for each replicate, every seed's test rows are resampled
   with replacement (the same resample for both models, so the pairing is kept), the AUC
   difference A - B is computed per seed and averaged over seeds. The percentile interval of
   those replicates is the confidence interval of the mean AUC difference; the gain is called
   significant when the interval excludes 0.

Resampling is done with per-row weights (how often each row was drawn), and the AUC of a
weighted sample is computed from one sort of the scores, so 1,000 replicates over 10,000 rows
take well under a second per model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple

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


@dataclass
class BootstrapResult:
    diff: float  # mean over seeds of AUC(A) - AUC(B) on the full test rows
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    n_rows: int  # test rows summed over seeds
    share_not_above_zero: float  # fraction of replicates with diff <= 0 (one-sided check)

    @property
    def significant(self) -> bool:
        """True when the confidence interval excludes 0."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


def bootstrap_auc_difference(
    groups: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap CI of the mean (over groups) AUC difference A - B.

    Args:
        groups: one (labels, scores_a, scores_b) per seed; each holds that seed's test rows, the
            same rows for A and B.
        n_boot: replicates; level: two-sided confidence level; seed: the resampling RNG seed.
    """
    if not groups:
        raise SignificanceInputError("no (labels, scores_a, scores_b) groups to bootstrap")
    if int(n_boot) < 10:
        raise SignificanceInputError(f"n_boot must be >= 10, got {n_boot}")
    if not 0 < level < 1:
        raise SignificanceInputError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    replicate_diffs = np.zeros(int(n_boot))
    point, n_rows = [], 0
    for labels, scores_a, scores_b in groups:
        y, a = _as_arrays(labels, scores_a)
        _, b = _as_arrays(labels, scores_b)
        if a.shape != b.shape:
            raise SignificanceInputError(f"models scored different rows ({a.size} vs {b.size})")
        if y.min() == y.max():
            raise SignificanceInputError("a seed's test rows hold only one class; AUC is undefined")
        sa, sb = _SortedScores(y, a), _SortedScores(y, b)
        n = y.size
        n_rows += n
        full = np.ones((1, n))
        point.append(float(sa.auc(full)[0] - sb.auc(full)[0]))
        for start in range(0, int(n_boot), _CHUNK):
            size = min(_CHUNK, int(n_boot) - start)
            draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
            weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
            replicate_diffs[start:start + size] += sa.auc(weights) - sb.auc(weights)
    replicate_diffs /= len(groups)
    finite = replicate_diffs[np.isfinite(replicate_diffs)]
    if finite.size == 0:
        raise SignificanceInputError("every bootstrap replicate lost a class; too few test rows")
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return BootstrapResult(
        diff=float(np.mean(point)), ci_low=float(low), ci_high=float(high), level=float(level),
        n_boot=int(finite.size), n_rows=int(n_rows), share_not_above_zero=float(np.mean(finite <= 0)),
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
class Comparison:
    """DLRREC (model) against a baseline: the numbers the significance table shows."""

    model: str
    baseline: str
    baseline_valid_auc: float
    model_test_auc: float
    baseline_test_auc: float
    seeds: int
    t: float
    p: float
    diff: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    n_rows: int
    significant: bool
    verdict: str
    seeds_better: int = 0  # seeds whose test AUC is above the baseline's (the "4 of 5 seeds agree" check)

    def as_dict(self) -> dict:
        return asdict(self)


def compare(
    model: str,
    baseline: str,
    model_aucs: Sequence[float],
    baseline_aucs: Sequence[float],
    groups: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
    baseline_valid_auc: float = float("nan"),
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Comparison:
    """Both tests for `model` against `baseline`; significance is decided by the bootstrap CI
    (the t-test is reported beside it)."""
    ttest = paired_t_test(model_aucs, baseline_aucs)
    boot = bootstrap_auc_difference(groups, n_boot=n_boot, level=level, seed=seed)
    if boot.significant:
        verdict = f"{model} {'better' if boot.diff > 0 else 'worse'} (CI excludes 0)"
    else:
        verdict = "no significant difference (CI includes 0)"
    return Comparison(
        model=model, baseline=baseline, baseline_valid_auc=float(baseline_valid_auc),
        model_test_auc=float(np.mean(model_aucs)), baseline_test_auc=float(np.mean(baseline_aucs)),
        seeds=ttest.n, t=ttest.t, p=ttest.p, diff=boot.diff, ci_low=boot.ci_low, ci_high=boot.ci_high,
        level=boot.level, n_boot=boot.n_boot, n_rows=boot.n_rows, significant=boot.significant,
        verdict=verdict, seeds_better=int(np.sum(np.asarray(model_aucs) > np.asarray(baseline_aucs))),
    )


def select_best_baseline(valid_auc: dict, exclude_prefix: str = "DLRREC") -> Optional[str]:
    """The model with the best mean VALID AUC among names not starting with `exclude_prefix`
    (so DLRREC's own variants are not its baselines). None when there is none."""
    candidates = {
        name: value for name, value in valid_auc.items()
        if not name.upper().startswith(exclude_prefix.upper()) and value is not None and np.isfinite(value)
    }
    if not candidates:
        return None
    return max(sorted(candidates), key=lambda name: candidates[name])
