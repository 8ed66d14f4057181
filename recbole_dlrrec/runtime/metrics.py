"""Classification metrics at a decision threshold, registered with RecBole's evaluator.

`accuracy`, `fpr` (false-positive rate), `precision`, `recall` and `f1` score the model's
predicted probabilities against the 0/1 labels after thresholding them at `cls_threshold`
(default 0.5, see properties/overall.yaml). They are VALUE metrics, like AUC and LogLoss, so
they sit in the same `metrics:` list of a labeled (CTR-style) config.

RecBole already owns the names `precision` and `recall` for its top-k RANKING metrics. Those
keep their meaning in ranking configs. In a value config (labeled evaluation, or next to another
value metric such as AUC) `precision` and `recall` are resolved to the classification versions
registered here, so `metrics: [AUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]` works as
written. The rewrite happens in `resolve_metric_names`, called by the Config patch.

Importing this module registers nothing: `recbole_dlrrec.patches.apply()` (fix 7) adds these
classes to RecBole's metric registry and installs the Config patch.
"""
from __future__ import annotations

import numpy as np
from recbole.evaluator.base_metric import LossMetric

# Internal registry names of the two metrics whose public names RecBole's ranking metrics own.
_VALUE_ALIASES = {"precision": "cls_precision", "recall": "cls_recall"}


class _ThresholdMetric(LossMetric):
    """Base: threshold the scores, count TP/FP/TN/FN, report one ratio under `output_name`."""

    output_name = ""

    def __init__(self, config):
        super().__init__(config)
        threshold = config["cls_threshold"]
        self.threshold = 0.5 if threshold is None else float(threshold)

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


METRICS = (Accuracy, FPR, Cls_Precision, Cls_Recall, F1)


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
    value_config = "labeled" in modes or any(
        metric_types.get(m.lower()) == EvaluatorType.VALUE for m in others
    )
    if not value_config:
        return list(metrics)
    return [_VALUE_ALIASES.get(m.lower(), m) for m in metrics]
