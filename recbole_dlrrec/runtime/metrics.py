"""Classification metrics at a decision threshold, registered with RecBole's evaluator.

`accuracy`, `fpr` (false-positive rate), `precision`, `recall` and `f1` score the model's
predicted probabilities against the 0/1 labels after thresholding them at `cls_threshold`
(default 0.5, see properties/overall.yaml). They are VALUE metrics, like AUC and LogLoss, so
they sit in the same `metrics:` list of a labeled (CTR-style) config. `prauc` (average precision,
the area under the precision-recall curve) is a threshold-free value metric beside AUC; `ece`
(expected calibration error, ECE_BINS equal-width bins) says how far the predicted
probabilities are from the observed positive shares. `group_auc` (GAUC: per-user AUC weighted by
the user's rows) needs each row's user, which RecBole's collector does not hand a value metric:
the boards compute it from a cell's per-row file (experiments/cell_metrics.py).

`cls_threshold: auto` chooses the threshold on the VALIDATION predictions of the trained model
(`choose_threshold`: the F1-optimal one, or with `cls_threshold_target_fpr` the lowest one whose
FPR meets the target) and applies it unchanged to test (`set_threshold`). While training, before
it is chosen, the threshold metrics use 0.5.

RecBole already owns the names `precision` and `recall` for its top-k RANKING metrics. Those
keep their meaning in ranking configs. In a value config (labeled evaluation, or next to another
value metric such as AUC) `precision` and `recall` are resolved to the classification versions
registered here, so `metrics: [AUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]` works as
written. The rewrite happens in `resolve_metric_names`, called by the Config patch.

Importing this module registers nothing: `recbole_dlrrec.patches.apply()` (fix 7) adds these
classes to RecBole's metric registry and installs the Config patch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from recbole.evaluator.base_metric import LossMetric

# Internal registry names of the two metrics whose public names RecBole's ranking metrics own.
_VALUE_ALIASES = {"precision": "cls_precision", "recall": "cls_recall"}


class _ThresholdMetric(LossMetric):
    """Base: threshold the scores, count TP/FP/TN/FN, report one ratio under `output_name`."""

    output_name = ""

    def __init__(self, config):
        super().__init__(config)
        threshold_settings(config)  # a bad value fails when the trainer is built, not after training
        threshold = config["cls_threshold"]
        # 'auto': 0.5 until the threshold is chosen on valid after training (set_threshold).
        self.threshold = 0.5 if threshold is None or is_auto(threshold) else float(threshold)

    def calculate_metric(self, dataobject):
        return self.output_metric(self.output_name, dataobject)

    def metric_info(self, preds, trues):
        predicted = np.asarray(preds) >= self.threshold
        actual = np.asarray(trues) > 0.5
        tp = float(np.sum(predicted & actual))
        fp = float(np.sum(predicted & ~actual))
        tn = float(np.sum(~predicted & ~actual))
        fn = float(np.sum(~predicted & actual))
        return self.ratio(tp, fp, tn, fn)

    @staticmethod
    def _div(num: float, den: float) -> float:
        # An empty denominator (e.g. no predicted positives) scores 0, as scikit-learn's
        # zero_division=0 does, instead of NaN that would poison early stopping.
        return num / den if den > 0 else 0.0

    def ratio(self, tp, fp, tn, fn) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class Accuracy(_ThresholdMetric):
    """(TP + TN) / all rows."""

    output_name = "accuracy"

    def ratio(self, tp, fp, tn, fn):
        return self._div(tp + tn, tp + fp + tn + fn)


class FPR(_ThresholdMetric):
    """False-positive rate FP / (FP + TN): the share of true negatives predicted positive."""

    output_name = "fpr"
    smaller = True

    def ratio(self, tp, fp, tn, fn):
        return self._div(fp, fp + tn)


class Cls_Precision(_ThresholdMetric):
    """TP / (TP + FP). Reported as `precision`."""

    output_name = "precision"

    def ratio(self, tp, fp, tn, fn):
        return self._div(tp, tp + fp)


class Cls_Recall(_ThresholdMetric):
    """TP / (TP + FN). Reported as `recall`."""

    output_name = "recall"

    def ratio(self, tp, fp, tn, fn):
        return self._div(tp, tp + fn)


class F1(_ThresholdMetric):
    """2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall."""

    output_name = "f1"

    def ratio(self, tp, fp, tn, fn):
        return self._div(2 * tp, 2 * tp + fp + fn)


class PRAUC(LossMetric):
    """Average precision: sum over the distinct score thresholds t (highest first) of
    (recall(t) - recall(previous t)) * precision(t), the area under the precision-recall curve
    as scikit-learn's average_precision_score computes it (no interpolation; tied scores form one
    step). Unlike AUC it depends on the base rate, so it shows how well the rare class is found.
    NaN (with a warning) when there is no positive row, as RecBole's AUC does."""

    def calculate_metric(self, dataobject):
        return self.output_metric("prauc", dataobject)

    def metric_info(self, preds, trues):
        return average_precision(np.asarray(preds, dtype=np.float64), np.asarray(trues) > 0.5)


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of `scores` (N) for the boolean labels `positive` (N)."""
    total_pos = int(positive.sum())
    if total_pos == 0:
        logging.getLogger().warning("PRAUC: no positive rows, the metric is undefined (nan)")
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    # The last row of each run of equal scores closes one step of the curve.
    ends = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(positive)[ends]
    precision = tp / (ends + 1)
    recall_gain = np.diff(np.r_[0, tp]) / total_pos
    return float(np.sum(recall_gain * precision))


ECE_BINS = 10  # equal-width probability bins of the expected calibration error


class ECE(LossMetric):
    """Expected calibration error over ECE_BINS equal-width bins of the predicted probability
    (`expected_calibration_error`); smaller is better. Reported as `ece`."""

    smaller = True

    def calculate_metric(self, dataobject):
        return self.output_metric("ece", dataobject)

    def metric_info(self, preds, trues):
        return expected_calibration_error(np.asarray(trues) > 0.5, np.asarray(preds, dtype=np.float64))


def expected_calibration_error(labels, scores, bins: int = ECE_BINS) -> float:
    """sum over bins b of (rows in b / N) * |positive share in b - mean score in b|, the bins
    splitting [0, 1] into `bins` equal widths (bin k holds k/bins <= score < (k+1)/bins; a score of
    1 falls in the last). labels, scores: N each; scores are probabilities. nan for no rows."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0:
        return float("nan")
    which = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / y.size)  # rows_b / N * |sum_y / rows_b - sum_p / rows_b| = |sum_y - sum_p| / N


@dataclass(frozen=True)
class GroupAUC:
    """Per-user AUC averaged over users, each weighted by its rows (RecBole's GAUC weighting)."""

    value: float  # nan when no user has both classes
    users: int  # users with both classes (averaged)
    users_skipped: int  # users with one class only (no AUC), left out
    rows_skipped: int


def group_auc(labels, scores, users) -> GroupAUC:
    """GAUC of `scores` (N) for 0/1 `labels` (N) grouped by `users` (N ids): sum over users with
    both classes of rows_u * AUC_u, over the sum of their rows (AUC with ties counted 1/2)."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    u = np.asarray(users).ravel()
    order = np.lexsort((s, u))  # by user, then score
    y, s, u = y[order], s[order], u[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], u.size]
    total = weight = 0.0
    used = skipped = rows_skipped = 0
    for start, end in zip(starts, ends):
        pos = int(y[start:end].sum())
        neg = (end - start) - pos
        if pos == 0 or neg == 0:
            skipped += 1
            rows_skipped += end - start
            continue
        ranks = rankdata(s[start:end])  # average ranks: ties count 1/2
        auc = (ranks[y[start:end]].sum() - pos * (pos + 1) / 2) / (pos * neg)
        total += (end - start) * auc
        weight += end - start
        used += 1
    return GroupAUC(total / weight if weight else float("nan"), used, skipped, rows_skipped)


METRICS = (Accuracy, FPR, Cls_Precision, Cls_Recall, F1, PRAUC, ECE)


# -- cls_threshold: auto -----------------------------------------------------------------------
def is_auto(threshold) -> bool:
    return isinstance(threshold, str) and threshold.lower() == "auto"


@dataclass(frozen=True)
class ThresholdChoice:
    """The decision threshold chosen on the validation predictions, and how."""

    value: float
    rule: str  # 'max_f1' or 'target_fpr'
    target_fpr: Optional[float]
    valid_f1: float
    valid_fpr: float

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "rule": self.rule,
            "target_fpr": self.target_fpr,
            "valid_f1": self.valid_f1,
            "valid_fpr": self.valid_fpr,
        }


def threshold_settings(config):
    """(auto, target_fpr) from `cls_threshold` and `cls_threshold_target_fpr`; ValueError naming
    the key of a bad value (a target FPR without `cls_threshold: auto` would be ignored, so it is
    an error too)."""
    threshold, target = config["cls_threshold"], config["cls_threshold_target_fpr"]
    auto = is_auto(threshold)
    if not auto and threshold is not None:
        try:
            float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"cls_threshold must be a number or 'auto', got {threshold!r}") from None
    if target is None:
        return auto, None
    if not auto:
        raise ValueError(f"cls_threshold_target_fpr={target!r} needs cls_threshold: auto, got {threshold!r}")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or math.isnan(target) or not 0 <= target <= 1:
        raise ValueError(f"cls_threshold_target_fpr must be a number in [0, 1] or null, got {target!r}")
    return auto, float(target)


def choose_threshold(scores, labels, target_fpr: Optional[float] = None) -> ThresholdChoice:
    """The threshold t (rows with score >= t are predicted positive) among the distinct scores:

    - target_fpr None: the one with the highest F1 (of equal F1, the highest t);
    - else: the lowest t whose false-positive rate is <= target_fpr (the most recall the FPR
      budget allows); when even the highest score exceeds it, a t just above the highest score
      (nothing predicted positive, FPR 0).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) > 0.5
    if scores.size == 0:
        raise ValueError("cls_threshold: auto needs validation predictions, got none")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_pos = scores[order], positive[order]
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    candidates = sorted_scores[ends]  # distinct scores, highest first
    tp = np.cumsum(sorted_pos)[ends].astype(np.float64)  # predicted positive at t = candidates[i]
    fp = (ends + 1) - tp
    n_pos, n_neg = float(positive.sum()), float((~positive).sum())
    f1 = np.divide(2 * tp, tp + fp + n_pos, out=np.zeros_like(tp), where=(tp + fp + n_pos) > 0)
    fpr = fp / n_neg if n_neg > 0 else np.zeros_like(fp)
    if target_fpr is None:
        best = int(np.argmax(f1))  # first maximum = highest threshold among ties
        return ThresholdChoice(float(candidates[best]), "max_f1", None, float(f1[best]), float(fpr[best]))
    meets = np.flatnonzero(fpr <= target_fpr)
    if meets.size == 0:
        value = float(np.nextafter(candidates[0], np.inf))
        return ThresholdChoice(value, "target_fpr", target_fpr, 0.0, 0.0)
    best = int(meets[-1])  # fpr grows as t falls: the last that meets the target is the lowest t
    return ThresholdChoice(float(candidates[best]), "target_fpr", target_fpr, float(f1[best]), float(fpr[best]))


def set_threshold(evaluator, value: float) -> int:
    """Make every threshold metric of a RecBole Evaluator use `value`. Returns how many."""
    metrics = [m for m in evaluator.metric_class.values() if isinstance(m, _ThresholdMetric)]
    for metric in metrics:
        metric.threshold = float(value)
    return len(metrics)


def resolve_metric_names(metrics, eval_mode=None):
    """Map `precision` / `recall` to the classification metrics in a value-metric config.

    Args:
        metrics: the config's `metrics` list (names in any case).
        eval_mode: the config's `eval_args['mode']` (a str, or a dict per phase); 'labeled'
            means value evaluation.
    Returns:
        a new list with the aliases resolved; other names unchanged.
    """
    from recbole.evaluator.register import metric_types
    from recbole.utils import EvaluatorType

    if isinstance(metrics, str):
        metrics = [metrics]
    others = [m for m in metrics if m.lower() not in _VALUE_ALIASES]
    modes = eval_mode.values() if isinstance(eval_mode, dict) else [eval_mode]
    value_config = "labeled" in modes or any(metric_types.get(m.lower()) == EvaluatorType.VALUE for m in others)
    if not value_config:
        return list(metrics)
    return [_VALUE_ALIASES.get(m.lower(), m) for m in metrics]
