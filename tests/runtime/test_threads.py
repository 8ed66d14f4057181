"""use_threads: one call sets torch's and numba's thread counts; threads_within restores both."""

from __future__ import annotations

import numba
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
