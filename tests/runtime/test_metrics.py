"""PRAUC (average precision) and `cls_threshold: auto` (chosen on valid, applied to test)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

import recbole_dlrrec  # noqa: F401  (registers the metrics)
from recbole_dlrrec.runtime import metrics as m


class _Cfg(dict):
    def __getitem__(self, key):
        return self.get(key)


# -- PRAUC -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_prauc_matches_sklearn_average_precision_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 500))
    preds = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse scores: many ties
    trues = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(float)
    trues[0] = 1.0
    value = m.PRAUC(_Cfg(metric_decimal_place=10)).metric_info(preds, trues)
    assert value == pytest.approx(skm.average_precision_score(trues, preds), abs=1e-12)


def test_prauc_is_nan_without_positives_and_registered_as_a_value_metric():
    assert np.isnan(m.average_precision(np.array([0.2, 0.7]), np.array([False, False])))
    from recbole.evaluator import register
    from recbole.utils import EvaluatorType

    from recbole_dlrrec import patches

    patches.apply()  # registers the plugin's metrics (idempotent); this file alone must not rely on another's call

    assert register.metric_types["prauc"] == EvaluatorType.VALUE
    assert "prauc" not in register.smaller_metrics
    assert m.resolve_metric_names(["PRAUC", "Precision"]) == ["PRAUC", "cls_precision"]


# -- choosing the threshold --------------------------------------------------------------------
def _at(preds, trues, t):
    hard = preds >= t
    pos = trues > 0.5
    tp, fp = float((hard & pos).sum()), float((hard & ~pos).sum())
    fn, tn = float((~hard & pos).sum()), float((~hard & ~pos).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return f1, (fp / (fp + tn) if fp + tn else 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_chosen_threshold_is_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    preds = np.round(rng.random(n), 2)
    trues = (rng.random(n) < 0.4 + 0.4 * preds).astype(float)
    candidates = sorted(set(preds), reverse=True)
    f1s = [_at(preds, trues, t)[0] for t in candidates]
    best = candidates[int(np.argmax(f1s))]
    choice = m.choose_threshold(preds, trues)
    assert choice.value == best and choice.rule == "max_f1"
    assert choice.valid_f1 == pytest.approx(max(f1s))
    for target in (0.0, 0.1, 0.5):
        meets = [t for t in candidates if _at(preds, trues, t)[1] <= target]
        choice = m.choose_threshold(preds, trues, target)
        if meets:
            assert choice.value == min(meets)
        else:
            assert choice.value > preds.max()
        assert _at(preds, trues, choice.value)[1] <= target and choice.valid_fpr <= target


def test_set_threshold_moves_every_threshold_metric():
    class _Evaluator:
        metric_class = {
            "f1": m.F1(_Cfg(cls_threshold="auto")),
            "fpr": m.FPR(_Cfg(cls_threshold="auto")),
            "prauc": m.PRAUC(_Cfg()),
        }

    evaluator = _Evaluator()
    assert evaluator.metric_class["f1"].threshold == 0.5  # 'auto' scores at 0.5 until chosen
    assert m.set_threshold(evaluator, 0.3) == 2
    assert evaluator.metric_class["f1"].threshold == evaluator.metric_class["fpr"].threshold == 0.3


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"cls_threshold": "best"}, "cls_threshold must be a number or 'auto'"),
        (
            {"cls_threshold": 0.5, "cls_threshold_target_fpr": 0.1},
            "cls_threshold_target_fpr=0.1 needs cls_threshold: auto",
        ),
        ({"cls_threshold": "auto", "cls_threshold_target_fpr": 1.5}, "cls_threshold_target_fpr must be"),
    ],
)
def test_bad_threshold_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        m.threshold_settings(_Cfg(settings))
    with pytest.raises(ValueError, match=message):
        m.F1(_Cfg(metric_decimal_place=4, **settings))


# -- in a run: chosen on valid, applied unchanged to test ---------------------------------------
def _capturing_run(monkeypatch, tiny_config, tmp_path, **overrides):
    """run() on the tiny DLRM, recording every DataStruct RecBole's Evaluator scores."""
    from recbole.evaluator import Evaluator

    from recbole_dlrrec.runtime.quick_start import run

    structs = []
    original = Evaluator.evaluate

    def evaluate(self, struct):
        structs.append(struct)
        return original(self, struct)

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)
    config = tiny_config("DLRM", epochs=1, metrics=["AUC", "PRAUC", "F1", "FPR", "Accuracy"], **overrides)
    return run("DLRM", config=config, result_file=str(tmp_path / "r.json")), structs


def _scores(struct):
    return struct.get("rec.score").numpy().astype(np.float64), struct.get("data.label").numpy()


@pytest.mark.slow
def test_auto_threshold_is_chosen_on_valid_and_applied_to_test(monkeypatch, tiny_config, tmp_path):
    results, structs = _capturing_run(monkeypatch, tiny_config, tmp_path, cls_threshold="auto")
    # Scored: valid after the epoch, valid again for the choice (then rescored at the chosen
    # threshold from the same predictions), test.
    assert len(structs) == 4 and structs[2] is structs[1]
    valid_scores, valid_labels = _scores(structs[1])
    test_scores, test_labels = _scores(structs[3])
    assert len(valid_scores) != len(test_scores) or not np.array_equal(valid_scores, test_scores)

    chosen = results["cls_threshold"]
    valid_best = m.choose_threshold(valid_scores, valid_labels)
    test_best = m.choose_threshold(test_scores, test_labels)
    assert chosen["value"] == valid_best.value and chosen["rule"] == "max_f1"
    assert test_best.value != valid_best.value  # the test's own optimum would differ: it was not used
    digits = 4  # RecBole's metric_decimal_place
    f1, fpr = _at(test_scores, test_labels, chosen["value"])
    assert results["test_result"]["f1"] == round(f1, digits) and results["test_result"]["fpr"] == round(fpr, digits)
    assert results["valid_result"]["f1"] == round(valid_best.valid_f1, digits)
    assert results["test_result"]["prauc"] == round(skm.average_precision_score(test_labels, test_scores), digits)


def test_target_fpr_threshold_meets_the_target_on_valid(monkeypatch, tiny_config, tmp_path):
    results, structs = _capturing_run(
        monkeypatch, tiny_config, tmp_path, cls_threshold="auto", cls_threshold_target_fpr=0.2
    )
    valid_scores, valid_labels = _scores(structs[1])
    chosen = results["cls_threshold"]
    assert chosen["rule"] == "target_fpr" and chosen["target_fpr"] == 0.2
    assert chosen["value"] == m.choose_threshold(valid_scores, valid_labels, 0.2).value
    assert results["valid_result"]["fpr"] <= 0.2


def test_fixed_threshold_is_reported_and_nothing_is_rescored(monkeypatch, tiny_config, tmp_path):
    results, structs = _capturing_run(monkeypatch, tiny_config, tmp_path)
    assert results["cls_threshold"] == 0.5
    assert len(structs) == 2  # valid after the epoch, test


# -- GAUC and ECE ------------------------------------------------------------------------------
def test_ece_hand_computed_on_equal_width_bins():
    # 10 bins: 0.05 and 0.08 share bin 0 (one positive: |0.5 - 0.065| = 0.435, weight 2/5);
    # 0.55 alone in bin 5 (|1 - 0.55| = 0.45); 0.95 and 1.0 share bin 9 (|0.5 - 0.975| = 0.475).
    labels = np.array([1, 0, 1, 0, 1])
    scores = np.array([0.05, 0.08, 0.55, 0.95, 1.0])
    want = 2 / 5 * 0.435 + 1 / 5 * 0.45 + 2 / 5 * 0.475
    assert m.expected_calibration_error(labels, scores) == pytest.approx(want)
    assert m.expected_calibration_error(labels, scores, bins=1) == pytest.approx(abs(3 / 5 - scores.mean()))
    assert m.expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    assert np.isnan(m.expected_calibration_error([], []))


def test_ece_is_registered_as_a_smaller_is_better_value_metric():
    from recbole.evaluator import register
    from recbole.utils import EvaluatorType

    from recbole_dlrrec import patches

    patches.apply()  # registers the plugin's metrics (idempotent)
    assert register.metric_types["ece"] == EvaluatorType.VALUE and "ece" in register.smaller_metrics
    metric = m.ECE.__new__(m.ECE)
    assert metric.metric_info(np.array([0.2, 0.9]), np.array([0.0, 1.0])) == pytest.approx((0.2 + 0.1) / 2)


def test_gauc_weights_users_by_rows_and_skips_one_class_users():
    users = np.array([1, 1, 1, 2, 2, 2, 2, 3, 3])
    labels = np.array([1, 0, 0, 1, 1, 0, 0, 1, 1])
    # user 1: the positive beats one of two negatives -> 0.5; user 2: 3 of 4 pairs plus a tie
    # (0.6 vs 0.6) -> 3.5 / 4; user 3: positives only, skipped.
    scores = np.array([0.5, 0.9, 0.1, 0.6, 0.8, 0.6, 0.2, 0.3, 0.4])
    result = m.group_auc(labels, scores, users)
    assert result.value == pytest.approx((3 * 0.5 + 4 * 0.875) / 7)
    assert (result.users, result.users_skipped, result.rows_skipped) == (2, 1, 2)
    assert result.value == pytest.approx(
        np.average([skm.roc_auc_score(labels[users == u], scores[users == u]) for u in (1, 2)], weights=[3, 4])
    )
    assert np.isnan(m.group_auc([1, 1], [0.1, 0.2], [5, 6]).value)
