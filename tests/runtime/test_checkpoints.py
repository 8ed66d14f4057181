"""Every run gets a checkpoint file of its own (runtime.training.unique_checkpoint_file):
RecBole's `<model>-<Mon-DD-YYYY_HH-MM-SS>.pth` is shared by runs started in the same second."""

from __future__ import annotations

import os

import pytest
import recbole.trainer.trainer as recbole_trainer

from recbole_dlrrec.runtime.quick_start import build_model, load_splits, run
from recbole_dlrrec.runtime.training import build_trainer


def test_trainers_built_in_the_same_second_get_different_files(tiny_config, monkeypatch):
    # RecBole names the file by the second it was built in: freeze that second.
    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Nov-27-2026_12-00-00")
    config = tiny_config("DLRM")
    _, train_data, _, _ = load_splits(config)
    first = build_trainer(config, build_model(config, train_data))
    second = build_trainer(config, build_model(config, train_data))
    assert first.saved_model_file != second.saved_model_file
    for trainer in (first, second):
        name = os.path.basename(trainer.saved_model_file)
        assert os.path.dirname(trainer.saved_model_file) == config["checkpoint_dir"]
        assert name.startswith("DLRM-") and name.endswith(".pth")
        assert f"-seed{config['seed']}-pid{os.getpid()}-" in name


@pytest.mark.slow
def test_results_name_the_run_s_own_checkpoint(tiny_data_path, tmp_path):
    settings = {"data_path": tiny_data_path, "epochs": 1}
    results = [run("DLRM", "tiny", config_dict=settings, result_file=str(tmp_path / f"r{i}.json")) for i in range(2)]
    files = [r["saved_model_file"] for r in results]
    assert files[0] != files[1] and all(os.path.isfile(f) for f in files)
    assert all(f"-seed{r['seed']}-pid{os.getpid()}-" in f for r, f in zip(results, files))


@pytest.mark.slow
def test_a_run_s_checkpoint_loads_without_unpickling_objects(tiny_data_path, tmp_path, tiny_config):
    """What patches.py fix 2 writes is what the gathered evaluation (fix 10) reads back with
    weights_only=True: the state dict restores the model, RecBole's own keys are plain values."""
    import torch

    result = run(
        "DLRM", "tiny", config_dict={"data_path": tiny_data_path, "epochs": 1}, result_file=str(tmp_path / "r.json")
    )
    checkpoint = torch.load(result["saved_model_file"], map_location="cpu", weights_only=True)
    assert checkpoint["config"]["model"] == "DLRM" and isinstance(checkpoint["epoch"], int)
    config = tiny_config("DLRM")
    _, train_data, _, _ = load_splits(config)
    model = build_model(config, train_data)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
