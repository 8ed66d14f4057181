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


@pytest.mark.slow
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


@pytest.mark.slow
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
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
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


@pytest.mark.slow
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
            getattr(ctypes.CDLL("libc.so.6"), "mallopt")  # noqa: B009 (the lookup is the probe)
        except (OSError, AttributeError):
            return  # not glibc
        assert compat.keep_freed_heap() is True


# -- every bad value is refused before any data loads, through the CLIs ------------------------
@pytest.fixture
def no_data(monkeypatch):
    """Make loading or building any data a test failure."""
    from recbole_dlrrec.runtime import quick_start

    def loaded(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(quick_start, "prepare_dataset", loaded)
    monkeypatch.setattr(quick_start, "load_splits", loaded)


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    "arg, needle",
    [
        ("--tau=0", "config key 'tau' must be > 0, got 0 (set by --key=value flag)"),
        ("--w1=-5", "config key 'w1' must be >= 0, got -5"),
        ("--reduction=bogus", "config key 'reduction' must be one of mlp|linear|pca|none, got 'bogus'"),
        ("--learning_rate=-1", "config key 'learning_rate' must be > 0, got -1"),
        ("--train_batch_size=0", "config key 'train_batch_size' must be >= 1, got 0"),
        ("--epochs=0", "config key 'epochs' must be >= 1, got 0"),
        ("--model=foo.bar", "unknown model 'foo.bar'"),
        ("--cl_repr=txt", "config key 'cl_repr' must be one of fused|text|id"),
    ],
)
def test_bad_values_fail_before_any_data(arg, needle, no_data, capsys):
    from recbole_dlrrec.cli.train import main

    assert main(["--model=DLRREC", "--dataset=ml-100k", arg]) == 2
    assert needle in _one_error_line(capsys)


def test_bad_values_in_config_files_fail_before_any_data(tmp_path, no_data, capsys):
    from recbole_dlrrec.cli.train import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: abc\n")
    assert main(["--model=DLRM", "--dataset=ml-100k", f"--config_files={bad}"]) == 2
    assert f"config key 'epochs' takes int (see overall.yaml), got 'abc' (set by {bad})" in _one_error_line(capsys)
    evil = tmp_path / "evil.yaml"
    evil.write_text("epochs: !!python/name:os.system\n")
    assert main(["--model=DLRM", "--dataset=ml-100k", f"--config_files={evil}"]) == 2
    line = _one_error_line(capsys)
    assert str(evil) in line and "refused !!python/name:os.system" in line


@pytest.mark.slow
def test_epochs_zero_through_run_recbole_py():
    proc = _cli("--model=DLRM", "--dataset=ml-100k", "--epochs=0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: config key 'epochs' must be >= 1, got 0 (set by --key=value flag)"
    ]


def test_leaderboard_and_tune_clis_refuse_bad_values(tmp_path, monkeypatch, tiny_data_path, capsys):
    from recbole_dlrrec.cli import leaderboard as leaderboard_cli
    from recbole_dlrrec.cli import tune as tune_cli

    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)  # the leaderboard CLI sets it
    argv = [
        "--dataset=tiny",
        "--models=DLRM,DLRREC",
        "--w1=-5",
        f"--results_dir={tmp_path}",
        f"--data_path={tiny_data_path}",
    ]
    assert leaderboard_cli.main(argv) == 2
    assert "config key 'w1' must be >= 0, got -5" in _one_error_line(capsys)
    assert not os.listdir(tmp_path)
    argv = ["--dataset=tiny", "--num_samples=1", "--tau=0", f"--out_root={tmp_path}", f"--data_path={tiny_data_path}"]
    assert tune_cli.main(argv) == 2
    assert "config key 'tau' must be > 0, got 0" in _one_error_line(capsys)


# -- --show-config and string keys ----------------------------------------------------------
def test_show_config_prints_value_and_source_without_data(tiny_data_path, tmp_path, no_data, capsys):
    from recbole_dlrrec.cli.train import main

    user = tmp_path / "user.yaml"
    user.write_text("w1: 0.05\n")
    argv = [
        "--model=DLRREC-V0",
        "--dataset=tiny",
        f"--data_path={tiny_data_path}",
        f"--config_files={user}",
        "--tau=0.2",
        "--reduction_norm=none",
        "--show-config",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "tau: 0.2  # --key=value flag" in lines
    assert "reduction_norm: null  # --key=value flag" in lines  # a key that may be null
    assert 'reduction: "pca"  # variant DLRREC-V0' in lines
    assert f"w1: 0.05  # {user}" in lines
    assert f"reduction_dim: 8  # {os.path.join(tiny_data_path, 'tiny', 'tiny.yaml')}" in lines
    assert "swing_topk: 50  # " + os.path.join(ROOT, "properties", "swing.yaml") in lines
    assert "learning_rate: 0.001  # RecBole default" in lines
    assert main(["--dataset=no_such_data", "--show-config"]) == 2
    assert "unknown dataset 'no_such_data'" in _one_error_line(capsys)


def test_reduction_none_stays_a_string(tiny_data_path, tmp_path, no_data, capsys):
    from recbole_dlrrec.cli.train import main

    assert (
        main(["--model=DLRREC", "--dataset=tiny", f"--data_path={tiny_data_path}", "--reduction=none", "--show-config"])
        == 0
    )
    assert 'reduction: "none"  # --key=value flag' in capsys.readouterr().out.splitlines()


@pytest.mark.slow
def test_reduction_none_trains_as_dlrrec_notext(tiny_data_path, tmp_path, capsys):
    from recbole_dlrrec.cli.train import main

    result = tmp_path / "r.json"
    argv = [
        "--model=DLRREC",
        "--dataset=tiny",
        f"--data_path={tiny_data_path}",
        "--reduction=none",
        "--epochs=1",
        f"--result_file={result}",
    ]
    assert main(argv) == 0
    record = json.loads(result.read_text())
    assert record["config"]["reduction"] == "none" and record["test_result"]["auc"] > 0
