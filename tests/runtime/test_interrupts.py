"""Ctrl-C on run_recbole.py, run_leaderboard.py and run_tune.py: one line saying how to go on,
exit status 130, no KeyboardInterrupt traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from recbole_dlrrec.cli import leaderboard as run_leaderboard
from recbole_dlrrec.cli import train as run_recbole
from recbole_dlrrec.cli import tune as run_tune
from recbole_dlrrec.experiments import board_report, search_records, tune
from recbole_dlrrec.runtime import quick_start

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.count("\n") == 1, captured.err
    return captured.err.strip()


def test_run_recbole_interrupted(monkeypatch, capsys, tiny_data_path):
    monkeypatch.setattr(quick_start, "load_splits", _ctrl_c)
    code = run_recbole.main(["--model=DLRM", "--dataset=tiny", f"--data_path={tiny_data_path}"])
    assert code == 130
    assert _one_line(capsys) == "interrupted; no results written; rerun the same command to start the run again"


def test_run_leaderboard_interrupted(monkeypatch, capsys):
    monkeypatch.setattr(board_report, "run_leaderboard", _ctrl_c)
    code = run_leaderboard.main(["--dataset=restaurants", "--models=DLRM", "--seeds=1"])
    assert code == 130
    assert _one_line(capsys) == "interrupted; rerun the same command to continue (finished cells are kept)"


def test_run_tune_interrupted_names_the_run_to_resume(monkeypatch, capsys, tmp_path):
    def started_then_ctrl_c(request):
        request.name = "r1"  # run_search names the run and writes its spec before any trial
        out_dir = tune.run_dirs(request.out_root, request.dataset, request.name)[0]
        search_records.write_run_spec(os.path.join(out_dir, "run_spec.json"), {"dataset": request.dataset})
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "run_search", started_then_ctrl_c)
    code = run_tune.main(["--dataset=tiny", "--num_samples=2", f"--out_root={tmp_path}"])
    assert code == 130
    assert _one_line(capsys) == f"interrupted; continue with --resume --name r1 --dataset=tiny --out_root={tmp_path}"

    monkeypatch.setattr(tune, "run_search", _ctrl_c)  # before the run existed: nothing to resume
    assert run_tune.main(["--dataset=tiny", "--num_samples=2", f"--out_root={tmp_path}"]) == 130
    assert _one_line(capsys) == "interrupted before the search started; rerun the same command"


@pytest.mark.slow
def test_sigint_during_training_is_one_line(tmp_path, tiny_data_path):
    """A real Ctrl-C (SIGINT) in the middle of a run_recbole.py training."""
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "run_recbole.py"),
            "--model=DLRM",
            "--dataset=tiny",
            f"--data_path={tiny_data_path}",
            "--epochs=500",
            "--stopping_step=500",
            f"--result_file={tmp_path / 'r.json'}",
        ],
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not os.path.isdir(tmp_path / "log") and time.time() < deadline:  # RecBole's logger is up: training next
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted; ")
    assert not (tmp_path / "r.json").exists()
