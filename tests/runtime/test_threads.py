"""use_threads: one call sets torch's and numba's thread counts; threads_within restores both."""

from __future__ import annotations

import os

import numba
import pytest
import torch

from recbole_dlrrec.runtime.threads import threads_within, use_threads


def test_use_threads_sets_torch_and_numba_and_threads_within_restores():
    numba_before = numba.get_num_threads()  # first: starting numba's pool may widen OpenMP's count
    before = torch.get_num_threads(), numba_before
    try:
        with threads_within(2):
            assert torch.get_num_threads() == 2
            assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        assert (torch.get_num_threads(), numba.get_num_threads()) == before
        assert use_threads(0) == 1  # at least one thread
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before[1])
        torch.set_num_threads(before[0])


@pytest.mark.slow
def test_building_dlrrec_leaves_torchs_thread_count_as_it_was(tmp_path):
    """numba's pool, started by the SWING kernels' first thread query, sets OpenMP's count and so
    torch's: building DLRREC changed the thread count (so the float sums, so the numbers) of every
    model trained after it in the process (found as a test whose bytes depended on the tests run
    before it). A fresh process, since this process's pool may have started already."""
    import subprocess
    import sys

    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (
        "import sys, torch\n"
        f"sys.path.insert(0, {tests_dir!r})\n"
        "torch.set_num_threads(1)\n"
        "from conftest import write_tiny_dataset\n"
        "from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits\n"
        f"path = write_tiny_dataset({str(tmp_path)!r})\n"
        "config = build_config('DLRREC', 'tiny', config_dict={'data_path': path, 'cl_similarity': 'swing'})\n"
        "_, train, _, _ = load_splits(config)\n"
        "build_model(config, train)\n"
        "print('threads', torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "threads 1" in out.stdout.splitlines()[-1]
