"""What each rank of a distributed run does inside quick_start.run (RecBole's Trainer with
patches.py fixes 7 and 8, fast_loader.py); starting the ranks is launcher.py's job.

  * trains on its own disjoint share of each epoch's shuffled rows (train_batch_size // world_size
    rows per step; DDP averages the gradients, so a step sees train_batch_size rows in all);
  * evaluates its share of the valid/test rows; the rows are gathered and every rank computes the
    metrics once over all of them (AUC over all rows, not an average of per-shard AUCs);
  * global rank 0 alone logs, saves the checkpoint and writes the results JSON;
  * on the CPU, uses cores / nproc torch threads (unless OMP_NUM_THREADS is set).
Models start from rank 0's weights (DDP broadcasts them). With `fast_dataloader: false` RecBole's
own loaders shard through torch's DistributedSampler, whose shuffle seed is its default 0 plus the
epoch, not the config's seed (RecBole 1.2.1 passes none); the fast loaders use seed + epoch.
"""

from __future__ import annotations

import logging
import os

from recbole_dlrrec.patches import global_rank


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
