"""Text encoding on a Ray cluster (Ray Data actors holding the model): a local head started here,
as the tuning cluster test starts one; the vectors are the bytes of the in-process path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tests.experiments.test_ray_cluster import (
    CLI,
    RAY,
    ROOT,
    _free_port,
    _fresh_env,
    _processes_mentioning,
    _ray_start_head,
)

DRIVER = """
import json, sys
import numpy as np
from recbole_dlrrec.data import encode_ray
from recbole_dlrrec.data.encoder import TextEncoder

runs = []
original = encode_ray.encode_on_ray
encode_ray.encode_on_ray = lambda *args: (runs.append(len(args[3])), original(*args))[1]
texts = json.loads(sys.argv[2])
with TextEncoder(batch_size=4, use_cache=False, show_progress=False, ray_address=sys.argv[1]) as enc:
    on_ray = enc.encode(texts)
with TextEncoder(batch_size=4, use_cache=False, show_progress=False, workers=1) as enc:
    here = enc.encode(texts)
print(json.dumps({"chunks_on_ray": runs, "same_bytes": on_ray.tobytes() == here.tobytes(),
                  "shape": list(on_ray.shape), "max_diff": float(np.abs(on_ray - here).max())}))
"""


def _wait_for_port(port: int, head: subprocess.Popen) -> None:
    deadline = time.time() + 90
    while True:  # the head's GCS port accepts connections once it is up
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert head.poll() is None, head.stdout.read() if head.stdout else ""
            assert time.time() < deadline, "the Ray head did not start within 90 s"
            time.sleep(1)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(RAY), reason=f"no `ray` command beside {sys.executable}")
def test_encoding_on_a_started_head_gives_the_in_process_bytes(tmp_path):
    texts = [f"Review {i}: " + "good food and friendly staff " * (1 + i % 4) for i in range(24)]
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="raye-", dir="/tmp")  # Ray's socket paths must stay short
    env = _fresh_env(tmp_path / "home")
    made = subprocess.run([*CLI, "ray-token"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    head = _ray_start_head(port, temp_dir, env)
    try:
        _wait_for_port(port, head)
        driver = subprocess.run(
            [sys.executable, "-c", DRIVER, f"127.0.0.1:{port}", json.dumps(texts)],
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
        )
        assert driver.returncode == 0, driver.stdout[-2000:] + driver.stderr[-3000:]
        result = json.loads(driver.stdout.strip().splitlines()[-1])
        assert result["shape"] == [24, 384] and result["chunks_on_ray"] and sum(result["chunks_on_ray"]) >= 6
        assert result["same_bytes"], result
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
        for proc in left:
            try:
                proc.kill()
            except Exception:  # noqa: BLE001  (gone already)
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not left


def test_an_address_where_nothing_answers_is_one_input_error_before_any_encoding(tmp_path):
    from recbole_dlrrec.data.encoder import TextEncoder
    from recbole_dlrrec.errors import InputError

    class NeverCalled:
        tokenize = None

        def encode(self, *args, **kwargs):
            raise AssertionError("encoded although the cluster is unreachable")

    port = _free_port()
    enc = TextEncoder(show_progress=False, use_cache=False, ray_address=f"127.0.0.1:{port}")
    enc._model = NeverCalled()
    with pytest.raises(InputError, match=f"127.0.0.1:{port}: no Ray cluster answers there"):
        enc.encode(["some text"])
