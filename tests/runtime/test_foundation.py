"""Foundation: metrics vs scikit-learn, weights_only checkpoints, CLI errors, DLRM, no ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from recbole_dlrrec import patches
from recbole_dlrrec.runtime import metrics as m

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Cfg(dict):
    def __getitem__(self, key):
        return self.get(key)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_classification_metrics_match_sklearn(seed, threshold):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    preds = rng.random(n)
    trues = (rng.random(n) < 0.7).astype(float)
    cfg = _Cfg(metric_decimal_place=10, cls_threshold=threshold)
    hard = (preds >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(trues, hard, labels=[0, 1]).ravel()
    expected = {
        m.Accuracy: skm.accuracy_score(trues, hard),
        m.Cls_Precision: skm.precision_score(trues, hard, zero_division=0),
        m.Cls_Recall: skm.recall_score(trues, hard, zero_division=0),
        m.F1: skm.f1_score(trues, hard, zero_division=0),
        m.FPR: fp / (fp + tn) if fp + tn else 0.0,
    }
    for cls, value in expected.items():
        assert cls(cfg).metric_info(preds, trues) == pytest.approx(value, abs=1e-12), cls.__name__


def test_metric_names_resolve_by_config_kind():
    value = m.resolve_metric_names(["AUC", "Precision", "recall", "F1"])
    assert value == ["AUC", "cls_precision", "cls_recall", "F1"]
    # A ranking config keeps RecBole's top-k Precision / Recall.
    assert m.resolve_metric_names(["Recall", "NDCG", "Precision"]) == ["Recall", "NDCG", "Precision"]
    assert m.resolve_metric_names(["Precision"], eval_mode="labeled") == ["cls_precision"]


def test_registered_with_recbole_registry():
    from recbole.evaluator import register

    patches.apply()
    from recbole.utils import EvaluatorType

    for name in ["accuracy", "fpr", "cls_precision", "cls_recall", "f1"]:
        assert register.metric_types[name] == EvaluatorType.VALUE
        assert name in register.metrics_dict
    assert "fpr" in register.smaller_metrics
    assert register.metric_types["precision"] == EvaluatorType.RANKING  # RecBole's own kept


def test_full_run_reloads_best_checkpoint_weights_only(tiny_config, tmp_path):
    from recbole_dlrrec.runtime.quick_start import run

    config = tiny_config("DLRM", epochs=2)
    results = run("DLRM", config=config, result_file=str(tmp_path / "r.json"))
    for split in ("valid_result", "test_result"):
        assert set(results[split]) == {"auc", "logloss", "accuracy", "fpr", "precision", "recall", "f1"}
    # The checkpoint loads under torch's strict default, and holds what RecBole reads back.
    checkpoint = torch.load(results["saved_model_file"], weights_only=True)
    assert checkpoint["config"]["model"] == "DLRM"
    assert isinstance(checkpoint["best_valid_score"], float)
    saved = json.load(open(results["result_file"]))
    assert saved["test_result"] == results["test_result"]
    assert saved["timings"]["train_s"] > 0


def test_resume_checkpoint_under_weights_only(tiny_config):
    from recbole.utils import get_trainer

    from recbole_dlrrec.runtime.quick_start import build_model, load_splits

    config = tiny_config("DLRM", epochs=1)
    _, train, valid, _ = load_splits(config)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, build_model(config, train))
    trainer.fit(train, valid, saved=True)
    other = get_trainer(config["MODEL_TYPE"], config["model"])(config, build_model(config, train))
    other.resume_checkpoint(trainer.saved_model_file)
    assert other.start_epoch == 1
    for a, b in zip(trainer.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)


def _cli(*args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_recbole.py"), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model=NoSuchModel", "--dataset=ml-100k"], "unknown model 'NoSuchModel'"),
        (["--model=DLRM", "--dataset=no_such_data"], "unknown dataset 'no_such_data'"),
        (["--model=DLRM", "--dataset=ml-100k", "--config_files=missing.yaml"], "config file not found: missing.yaml"),
        (["--model=DLRM", "--dataset=ml-100k", "--learnin_rate=0.1"], "unknown config key 'learnin_rate'"),
        (["--model=DLRM", "--dataset=ml-100k", "--epochs=ten"], "config key 'epochs' takes int"),
    ],
)
def test_cli_bad_input_is_one_line(args, needle):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    if "unknown model" in needle:
        assert "DeepFM" in lines[0] and "DLRREC" in lines[0]
    if "learnin_rate" in needle:
        assert "learning_rate" in lines[0]


def test_dlrm_forward_shapes(tiny_config):
    from recbole_dlrrec.runtime.quick_start import build_model, load_splits

    config = tiny_config("DLRM")
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    batch = next(iter(train))
    # token: user_id, item_id, cuisine, age_band; token_seq: tags; dense: price_level
    assert model.fields.token_seq == ["tags"] and model.fields.dense == ["price_level"]
    vectors, dense = model.feature_vectors(batch)
    assert vectors.shape == (len(batch), 6, config["embedding_size"])
    assert dense.shape == (len(batch), config["embedding_size"])
    assert model(batch).shape == (len(batch),)
    probs = model.predict(batch)
    assert torch.all((probs > 0) & (probs < 1))


def test_training_path_imports_no_ray(tiny_data_path):
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'): raise ImportError('ray blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from recbole_dlrrec.runtime.quick_start import run\n"
        f"r = run('DLRM', 'tiny', config_dict={{'data_path': {tiny_data_path!r}, 'epochs': 1}}, saved=False,"
        f" result_file={os.path.join(tiny_data_path, 'noray.json')!r})\n"
        "assert 'ray' not in sys.modules\n"
        "print('ok', r['test_result']['auc'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout


def test_freed_heap_is_kept_unless_the_user_tuned_malloc(monkeypatch):
    """compat fix 6: glibc keeps freed heap for the next training step; a user's own malloc
    settings win."""
    import sys

    from recbole_dlrrec import patches as compat

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert compat.keep_freed_heap() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert compat.keep_freed_heap() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            return  # not glibc
        assert compat.keep_freed_heap() is True
