"""Stop the local Ray of a tuning driver when that driver ends, however it ends.

    python ray_reaper.py RAY_TEMP_DIR RAY_PACKAGE_DIR DRIVER_PID    # started by experiments/ray_backend.py

Ray's head processes (gcs_server, raylet, ...) die with the driver that started them, but not
all of them: after a ``kill -9`` of the driver, Ray 2.6's dashboard agent (a child of the raylet)
lived on, orphaned. A driver can clean up after Ctrl-C or SIGTERM (``ray.shutdown()`` in a
``finally``), never after SIGKILL, so this watcher does it from outside:

- the driver starts it before ``ray.init`` with a pipe on its stdin, in a session of its own
  (a Ctrl-C on the terminal reaches the driver, not the watcher);
- while the driver lives, every second it notes the driver's descendants that belong to Ray:
  a command line that mentions the run's own Ray temp folder or Ray's package folder, or a Ray
  worker's title (``ray::...``);
- when the pipe closes (the driver exited, or was killed: the kernel closes its end), it sends
  SIGTERM to every such process still alive (noted, or found by the temp folder in its command
  line), SIGKILL a few seconds later to those left, and deletes the temp folder, which the
  driver made for this run alone.

It imports nothing but the standard library and psutil (a dependency of Ray), and never the
package (it runs as a script).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
from typing import Dict

import psutil

POLL_S = 1.0  # how often the driver's descendants are noted
GRACE_S = 5.0  # SIGTERM -> SIGKILL


def is_ray_process(cmdline, temp_dir: str, ray_dir: str) -> bool:
    text = " ".join(cmdline or ())
    return temp_dir in text or ray_dir in text or text.startswith("ray::")


def _note_descendants(driver: psutil.Process, temp_dir: str, ray_dir: str, noted: Dict[int, psutil.Process]) -> None:
    try:
        children = driver.children(recursive=True)
    except psutil.Error:  # the driver is gone
        return
    me = os.getpid()  # a child of the driver too, whose command line names both folders
    for child in children:
        try:
            if child.pid not in noted and child.pid != me and is_ray_process(child.cmdline(), temp_dir, ray_dir):
                noted[child.pid] = child
        except psutil.Error:
            continue


def sweep(temp_dir: str, noted: Dict[int, psutil.Process]) -> int:
    """Terminate, then kill, the noted processes still alive and every process whose command line
    names `temp_dir`. Returns how many were still alive."""
    me = os.getpid()
    targets = {pid: proc for pid, proc in noted.items() if pid != me and proc.is_running()}  # is_running: no reused pid
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid != me and temp_dir in " ".join(proc.info.get("cmdline") or ()):
            targets.setdefault(proc.pid, proc)
    alive = list(targets.values())
    for proc in alive:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=GRACE_S)
    return len(alive)


def main(argv) -> int:
    temp_dir, ray_dir, driver_pid = argv[0], argv[1], int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C; this one must outlive it
    # A driver already dead has left this process to init (or a subreaper), whose descendants
    # are not this run's: then only the temp folder names what to stop.
    driver = psutil.Process(driver_pid) if os.getppid() == driver_pid else None
    noted: Dict[int, psutil.Process] = {}
    stdin = sys.stdin.buffer
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_S)
        if ready and not os.read(stdin.fileno(), 4096):  # EOF: the driver is gone or done
            break
        if driver is not None and os.getppid() == driver_pid:
            _note_descendants(driver, temp_dir, ray_dir, noted)
    sweep(temp_dir, noted)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
