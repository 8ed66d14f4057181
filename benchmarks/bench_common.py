"""What the benchmarks share: the machine they ran on, peak memory, a straight-line fit, quiet
logs and a device sync. Importing it also puts the checkout on sys.path when the package is
not installed, so the scripts run from a plain clone (python benchmarks/bench_*.py).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import warnings
from typing import List, Optional

import numpy as np

try:
    import recbole_dlrrec  # noqa: F401  (only to find it; importing it changes nothing)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine_info(device: str) -> dict:
    """The CPU, core count, Python, torch and its threads, the device (and GPU), niceness and load."""
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "niceness": os.nice(0),
    }
    with contextlib.suppress(OSError):
        info["load_avg"] = os.getloadavg()
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class PeakRSS:
    """Highest resident set size of this process while the context is open (sampled every 20 ms;
    the ru_maxrss of the process is the better number for whole-process peaks)."""

    def __init__(self, interval: float = 0.02):
        try:
            import psutil

            self._rss = psutil.Process().memory_info
        except ImportError:  # without psutil: the process's peak so far (ru_maxrss)
            self._rss = None
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _now(self) -> int:
        return self._rss().rss if self._rss else int(max_rss_mib() * 2**20)

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._now())
            self._stop.wait(self._interval)

    def __enter__(self):
        self.peak = self._now()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def linear_fit(xs: List[float], ys: List[float]) -> Optional[dict]:
    if len(xs) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return {"slope": float(slope), "intercept": float(intercept)}


def quiet() -> None:
    """Only errors from warnings and the loggers of RecBole and the plugin (a worker's output is its JSON)."""
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    for name in ("recbole_dlrrec", "recbole_dlrrec.swing.cache"):
        logging.getLogger(name).setLevel(logging.ERROR)


def sync(device: str) -> None:
    """Wait for the device (CUDA kernels run asynchronously), so a timer stops after the work."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
