"""Same seed, same numbers: a model trained twice, at the same time, gives byte-identical scores.

The runs train on two threads with batches large enough for torch's parallel CPU kernels (a
backward of an indexed read accumulates with atomic adds across threads once the gradient has
32768 elements or more): the nondeterminism a user meets on a real dataset. A RecBole baseline
(DeepFM) is checked beside the plugin models.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_AND_SAVE_SCORES = r"""
import sys

import numpy as np
import torch

from recbole_dlrrec.runtime.quick_start import run

torch.set_num_threads(2)
model, data_path, out = sys.argv[1:4]
trainers = []
results = run(model, "tiny", config_dict={
    "data_path": data_path, "checkpoint_dir": out + ".saved", "epochs": 2, "train_batch_size": 2400,
    "embedding_size": 64, "train_precision": "fp32",
}, saved=False, result_file=out + ".json", record_predictions=True,
    epoch_callbacks=[lambda epoch, score, trainer: trainers.append(trainer)])
np.save(out, trainers[-1].evaluator.scores)  # the last evaluation: the test split
"""


def train_twice_at_once(model: str, data_path: str, tmp_path) -> list:
    """Two runs of `model` started together; each run's saved per-row test scores, as bytes."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outs = [str(tmp_path / f"{model}-run{i}") for i in range(2)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN_AND_SAVE_SCORES, model, data_path, out],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for proc in runs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return [open(out + ".npy", "rb").read() for out in outs]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["DLRREC", "DLRM", "DeepFM"])
def test_two_runs_at_once_give_the_same_score_bytes(model, tiny_data_path, tmp_path):
    first, second = train_twice_at_once(model, tiny_data_path, tmp_path)
    assert len(first) > 128  # a real array of scores, not an empty file
    assert first == second, f"{model}: the same seed gave different test scores in two runs"


def test_reproducibility_turns_deterministic_kernels_on_and_off():
    """RecBole's `reproducibility` (default True) also selects torch's deterministic kernels."""
    import torch

    from recbole_dlrrec import patches

    patches.apply()
    from recbole.utils import init_seed  # after apply(): the fixed one

    before = torch.are_deterministic_algorithms_enabled()
    try:
        init_seed(2020, True)
        assert torch.are_deterministic_algorithms_enabled()
        init_seed(2020, False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
