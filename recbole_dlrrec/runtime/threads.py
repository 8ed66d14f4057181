"""The one owner of CPU thread counts: torch's intra-op pool and numba's (SWING kernels).

numba's parallel kernels and torch share the OpenMP runtime, so a numba launch on more threads
than torch's also widens torch's later parallel regions; on a shared machine that thrashes
(10x slower epochs on a busy 2-core machine). `use_threads(n)` caps both together. It is called
by the CLIs (before any work) and by the per-cell / per-trial worker entry points; nothing else
sets thread counts. (swing/kernels.py narrows numba to one thread around small kernels and
restores the count afterwards, and puts back torch's count, which numba's pool start changes.)
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator


def use_threads(threads: int) -> int:
    """Run torch and numba on `threads` CPU threads (at least 1). Returns the count used.

    Before numba is first imported, this also sets NUMBA_NUM_THREADS, the size of numba's pool,
    so that a later launch cannot start more threads than asked for. Once numba is loaded its
    pool size is fixed, and the count is capped at it.
    """
    threads = max(1, int(threads))
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    numba: Any
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with the SWING module's requirements
        numba = None
    if numba is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    import torch

    # After numba's: numba's first call starts its pool, which (OpenMP layer) sets OpenMP's
    # thread count to NUMBA_NUM_THREADS, and torch reads that back as its own.
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def threads_within(threads: int) -> Iterator[int]:
    """`use_threads(threads)` inside the block; torch's and numba's counts as before afterwards."""
    import torch

    torch_before = torch.get_num_threads()  # before numba's: its pool's start changes torch's count
    numba = sys.modules.get("numba")
    before = torch_before, numba.get_num_threads() if numba is not None else None
    try:
        yield use_threads(threads)
    finally:
        # numba first, torch last (see use_threads).
        if numba is not None and before[1] is not None:
            numba.set_num_threads(before[1])
        torch.set_num_threads(before[0])
