"""Training on several processes or machines, through RecBole 1.2.1's own DDP path.

    python run_recbole.py --model=DLRM --dataset=ml-100k --nproc=2                   # one machine
    python run_recbole.py ... --nproc=2 --world_size=4 --ip=HOST0 --port=5678 --offset=0   # on HOST0
    python run_recbole.py ... --nproc=2 --world_size=4 --ip=HOST0 --port=5678 --offset=2   # on HOST1

`launch_run` checks the launch (processes vs cores / GPUs, the port, the world size), builds the
config once in the parent (so a bad key or a missing dataset fails before any process starts,
and a dataset's files are built once, not by every rank), then starts one process per local rank
with torch.multiprocessing.spawn, as RecBole's `run_recboles` does. Each process builds its config
with `local_rank` (and world_size, ip, port, nproc, offset), which makes RecBole's
`Config._init_device` join the process group (gloo on the CPU, NCCL on CUDA: patches.py fix 9),
and runs `quick_start.run`. Global rank = offset + local rank.

What each rank does (RecBole's Trainer with patches.py fixes 7 and 8, fast_loader.py):
  * trains on its own disjoint share of each epoch's shuffled rows (train_batch_size // world_size
    rows per step; DDP averages the gradients, so a step sees train_batch_size rows in all);
  * evaluates its share of the valid/test rows; the rows are gathered and every rank computes the
    metrics once over all of them (AUC over all rows, not an average of per-shard AUCs);
  * global rank 0 alone logs, saves the checkpoint and writes the results JSON; its results are
    returned to the parent. On a machine without rank 0 `launch_run` returns None.
  * on the CPU, uses cores / nproc torch threads (unless OMP_NUM_THREADS is set).
Models start from rank 0's weights (DDP broadcasts them). With `fast_dataloader: false` RecBole's
own loaders shard through torch's DistributedSampler, whose shuffle seed is its default 0 plus the
epoch, not the config's seed (RecBole 1.2.1 passes none); the fast loaders use seed + epoch.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Optional, Sequence

from recbole_dlrrec.errors import InputError
from recbole_dlrrec.patches import global_rank


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
        return {"world_size": self.total, "ip": self.ip, "port": self.port, "nproc": self.nproc,
                "offset": self.offset, "local_rank": local_rank}


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
        raise LaunchError(f"--nproc={launch.nproc} is more than this machine's {gpus} GPUs (gpu_id={config['gpu_id']!r})")


def is_main_process(config) -> bool:
    """Global rank 0 (every single-process run): the one that logs and writes results."""
    return global_rank(config) == 0


def init_rank_logger(config) -> None:
    """RecBole's logger (console + log file) on global rank 0; errors only, no file, elsewhere."""
    if is_main_process(config):
        from recbole.utils import init_logger

        init_logger(config)
        return
    logging.basicConfig(level=logging.ERROR, force=True)


def prepare_trainer(config, trainer) -> None:
    """Distributed: every rank uses rank 0's checkpoint path (RecBole stamps it with each
    process's own clock, so ranks could disagree by a second)."""
    if config["single_spec"]:
        return
    import torch.distributed as dist

    path = [trainer.saved_model_file]
    dist.broadcast_object_list(path, src=0)
    trainer.saved_model_file = path[0]


def share_cores(nproc: int) -> int:
    """Give each of this machine's `nproc` ranks its share of the cores as torch CPU threads (each
    process would otherwise start one thread per core, and the ranks would fight over them), unless
    the user set OMP_NUM_THREADS. Returns the thread count."""
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, nproc)))
    return torch.get_num_threads()


def _worker(local_rank: int, launch: Launch, model: str, dataset: Optional[str], files: Sequence[str],
            overrides: dict, result_file: Optional[str], saved: bool, queue) -> None:
    """One rank: build its config (joins the process group), run, hand rank 0's results back."""
    import sys

    import torch.distributed as dist

    from recbole_dlrrec.runtime.quick_start import build_config, run

    share_cores(launch.nproc)
    try:
        config = build_config(model, dataset, files, {**overrides, **launch.config_keys(local_rank)}, prepare=False)
        results = run(model, config=config, saved=saved, result_file=result_file)
        if is_main_process(config):
            queue.put(("results", results))
    except InputError as exc:
        queue.put(("input_error", str(exc)))
        sys.exit(2)  # spawn then stops the other ranks; the parent turns the message into a LaunchError
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(launch: Launch, model: str, dataset: Optional[str] = None, files: Sequence[str] = (),
                    overrides: Optional[dict] = None, result_file: Optional[str] = None,
                    saved: bool = True) -> Optional[dict]:
    """Check the launch, prepare the data once, spawn `launch.nproc` ranks and wait for them.

    Returns global rank 0's results (quick_start.run's dict), or None on a machine without rank 0.
    Raises LaunchError (an InputError) before any process starts when the launch cannot work, and
    when a rank stops on an InputError (after the other ranks were stopped).
    """
    import torch.multiprocessing as mp

    from recbole_dlrrec.runtime.quick_start import build_config

    overrides = dict(overrides or {})
    check_launch(launch)
    check_devices(launch, build_config(model, dataset, files, overrides))  # also builds the dataset's files
    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_worker, args=(launch, model, dataset, list(files), overrides, result_file, saved, queue),
                 nprocs=launch.nproc, join=True)
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


def launch_run(launch: Launch, model: str, dataset: Optional[str] = None, files: Sequence[str] = (),
               overrides: Optional[dict] = None, result_file: Optional[str] = None) -> Optional[dict]:
    """quick_start.run in this process for a one-process launch, else `run_distributed`."""
    if not launch.distributed:
        from recbole_dlrrec.runtime.quick_start import run

        return run(model, dataset, list(files), overrides, result_file=result_file)
    return run_distributed(launch, model, dataset, files, overrides, result_file)
