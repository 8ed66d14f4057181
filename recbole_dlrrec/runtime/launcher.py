"""Starting a run: in this process, or on several processes or machines through RecBole 1.2.1's
own DDP path. Sits above quick_start (each process runs `quick_start.run`); what a rank does
inside the run is in distributed.py, below quick_start.

    python run_recbole.py --model=DLRM --dataset=ml-100k --nproc=2                   # one machine
    python run_recbole.py ... --nproc=2 --world_size=4 --ip=HOST0 --port=5678 --offset=0   # on HOST0
    python run_recbole.py ... --nproc=2 --world_size=4 --ip=HOST0 --port=5678 --offset=2   # on HOST1

`launch_run` checks the launch (processes vs cores / GPUs, the port, the world size), builds the
config once in the parent (so a bad key or a missing dataset fails before any process starts,
and a dataset's files are built once, not by every rank), then starts one process per local rank
with torch.multiprocessing.spawn, as RecBole's `run_recboles` does. Each process builds its config
with `local_rank` (and world_size, ip, port, nproc, offset), which makes RecBole's
`Config._init_device` join the process group (gloo on the CPU, NCCL on CUDA: patches.py fix 9),
and runs `quick_start.run`. Global rank = offset + local rank; global rank 0's results come back
to the parent, and on a machine without rank 0 `launch_run` returns None.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Optional, Sequence

from recbole_dlrrec.errors import InputError
from recbole_dlrrec.runtime import quick_start
from recbole_dlrrec.runtime.distributed import is_main_process, share_cores


class LaunchError(InputError):
    """A distributed launch that cannot start: too many processes, a busy port, a bad world size."""


@dataclass(frozen=True)
class Launch:
    """How many processes, and where they meet (RecBole's nproc / world_size / ip / port / offset).

    Args:
        nproc: processes started on this machine (one per core or GPU).
        world_size: processes over all machines; -1 = nproc (one machine).
        ip: address of the machine that runs global rank 0 (it listens on `port`).
        port: TCP port of the rendezvous on that machine.
        offset: global rank of this machine's first process.
    """

    nproc: int = 1
    world_size: int = -1
    ip: str = "localhost"
    port: int = 5678
    offset: int = 0

    @property
    def distributed(self) -> bool:
        """RecBole's rule: one process unless nproc > 1 or a world size is given."""
        return self.nproc != 1 or self.world_size > 0

    @property
    def total(self) -> int:
        return self.nproc if self.world_size == -1 else self.world_size

    def config_keys(self, local_rank: int) -> dict:
        """The keys that make RecBole's Config join the process group as `local_rank`."""
        return {
            "world_size": self.total,
            "ip": self.ip,
            "port": self.port,
            "nproc": self.nproc,
            "offset": self.offset,
            "local_rank": local_rank,
        }


def port_is_free(port: int) -> bool:
    """True when nothing on this machine listens on `port` (bound on all IPv4 addresses, as the
    rendezvous store will be)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is not "busy"
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def check_launch(launch: Launch) -> None:
    """Raise LaunchError for a launch that cannot start; cheap checks only (no config, no data)."""
    if launch.nproc < 1:
        raise LaunchError(f"--nproc must be >= 1, got {launch.nproc}")
    cores = os.cpu_count() or 1
    if launch.nproc > cores:
        raise LaunchError(f"--nproc={launch.nproc} is more than this machine's {cores} cores")
    if launch.world_size != -1 and launch.world_size < launch.nproc:
        raise LaunchError(f"--world_size={launch.world_size} is less than --nproc={launch.nproc}")
    if launch.offset < 0 or launch.offset + launch.nproc > launch.total:
        raise LaunchError(
            f"--offset={launch.offset} with --nproc={launch.nproc} gives ranks past --world_size={launch.total}"
        )
    if not 0 < launch.port < 65536:
        raise LaunchError(f"--port must lie in 1..65535, got {launch.port}")
    if launch.offset == 0 and not port_is_free(launch.port):  # rank 0's machine listens on it
        raise LaunchError(f"--port={launch.port} is already in use on this machine; pick another --port")


def check_devices(launch: Launch, config) -> None:
    """Raise LaunchError when the run is on CUDA and this machine has fewer GPUs than --nproc."""
    import torch

    if not launch.distributed or not (config["gpu_id"] and config["use_gpu"] and torch.cuda.is_available()):
        return
    gpus = torch.cuda.device_count()
    if launch.nproc > gpus:
        raise LaunchError(
            f"--nproc={launch.nproc} is more than this machine's {gpus} GPUs (gpu_id={config['gpu_id']!r})"
        )


def _worker(
    local_rank: int,
    launch: Launch,
    model: str,
    dataset: Optional[str],
    files: Sequence[str],
    overrides: dict,
    result_file: Optional[str],
    saved: bool,
    queue,
) -> None:
    """One rank: build its config (joins the process group), run, hand rank 0's results back."""
    import sys

    import torch.distributed as dist

    share_cores(launch.nproc)
    try:
        config = quick_start.build_config(
            model, dataset, files, {**overrides, **launch.config_keys(local_rank)}, prepare=False
        )
        results = quick_start.run(model, config=config, saved=saved, result_file=result_file)
        if is_main_process(config):
            queue.put(("results", results))
    except InputError as exc:
        queue.put(("input_error", str(exc)))
        sys.exit(2)  # spawn then stops the other ranks; the parent turns the message into a LaunchError
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(
    launch: Launch,
    model: str,
    dataset: Optional[str] = None,
    files: Sequence[str] = (),
    overrides: Optional[dict] = None,
    result_file: Optional[str] = None,
    saved: bool = True,
) -> Optional[dict]:
    """Check the launch, prepare the data once, spawn `launch.nproc` ranks and wait for them.

    Returns global rank 0's results (quick_start.run's dict), or None on a machine without rank 0.
    Raises LaunchError (an InputError) before any process starts when the launch cannot work, and
    when a rank stops on an InputError (after the other ranks were stopped).
    """
    import torch.multiprocessing as mp

    overrides = dict(overrides or {})
    check_launch(launch)
    check_devices(launch, quick_start.build_config(model, dataset, files, overrides))  # also builds the dataset's files
    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(
            _worker,
            args=(launch, model, dataset, list(files), overrides, result_file, saved, queue),
            nprocs=launch.nproc,
            join=True,
        )
    except mp.ProcessExitedException:
        while not queue.empty():
            kind, payload = queue.get()
            if kind == "input_error":
                raise LaunchError(payload) from None
        raise
    results = None
    while not queue.empty():
        kind, payload = queue.get()
        if kind == "results":
            results = payload
    return results


def launch_run(
    launch: Launch,
    model: str,
    dataset: Optional[str] = None,
    files: Sequence[str] = (),
    overrides: Optional[dict] = None,
    result_file: Optional[str] = None,
) -> Optional[dict]:
    """quick_start.run in this process for a one-process launch, else `run_distributed`."""
    if not launch.distributed:
        return quick_start.run(model, dataset, list(files), overrides, result_file=result_file)
    return run_distributed(launch, model, dataset, files, overrides, result_file)
