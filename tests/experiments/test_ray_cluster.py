"""Ray Tune on a real (local) cluster: the docs' recipe (docs/leaderboards.md), run as written.

`ray start --head` on 127.0.0.1 with a free port, a 2-trial search that joins it with
`run_tune.py --address=127.0.0.1:PORT`, then the head this test started is stopped and nothing
of it is left. An address where no cluster answers is one line and exit 2, before any data.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAY = os.path.join(os.path.dirname(sys.executable), "ray")


# Ray 2.60 authenticates every connection with a token (~/.ray/auth_token, made on first use):
# head and driver both run in token mode, as the docs' recipe says.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_mentioning(text: str):
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(text in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_unreachable_address_is_one_line_before_any_data(tmp_path, tiny_data_path, capsys):
    from recbole_dlrrec.cli.tune import main

    port = _free_port()  # nothing listens there
    status = main(["--model=DLRM", "--dataset=tiny", "--num_samples=2", f"--address=127.0.0.1:{port}",
                   f"--out_root={tmp_path / 'out'}", f"--data_path={tiny_data_path}"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and f"--address=127.0.0.1:{port}: no Ray cluster answers there" in err
    assert not (tmp_path / "out").exists()
    assert main(["--model=DLRM", "--dataset=tiny", "--num_samples=2", "--address=nohostport",
                 f"--data_path={tiny_data_path}"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(RAY), reason=f"no `ray` command beside {sys.executable}")
def test_search_joins_a_started_head_and_the_head_is_stopped(tmp_path, tiny_data_path):
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, **RAY_ENV},
    )
    try:
        deadline = time.time() + 90
        while True:  # the head's GCS port accepts connections once it is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, head.stdout.read()
                assert time.time() < deadline, "the Ray head did not start within 90 s"
                time.sleep(1)
        out_root = tmp_path / "out"
        space = tmp_path / "space.yaml"
        space.write_text("learning_rate: {choice: [0.001, 0.002]}\n")
        driver = subprocess.run(
            [sys.executable, os.path.join(ROOT, "run_tune.py"), "--model=DLRM", "--dataset=tiny",
             "--num_samples=2", "--max_epochs=1", f"--space={space}", "--name=cluster", "--seed=1", "--no_test",
             f"--address=127.0.0.1:{port}", f"--out_root={out_root}", f"--data_path={tiny_data_path}"],
            cwd=str(tmp_path), capture_output=True, text=True, timeout=400, env={**os.environ, **RAY_ENV},
        )
        assert driver.returncode == 0, driver.stdout[-2000:] + driver.stderr[-2000:]
        run_dirs = [d for d, _, files in os.walk(out_root) if "trials.csv" in files]
        assert len(run_dirs) == 1
        with open(os.path.join(run_dirs[0], "trials.csv"), newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 2 and {r["status"] for r in rows} <= {"completed", "pruned"}
        assert head.poll() is None  # the driver joined the cluster; it did not stop the head
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its node on SIGTERM
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
        time.sleep(2)
        left = _processes_mentioning(temp_dir)
        for proc in left:  # clean up for the next test, then fail below
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not left, [p.info["cmdline"][:3] for p in left]
