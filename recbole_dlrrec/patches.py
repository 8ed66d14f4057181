"""Every fix RecBole 1.2.1 needs on today's numpy / pandas / torch, in one place.

RecBole 1.2.1 is the last release and is not maintained for current libraries. Each fix below
names the failure it prevents; `apply()` installs them all, once, and is called by
`import recbole_dlrrec`. Nothing here changes RecBole's results: the fixes restore behaviour that
RecBole had on the library versions it was written for.

1. numpy 2 removed `np.float_`, `np.complex_` and `np.unicode_`. RecBole's
   `Config.compatibility_settings` reads them to re-create the numpy-1.20 aliases
   (`np.float`, `np.long`, ...) that its code still uses, so `Config(...)` crashes on numpy 2.
   We define the three missing names as the numpy-2 spellings of the same types.

2. torch >= 2.6 loads checkpoints with `weights_only=True` by default. RecBole's
   `Trainer._save_checkpoint` pickles the whole `Config` object into the checkpoint, so
   `Trainer.evaluate(load_best_model=True)` and `Trainer.resume_checkpoint` fail with an
   UnpicklingError. We do NOT lower `weights_only` anywhere. Instead the checkpoint is written
   so that it loads with `weights_only=True`: the `Config` object is replaced by a plain dict of
   the few keys RecBole reads back (`model`, `dataset`), and every scalar is a Python number.
   The file is also written atomically (temporary file, then rename), so a run killed mid-save
   never leaves a truncated "best model".

3. pandas 3 breaks RecBole's token_seq remapping (it relies on object-dtype semantics that
   changed). There is no small patch that keeps RecBole's own code path intact, so pandas is
   pinned below 3 (`requirements.txt`); `check_versions()` raises a clear error otherwise.

4. Not a RecBole bug, but a fix every run needs here: numba's parallel SWING kernels and torch
   share the OpenMP runtime, whose default busy-waiting threads made training after an in-process
   SWING computation up to 10x slower on a shared 2-core machine. `OMP_WAIT_POLICY=PASSIVE` is
   set (unless the user set it) before torch is first imported through this package.

5. RecBole pins `ray<=2.6.3`, whose import needs `pkg_resources` (setuptools < 81) and numpy < 2.
   Only `recbole.quick_start` imports ray. The plugin never imports `recbole.quick_start`, so the
   training path (config, dataset, model, trainer) runs without ray; only `run_tune.py` needs it.

6. Not a RecBole bug either: glibc's malloc hands freed memory back to the kernel as soon as
   128 KiB sit free at the top of the heap, and serves blocks of a few MiB by fresh mmap calls,
   so a CPU training step that frees its activations and gradients (MiBs each) page-faults them
   all back in on the next step. Measured in fresh processes on the 2-core benchmark machine:
   DLRREC's step 39 -> 31 ms, RecBole's DeepFM 28 -> 25 ms (restaurants, batch 4096) with the
   heap kept. `mallopt` keeps up to 256 MiB of freed heap and serves blocks up to 32 MiB from
   it, on glibc only, and only when the user set no GLIBC_TUNABLES / MALLOC_*_ variables.

7. RecBole's distributed path (`Config._init_device` when `local_rank` is set) hard-codes
   `backend="nccl"`, sets a CUDA device and asserts one GPU id per process, so it cannot run on
   CPUs at all; its Trainer then wraps the model in DDP with `device_ids=[local_rank]`, which
   DDP refuses for a CPU module. We pick the backend from the device (gloo on the CPU, NCCL on
   CUDA), give DDP no device ids on the CPU, quiet every rank but global rank 0 (RecBole
   quieted local rank 0 of every machine), save the checkpoint on global rank 0 only, and let
   no other rank open a tensorboard writer.

8. RecBole's distributed evaluation shards the valid/test rows over the ranks (a
   DistributedSampler that pads the last ranks by repeating rows), computes every metric per
   shard and averages the shard values (`Trainer._map_reduce`, weighted by 4 x batches). AUC
   over all rows is not an average of per-shard AUCs, and padded rows count twice. We gather
   the collected rows (scores, labels, top-k rows) of every rank instead, drop the padding,
   restore the file order, and let every rank compute the metrics once over all rows, so a
   distributed evaluation returns what one process returns on the same model. The best model
   of `evaluate(load_best_model=True)` is read by global rank 0 after a barrier (the other
   ranks, possibly on other machines, need not see the file) and broadcast.
"""
from __future__ import annotations

import os

from recbole_dlrrec.atomic import atomic_path

_APPLIED = False


def _numpy_aliases() -> None:
    """Fix 1: give numpy 2 the names RecBole's Config reads."""
    import numpy as np

    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


def _atomic_torch_save(obj, path: str) -> None:
    """torch.save to a temporary file beside `path`, then rename over it."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)  # default protocol: the weights_only unpickler rejects protocol 4


def _plain_number(value):
    """Turn numpy / torch scalars into Python numbers, which weights_only loading accepts."""
    if value is None or isinstance(value, (int, float, bool)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def weights_only_checkpoint(trainer, epoch: int) -> dict:
    """The state RecBole's Trainer saves, in a form `torch.load(weights_only=True)` accepts."""
    return {
        # RecBole reads back only checkpoint["config"]["model"] (resume_checkpoint).
        "config": {"model": str(trainer.config["model"]), "dataset": str(trainer.config["dataset"])},
        "epoch": int(epoch),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": _plain_number(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
    }


def _weights_only_checkpoints() -> None:
    """Fix 2: RecBole's Trainer saves checkpoints that load under torch's weights_only default."""
    from recbole.trainer.trainer import Trainer
    from recbole.utils import set_color

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if global_rank(self.config) != 0:  # fix 7: one checkpoint, on global rank 0
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        _atomic_torch_save(weights_only_checkpoint(self, epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    _save_checkpoint.__doc__ = "Atomic, weights_only-loadable replacement (recbole_dlrrec.patches)."
    Trainer._save_checkpoint = _save_checkpoint


def global_rank(config) -> int:
    """This process's rank over all machines (RecBole: local_rank + offset); 0 when not distributed."""
    if config["single_spec"]:
        return 0
    return int(config["local_rank"]) + int(config["offset"] or 0)


def _distributed_init_device() -> None:
    """Fix 7: RecBole's distributed start-up on the CPU (gloo) as well as on CUDA (NCCL)."""
    from recbole.config import Config

    single_process_init = Config._init_device

    def _init_device(self):
        settings = self.final_config_dict
        if "local_rank" not in settings:
            return single_process_init(self)
        import torch
        import torch.distributed as dist

        gpu_id = settings["gpu_id"]
        gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
        settings["gpu_id"] = gpu_id
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
        # The device rule of RecBole's single-process path, plus use_gpu: false.
        on_cuda = bool(gpu_id) and bool(settings.get("use_gpu", True)) and torch.cuda.is_available()
        local_rank = int(settings["local_rank"])
        settings["offset"] = int(settings.get("offset") or 0)
        rank = local_rank + settings["offset"]
        if not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if on_cuda else "gloo",
                rank=rank,
                world_size=int(settings["world_size"]),
                init_method=f"tcp://{settings['ip']}:{settings['port']}",
            )
        if on_cuda:
            torch.cuda.set_device(local_rank)
        settings["device"] = torch.device("cuda", local_rank) if on_cuda else torch.device("cpu")
        settings["single_spec"] = False
        if rank != 0:
            settings["state"] = "error"
            settings["show_progress"] = False
            settings["verbose"] = False

    _init_device.__doc__ = "gloo on the CPU, NCCL on CUDA (recbole_dlrrec.patches, fix 7)."
    Config._init_device = _init_device


class _NoTensorboard:
    """Stands in for a SummaryWriter on ranks other than 0: nothing written."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _distributed_trainer() -> None:
    """Fix 7: DDP around a CPU model; no tensorboard files from ranks other than 0."""
    import torch
    from recbole.trainer import trainer as trainer_module
    from torch.nn.parallel import DistributedDataParallel

    def __init__(self, config, model):
        self.config = config
        self.model = model
        if not config["single_spec"]:
            on_cuda = torch.device(config["device"]).type == "cuda"
            if on_cuda:  # SyncBatchNorm runs on accelerators only
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[config["local_rank"]] if on_cuda else None
            )

    __init__.__doc__ = "DDP with device ids on CUDA only (recbole_dlrrec.patches, fix 7)."
    trainer_module.AbstractTrainer.__init__ = __init__
    rank_zero_tensorboard = trainer_module.get_tensorboard

    def get_tensorboard(logger):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return _NoTensorboard()
        return rank_zero_tensorboard(logger)

    trainer_module.get_tensorboard = get_tensorboard


# Collector keys with one row per evaluated sampler index (user or interaction), per rank.
_ROW_KEYS = ("rec.items", "rec.topk", "rec.meanrank", "rec.score", "data.label")


def gather_rows(rows, n_total: int):
    """Every rank's `rows` (k-th row of rank r = sampler index r + k * world_size, the layout of
    torch's DistributedSampler and of the fast loaders) as one tensor in index order, indices
    >= `n_total` (DistributedSampler's padding) dropped. Collective: every rank must call it.

    Shapes: rows [n_r, ...] on this rank -> [n_total, ...] on every rank.
    """
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = torch.cat(counts)
    longest = int(counts.max())
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    # stacked[k, r] is sampler index k * world + r, so the flat order is the index order.
    flat = torch.stack(parts, dim=1).reshape(longest * world, *rows.shape[1:])
    filled = (torch.arange(longest, device=rows.device)[:, None] < counts[None, :]).reshape(-1)
    in_range = torch.arange(longest * world, device=rows.device) < n_total
    return flat[filled & in_range]


def _gathered_evaluation() -> None:
    """Fix 8: distributed metrics over all rows, computed once; the best model from rank 0."""
    import torch
    import torch.distributed as dist
    from recbole.evaluator.collector import Collector
    from recbole.trainer.trainer import Trainer

    evaluate_rows = Trainer.evaluate
    collector_struct = Collector.get_data_struct

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if self.config["single_spec"] or not eval_data:
            return evaluate_rows(self, eval_data, load_best_model, model_file, show_progress)
        if load_best_model:
            dist.barrier()  # rank 0 has finished writing the checkpoint
            checkpoint_file = model_file or self.saved_model_file
            other = [None]
            if dist.get_rank() == 0:
                checkpoint = torch.load(checkpoint_file, map_location=self.device)
                self.model.load_state_dict(checkpoint["state_dict"])
                other = [checkpoint.get("other_parameter")]
                self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)
            dist.broadcast_object_list(other, src=0)
            self.model.load_other_parameter(other[0])
        self.eval_collector.distributed_rows = eval_data.sample_size
        try:
            return evaluate_rows(self, eval_data, False, model_file, show_progress)
        finally:
            self.eval_collector.distributed_rows = None

    def get_data_struct(self):
        n_total = getattr(self, "distributed_rows", None)
        if n_total is not None:
            for key in _ROW_KEYS:
                if key in self.data_struct:
                    self.data_struct._data_dict[key] = gather_rows(self.data_struct._data_dict[key], n_total)
        return collector_struct(self)

    def _map_reduce(self, result, num_sample):
        return result  # every rank computed the metrics over all rows (get_data_struct)

    evaluate.__doc__ = "All ranks' rows, one metric computation (recbole_dlrrec.patches, fix 8)."
    Trainer.evaluate = torch.no_grad()(evaluate)
    Trainer._map_reduce = _map_reduce
    Collector.get_data_struct = get_data_struct


def check_versions() -> None:
    """Fix 3: fail early, with the reason, on a pandas RecBole 1.2.1 cannot run on."""
    import pandas as pd

    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"recbole_dlrrec: pandas {pd.__version__} is installed, but RecBole 1.2.1's token_seq "
            "remapping fails on pandas 3; install pandas>=2.2,<3 (see requirements.txt)."
        )


def keep_freed_heap() -> bool:
    """Fix 6: tell glibc's malloc to keep freed heap for reuse. True when it was set."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ or any(
        key.startswith("MALLOC_") and key.endswith("_") for key in os.environ
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def apply() -> None:
    """Install every fix once. Safe to call many times."""
    global _APPLIED
    if _APPLIED:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # fix 4; no effect once torch has started OpenMP
    keep_freed_heap()  # fix 6
    check_versions()
    _numpy_aliases()
    _weights_only_checkpoints()
    _distributed_init_device()  # fix 7
    _distributed_trainer()  # fix 7
    _gathered_evaluation()  # fix 8
    _APPLIED = True
