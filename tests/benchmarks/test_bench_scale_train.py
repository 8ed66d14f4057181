"""benchmarks/bench_scale_train.py: the figures it reads from RecBole's log and the dataset."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_scale_train as bench  # noqa: E402


def test_epoch_seconds_come_from_the_first_training_and_evaluating_lines():
    log = (
        "07 Dec 22:55    INFO  \x1b[1;32mepoch 0 training\x1b[0m [\x1b[1;34mtime\x1b[0m: 59.05s, train loss: 1.0]\n"
        "07 Dec 22:55    INFO  \x1b[1;32mepoch 0 evaluating\x1b[0m [\x1b[1;34mtime\x1b[0m: 0.47s, valid_score: 0.5]\n"
        "epoch 1 training [time: 99.00s, train loss: 1.0]\n"
    )
    assert bench.log_seconds(log) == (59.05, 0.47)
    assert bench.log_seconds("epoch 3 training [time: 2.5s, loss: 1]")[0] == 2.5
    with pytest.raises(ValueError, match="no 'epoch N training"):
        bench.log_seconds("Trainable parameters: 10\n")


def test_train_rows_leave_out_the_header(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "d.train.inter").write_text("user_id:token\titem_id:token\nu\ti\nv\tj\n", encoding="utf-8")
    assert bench.train_rows(str(tmp_path), "d") == 2
