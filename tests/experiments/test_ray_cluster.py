"""Ray Tune on a real (local) cluster: the docs' recipe (docs/leaderboards.md), run as written,
from an empty HOME.

`recbole-dlrrec ray-token` makes the token (`ray start --head` in token mode refuses to start
without one), `ray start --head` on 127.0.0.1 with a free port, a 2-trial search that joins it
with `run_tune.py --address=127.0.0.1:PORT`, then the head this test started is stopped and
nothing of it is left. An address where no cluster answers, and a driver without the token, are
one line and exit 2, before any data. A local search listens on 127.0.0.1 only.
"""

from __future__ import annotations

import csv
import json
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


# Ray 2.60 authenticates every connection with a token (~/.ray/auth_token): head and driver
# both run in token mode, as the docs' recipe says.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
CLI = [sys.executable, "-c", "import sys; from recbole_dlrrec.cli.main import main; sys.exit(main(sys.argv[1:]))"]


def _fresh_env(home) -> dict:
    """This environment as on a fresh machine: HOME is `home` (made empty here), no Ray token."""
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    return {
        **env,
        **RAY_ENV,
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


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
    status = main(
        [
            "--model=DLRM",
            "--dataset=tiny",
            "--num_samples=2",
            f"--address=127.0.0.1:{port}",
            f"--out_root={tmp_path / 'out'}",
            f"--data_path={tiny_data_path}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and f"--address=127.0.0.1:{port}: no Ray cluster answers there" in err
    assert not (tmp_path / "out").exists()
    assert (
        main(
            [
                "--model=DLRM",
                "--dataset=tiny",
                "--num_samples=2",
                "--address=nohostport",
                f"--data_path={tiny_data_path}",
            ]
        )
        == 2
    )
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_driver_without_the_token_is_one_line_before_any_data(tmp_path, tiny_data_path, capsys, monkeypatch):
    from recbole_dlrrec.cli.tune import main

    for key, value in _fresh_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    with socket.socket() as head:  # something answers at the address, as a head would
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        status = main(
            [
                "--model=DLRM",
                "--dataset=tiny",
                "--num_samples=2",
                f"--address={address}",
                f"--out_root={tmp_path / 'out'}",
                f"--data_path={tiny_data_path}",
            ]
        )
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert status == 2 and "\n" not in err, err
    assert f"--address={address}: RAY_AUTH_MODE=token but no Ray auth token here" in err
    assert "preparing" not in captured.out and not (tmp_path / "out").exists()


def _ray_start_head(port: int, temp_dir: str, env: dict, block: bool = True):
    return subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            *(["--block"] if block else []),
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(RAY), reason=f"no `ray` command beside {sys.executable}")
def test_search_joins_a_started_head_and_the_head_is_stopped(tmp_path, tiny_data_path):
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # Ray's socket paths must stay short
    env = _fresh_env(tmp_path / "home")
    # A fresh machine: the head refuses to start in token mode without a token ...
    refused = _ray_start_head(port, temp_dir, env, block=False)
    out = refused.communicate(timeout=120)[0]
    assert refused.returncode != 0 and "token" in out.lower(), out[-2000:]
    # ... which `recbole-dlrrec ray-token` makes, readable by this user only.
    made = subprocess.run([*CLI, "ray-token"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    token = tmp_path / "home" / ".ray" / "auth_token"
    assert made.returncode == 0 and str(token) in made.stdout, made.stderr
    assert (os.stat(token).st_mode & 0o777) == 0o600
    head = _ray_start_head(port, temp_dir, env)
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
        command = [
            sys.executable,
            os.path.join(ROOT, "run_tune.py"),
            "--model=DLRM",
            "--dataset=tiny",
            "--num_samples=2",
            "--max_epochs=1",
            f"--space={space}",
            "--name=cluster",
            "--seed=1",
            "--no_test",
            f"--address=127.0.0.1:{port}",
            f"--out_root={out_root}",
            f"--data_path={tiny_data_path}",
        ]
        # A driver whose machine lacks the token: one line, before any data.
        stranger = subprocess.run(
            command,
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            env=_fresh_env(tmp_path / "other_home"),
        )
        assert stranger.returncode == 2 and stranger.stderr.strip().count("\n") == 0, stranger.stderr[-2000:]
        assert "no Ray auth token" in stranger.stderr and not out_root.exists()
        driver = subprocess.run(command, cwd=str(tmp_path), capture_output=True, text=True, timeout=400, env=env)
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


LISTENERS = """
import json, os, sys
import psutil
from recbole_dlrrec.experiments import ray_backend
ray, _ = ray_backend.import_ray(local=True)
with ray_backend.ray_session(ray, None, 1):
    ray.get(ray.remote(lambda: 0).remote())  # a worker too
    mine = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
    found = [(c.laddr.ip, psutil.Process(c.pid).name()) for c in psutil.net_connections(kind="inet")
             if c.status == psutil.CONN_LISTEN and c.pid in mine]
print(json.dumps(found))
"""


@pytest.mark.slow
def test_a_local_search_listens_on_loopback_only_and_leaves_home_alone(tmp_path):
    env = _fresh_env(tmp_path / "home")
    env.pop("RAY_AUTH_MODE")  # Ray's default for a local Ray: token mode, with a token it would make
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    done = subprocess.run(
        [sys.executable, "-c", LISTENERS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found, "no Ray process listening was found"
    exposed = [(ip, name) for ip, name in found if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not exposed, exposed
    assert os.listdir(tmp_path / "home") == []  # no ~/.ray/auth_token made on the way
