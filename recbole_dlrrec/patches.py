"""Every fix RecBole 1.2.1 needs on today's numpy / pandas / torch, in one place.

RecBole 1.2.1 is the last release and is not maintained for current libraries. Importing
recbole_dlrrec (or any of its modules) changes NO process-wide state: the fixes below are
installed by one explicit call, `apply()`, which runs each of them once (a second call does
nothing). Who calls it: every CLI's main (before torch is imported, so fix 4 takes effect),
and each entry point that touches RecBole as a cheap guard: the config stack's build_config,
the converter's check_loads_in_recbole, the plugin models' constructors and the benchmarks.
A library user who builds RecBole objects directly calls `recbole_dlrrec.patches.apply()` first.

Each fix is one function below, listed in `PATCHES`; its docstring names the failure it
prevents. Nothing here changes RecBole's results: the fixes restore behaviour that RecBole had
on the library versions it was written for, or add what the plugin needs (its metrics, a
Config that does not re-read the command line).

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

3. pandas 3 (copy-on-write, new `Series.agg`) breaks RecBole's `Dataset` in three places; each
   has its own function below, installed on every pandas (they are no-ops in effect on pandas 2):
   a. `_fill_nan` fills missing values with the chained `feat[field].fillna(..., inplace=True)`,
      which on pandas 3 fills a temporary copy: missing floats stay NaN and missing tokens are
      not set to padding, silently. `fill_missing_values` is `_fill_nan` with assignments.
   b. `_load_feat` fills empty token_seq / float_seq cells the same chained way (pandas 3 fills a
      copy and warns ChainedAssignmentError), then splits each cell as a string: an empty cell
      stays NaN and loading fails (`'float' object has no attribute 'split'`).
      `load_feature_file` is `_load_feat` reading an empty cell as an empty sequence.
   c. RecBole takes per-row sequence lengths with `series.agg(len)` (token_seq remapping,
      float_seq normalization / discretization). pandas 2 applied `len` to each row; pandas 3
      applies it to the whole Series, so the remap splits all ids into one row and fails.
      `_per_row_agg_len` restores the per-row meaning for calls made from RecBole's code only.

4. Not a RecBole bug, but a fix every run needs here: numba's parallel SWING kernels and torch
   share the OpenMP runtime, whose default busy-waiting threads made training after an in-process
   SWING computation up to 10x slower on a shared 2-core machine. `OMP_WAIT_POLICY=PASSIVE` is
   set (unless the user set it). OpenMP reads it when torch loads it, so it only takes effect
   when apply() runs before torch is imported, as the CLIs do.

5. RecBole pins `ray<=2.6.3` (no wheel after Python 3.11; numpy < 2), but only
   `recbole.quick_start` imports ray. RecBole is installed with `--no-deps` (requirements-recbole.txt)
   beside a current Ray; the plugin never imports `recbole.quick_start`, so the training path
   (config, dataset, model, trainer) runs without ray; only `run_tune.py` needs it.

6. Not a RecBole bug either: glibc's malloc hands freed memory back to the kernel as soon as
   128 KiB sit free at the top of the heap, and serves blocks of a few MiB by fresh mmap calls,
   so a CPU training step that frees its activations and gradients (MiBs each) page-faults them
   all back in on the next step. Measured in fresh processes on the 2-core benchmark machine:
   DLRREC's step 39 -> 31 ms, RecBole's DeepFM 28 -> 25 ms (restaurants, batch 4096) with the
   heap kept. `mallopt` keeps up to 256 MiB of freed heap and serves blocks up to 32 MiB from
   it, on glibc only, and only when the user set no GLIBC_TUNABLES / MALLOC_*_ variables.

7. The plugin's classification metrics (accuracy, fpr, precision, recall, f1; the classes are in
   runtime/metrics.py) are added to RecBole's metric registry, which RecBole builds once from
   `recbole.evaluator.metrics` at import time; and `Config._set_default_parameters` resolves
   `precision` / `recall` to the classification versions in a value-metric config (see
   runtime/metrics.py), so `metrics: [AUC, ..., Precision, Recall]` works as written.


8. RecBole unpickles `<checkpoint_dir>/<dataset>-<DatasetClass>.pth` and
   `<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth` (or the files `dataset_save_path` /
   `dataloaders_save_path` name) whenever such a file exists, whatever `save_dataset` /
   `save_dataloaders` say. Unpickling runs code, so a file planted there ran on the next plain
   run. The plugin's key `trust_cache` (default false, properties/overall.yaml) must be true
   for either file to be loaded; otherwise the dataset and the loaders are built from the
   atomic files, as if no cache existed (`save_dataset` / `save_dataloaders` still write them).


9. RecBole's distributed path (`Config._init_device` when `local_rank` is set) hard-codes
   `backend="nccl"`, sets a CUDA device and asserts one GPU id per process, so it cannot run on
   CPUs at all; its Trainer then wraps the model in DDP with `device_ids=[local_rank]`, which
   DDP refuses for a CPU module. We pick the backend from the device (gloo on the CPU, NCCL on
   CUDA), give DDP no device ids on the CPU, quiet every rank but global rank 0 (RecBole
   quieted local rank 0 of every machine), save the checkpoint on global rank 0 only, and let
   no other rank open a tensorboard writer. DDP does not broadcast the non-persistent buffers
   (the text tables every rank builds from the same files): it would send them from rank 0
   before every forward.

10. RecBole's distributed evaluation shards the valid/test rows over the ranks (a
   DistributedSampler that pads the last ranks by repeating rows), computes every metric per
   shard and averages the shard values (`Trainer._map_reduce`, weighted by 4 x batches). AUC
   over all rows is not an average of per-shard AUCs, and padded rows count twice. We gather
   the collected rows (scores, labels, top-k rows) of every rank instead, drop the padding,
   restore the file order, and let every rank compute the metrics once over all rows, so a
   distributed evaluation returns what one process returns on the same model. The best model
   of `evaluate(load_best_model=True)` is read by global rank 0 after a barrier (the other
   ranks, possibly on other machines, need not see the file) and broadcast.


11. RecBole's `init_seed(seed, reproducibility)` seeds every generator and, with
   `reproducibility` on, makes cuDNN deterministic, but leaves torch's other nondeterministic
   kernels in place. On the CPU, the backward of an indexed read (`index_put_` with
   accumulate: DLRREC's text towers run once per distinct id and scatter the gradient back)
   adds with atomic adds across threads once the gradient has 32768 elements or more, so two
   runs with the same seed drifted apart in the 4th decimal of AUC, more so under load.
   `init_seed` now also calls `torch.use_deterministic_algorithms(reproducibility,
   warn_only=True)` (and sets `CUBLAS_WORKSPACE_CONFIG`, which cuBLAS needs for it, unless the
   user did). `reproducibility` is RecBole's key, default true; false gives the old kernels.

12. RecBole's Trainer builds its loss scaler as `torch.cuda.amp.GradScaler(...)` once per training
   epoch, which torch >= 2.4 deprecates with a FutureWarning printed in every run. RecBole's
   trainer module gets `torch.amp.GradScaler("cuda", ...)` instead: the same class with the
   same arguments (the deprecated name only adds the warning), so nothing else changes.


13. RecBole's `ensure_dir` checks that a folder exists, then makes it: two DDP ranks building
   their Trainers at once can both see it missing, and the second `makedirs` fails with
   FileExistsError. It now makes the folder with `exist_ok=True`.


A Config the plugin builds reads no command line and eval()s no string value: that is not a
patch but a Config subclass of the one config stack (recbole_dlrrec/config/stack.py, StackConfig).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List

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
        if global_rank(self.config) != 0:  # fix 9: one checkpoint, on global rank 0
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        _atomic_torch_save(weights_only_checkpoint(self, epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    _save_checkpoint.__doc__ = "Atomic, weights_only-loadable replacement (recbole_dlrrec.patches)."
    Trainer._save_checkpoint = _save_checkpoint


def trusts_cache(config) -> bool:
    """True when the user set `trust_cache: true`: RecBole may unpickle its saved dataset and
    dataloader files (a missing key, as in a plain RecBole Config, means no)."""
    return config["trust_cache"] is True


# A path that can never exist (a NUL byte is not allowed in a file name): given to RecBole as
# the dataset file when caches are not trusted, so its own create_dataset builds the dataset.
_NO_FILE = os.path.join(os.sep, "recbole_dlrrec-untrusted-cache\0")


def _untrusted_caches() -> None:
    """Fix 8: RecBole loads its pickled dataset / dataloader caches only when `trust_cache`."""
    import sys

    import recbole.data
    import recbole.data.utils as data_utils

    recbole_create_dataset = data_utils.create_dataset
    recbole_load_split_dataloaders = data_utils.load_split_dataloaders

    def create_dataset(config):
        """RecBole's create_dataset; it loads a saved dataset only when trust_cache
        (recbole_dlrrec.patches fix 8)."""
        if trusts_cache(config):
            return recbole_create_dataset(config)
        # RecBole's own code path, with its cache file pointed at nothing. The key is not a
        # dataset argument, so the built dataset is the same as without a cache.
        saved = config["dataset_save_path"]
        config["dataset_save_path"] = _NO_FILE
        try:
            return recbole_create_dataset(config)
        finally:
            config["dataset_save_path"] = saved

    def load_split_dataloaders(config):
        """RecBole's load_split_dataloaders when trust_cache, else None: build the loaders
        (recbole_dlrrec.patches fix 8)."""
        return recbole_load_split_dataloaders(config) if trusts_cache(config) else None

    # data_preparation looks load_split_dataloaders up in recbole.data.utils; callers import
    # create_dataset from recbole.data (a copy of the name made by its `import *`), and
    # recbole.quick_start holds its own copy when it was imported before this package.
    for module in (data_utils, recbole.data):
        module.create_dataset = create_dataset
        module.load_split_dataloaders = load_split_dataloaders
    recbole_quick_start: Any = sys.modules.get("recbole.quick_start.quick_start")
    if recbole_quick_start is not None:
        recbole_quick_start.create_dataset = create_dataset


def global_rank(config) -> int:
    """This process's rank over all machines (RecBole: local_rank + offset); 0 when not distributed."""
    if config["single_spec"]:
        return 0
    return int(config["local_rank"]) + int(config["offset"] or 0)


def _distributed_init_device() -> None:
    """Fix 9: RecBole's distributed start-up on the CPU (gloo) as well as on CUDA (NCCL)."""
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

    _init_device.__doc__ = "gloo on the CPU, NCCL on CUDA (recbole_dlrrec.patches, fix 9)."
    Config._init_device = _init_device


class _NoTensorboard:
    """Stands in for a SummaryWriter on ranks other than 0: nothing written."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def constant_buffer_names(model) -> list:
    """Qualified names of `model`'s non-persistent buffers: tables the model derives from the
    dataset's files at build time (never saved, never trained), equal on every DDP rank."""
    names = []
    for prefix, module in model.named_modules():
        for name in sorted(getattr(module, "_non_persistent_buffers_set", ())):
            if getattr(module, name, None) is not None:
                names.append(f"{prefix}.{name}" if prefix else name)
    return names


def _distributed_trainer() -> None:
    """Fix 9: DDP around a CPU model; no tensorboard files from ranks other than 0."""
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
            # Every rank builds its non-persistent buffers (text tables, row lookups) from the same
            # files, so they are equal already; DDP would broadcast them from rank 0 before every
            # forward (hundreds of MB with per-row user history: DLRREC ran 6x slower on 2 processes).
            ignored = constant_buffer_names(self.model)
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.model, ignored)
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[config["local_rank"]] if on_cuda else None
            )

    __init__.__doc__ = (
        "DDP with device ids on CUDA only, non-persistent buffers not broadcast (recbole_dlrrec.patches, fix 9)."
    )
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
    each_count = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(each_count, count)
    counts = torch.cat(each_count)
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
    """Fix 10: distributed metrics over all rows, computed once; the best model from rank 0."""
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
                # fix 2 writes checkpoints that load as plain tensors and numbers: nothing to unpickle
                checkpoint = torch.load(checkpoint_file, map_location=self.device, weights_only=True)
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

    evaluate.__doc__ = "All ranks' rows, one metric computation (recbole_dlrrec.patches, fix 10)."
    Trainer.evaluate = torch.no_grad()(evaluate)
    Trainer._map_reduce = _map_reduce
    Collector.get_data_struct = get_data_struct


def _pandas_major() -> int:
    import pandas as pd

    return int(pd.__version__.split(".")[0])


def fill_missing_values(self) -> None:
    """Fix 3a: RecBole's `Dataset._fill_nan`, with assignments instead of chained in-place fills.

    Same rule as RecBole's: a missing token becomes 0 (``[PAD]``), a missing float the mean of
    the field, a missing token_seq / float_seq an empty array."""
    import numpy as np
    from recbole.utils import FeatureType, set_color

    self.logger.debug(set_color("Filling nan", "green"))
    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x, dtype=dtype: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


def _fill_nan_by_assignment() -> None:
    """Fix 3a: install `fill_missing_values` as `Dataset._fill_nan` (the original stays as __wrapped__)."""
    from recbole.data.dataset.dataset import Dataset

    if getattr(Dataset._fill_nan, "__wrapped__", None) is None:
        fill_missing_values.__wrapped__ = Dataset._fill_nan  # type: ignore[attr-defined]  # function attribute
        Dataset._fill_nan = fill_missing_values


def _feature_fields(self, header: str, source, load_col, unload_col) -> Dict[str, object]:
    """Fix 3b: the fields of a feature file's header line that `load_col` / `unload_col` (None:
    no rule) select, as {"name:type" column: FeatureType}, in file order. Records each field's
    type, source, length and bucket count on the dataset, by RecBole's rules (a "link" file
    records none)."""
    from recbole.utils import FeatureSource, FeatureType

    loaded: Dict[str, object] = {}
    for column in header.split(self.config["field_separator"]):
        field, type_name = column.split(":")
        try:
            ftype = FeatureType(type_name)
        except ValueError:
            raise ValueError(f"Type {type_name} from field {field} is not supported.") from None
        if (load_col is not None and field not in load_col) or (unload_col is not None and field in unload_col):
            continue
        if isinstance(source, FeatureSource) or source != "link":
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2
        loaded[column] = ftype
    return loaded


def load_feature_file(self, filepath: str, source):
    """Fix 3b: RecBole's `Dataset._load_feat`, with an empty token_seq / float_seq cell read as
    an empty sequence directly (RecBole fills it with a chained in-place `fillna`, which pandas 3
    applies to a copy, warning ChainedAssignmentError, and loading then fails on the NaN).

    Same rules as RecBole's: the fields `load_col` / `unload_col` select, float fields as
    float64 and the others as strings; a token_seq cell split on `seq_separator` into an array
    of tokens, a float_seq cell into a float array (empty pieces dropped); a field's seqlen is
    its longest sequence, or `seq_len[field]` when set, which also cuts longer sequences.
    Returns the DataFrame, or None when nothing is loaded from the file."""
    import numpy as np
    import pandas as pd
    from recbole.utils import FeatureType, set_color

    self.logger.debug(set_color(f"Loading feature from [{filepath}] (source: [{source}]).", "green"))
    load_col, unload_col = self._get_load_and_unload_col(source)
    if load_col == set():
        return None
    encoding = self.config["encoding"]
    with open(filepath, "r", encoding=encoding) as handle:
        header = handle.readline()[:-1]
    loaded = _feature_fields(self, header, source, load_col, unload_col)
    if not loaded:
        self.logger.warning(f"No columns has been loaded from [{source}]")
        return None
    df = pd.read_csv(
        filepath,
        delimiter=self.config["field_separator"],
        usecols=list(loaded),
        encoding=encoding,
        dtype={c: np.float64 if t == FeatureType.FLOAT else str for c, t in loaded.items()},
        engine="python",
    )
    df.columns = [column.split(":")[0] for column in loaded]
    separator, seq_len = self.config["seq_separator"], self.config["seq_len"] or {}
    for field, ftype in zip(df.columns, loaded.values()):
        if ftype not in (FeatureType.TOKEN_SEQ, FeatureType.FLOAT_SEQ):
            continue
        parse = float if ftype == FeatureType.FLOAT_SEQ else str
        cells = df[field].fillna("").to_numpy()
        sequences = [np.array([parse(piece) for piece in cell.split(separator) if piece]) for cell in cells]
        longest = max(map(len, sequences))
        if field in seq_len:
            sequences = [seq[: seq_len[field]] for seq in sequences]
            longest = min(seq_len[field], longest)
        df[field] = sequences
        self.field2seqlen[field] = longest
    return df


def _load_feat_without_chained_fill() -> None:
    """Fix 3b: install `load_feature_file` as `Dataset._load_feat` (the original stays as __wrapped__)."""
    from recbole.data.dataset.dataset import Dataset

    if getattr(Dataset._load_feat, "__wrapped__", None) is None:
        load_feature_file.__wrapped__ = Dataset._load_feat  # type: ignore[attr-defined]  # function attribute
        Dataset._load_feat = load_feature_file


def _called_from_recbole(depth: int) -> bool:
    import sys

    return sys._getframe(depth + 1).f_globals.get("__name__", "").startswith("recbole.")


def _per_row_agg_len() -> None:
    """Fix 3c: on pandas 3, `series.agg(len)` called from RecBole's code gives per-row lengths,
    as pandas 2 did; every other call (and every other function) goes to pandas unchanged."""
    import pandas as pd

    if _pandas_major() < 3 or getattr(pd.Series.agg, "__wrapped__", None) is not None:
        return
    pandas_agg = pd.Series.agg

    def agg(self, func=None, axis=0, *args, **kwargs):
        if func is len and not args and not kwargs and _called_from_recbole(1):
            return self.map(len)
        return pandas_agg(self, func, axis, *args, **kwargs)

    agg.__doc__ = pandas_agg.__doc__
    agg.__wrapped__ = pandas_agg  # type: ignore[attr-defined]  # function attribute
    pd.Series.agg = agg


def keep_freed_heap() -> bool:
    """Fix 6: tell glibc's malloc to keep freed heap for reuse. True when it was set."""
    import ctypes
    import sys

    if (
        not sys.platform.startswith("linux")
        or "GLIBC_TUNABLES" in os.environ
        or any(key.startswith("MALLOC_") and key.endswith("_") for key in os.environ)
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def omp_passive_wait() -> None:
    """Fix 4: OpenMP threads sleep instead of spinning when idle (unless the user chose)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no effect once torch has loaded OpenMP


def classification_metrics() -> None:
    """Fix 7: register runtime/metrics.py's classification metrics with RecBole's evaluator
    registry, and resolve value-config `precision` / `recall` to them in Config."""
    import recbole.evaluator.metrics as recbole_metrics
    from recbole.config.configurator import Config
    from recbole.evaluator import register as reg

    # Imported here, not at the top: patches sits below runtime/ in the layers, and the metric
    # classes import RecBole, which importing this module must not do.
    from recbole_dlrrec.runtime.metrics import METRICS, resolve_metric_names

    for cls in METRICS:
        name = cls.__name__.lower()
        setattr(recbole_metrics, cls.__name__, cls)
        reg.metrics_dict[name] = cls
        reg.metric_information[name] = cls.metric_need
        reg.metric_types[name] = cls.metric_type
        if cls.smaller and name not in reg.smaller_metrics:
            reg.smaller_metrics.append(name)

    if getattr(Config._set_default_parameters, "_dlrrec_patched", False):
        return
    original = Config._set_default_parameters

    def _set_default_parameters(self):
        metrics = self.final_config_dict.get("metrics")
        if metrics:
            mode = (self.final_config_dict.get("eval_args") or {}).get("mode")
            self.final_config_dict["metrics"] = resolve_metric_names(metrics, mode)
        original(self)

    _set_default_parameters._dlrrec_patched = True  # type: ignore[attr-defined]  # function attribute
    _set_default_parameters.__doc__ = "RecBole's, after resolving precision/recall (recbole_dlrrec.patches, fix 7)."
    Config._set_default_parameters = _set_default_parameters


def deterministic_kernels(reproducibility: bool) -> None:
    """Fix 11: torch's deterministic kernels on when `reproducibility` is, off when it is not
    (an op with no deterministic kernel warns instead of failing)."""
    import torch

    if reproducibility:
        # cuBLAS reads it when its first handle is made: before any model reaches the GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(reproducibility), warn_only=True)


def _seeding_selects_deterministic_kernels() -> None:
    """Fix 11: RecBole's init_seed also selects deterministic kernels (see deterministic_kernels)."""
    import recbole.utils
    import recbole.utils.utils as utils

    original = utils.init_seed

    def init_seed(seed, reproducibility):
        original(seed, reproducibility)
        deterministic_kernels(reproducibility)

    init_seed.__doc__ = (
        "RecBole's init_seed, then deterministic kernels as `reproducibility` says (recbole_dlrrec.patches, fix 11)."
    )
    utils.init_seed = recbole.utils.init_seed = init_seed


class _ModuleForRecBole:
    """A module as one RecBole module sees it (bound to a name there): the module itself, with
    the given attributes replaced. Only that RecBole module's lookups change."""

    def __init__(self, module, **replaced):
        self.__wrapped__ = module
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


def _torch_amp_grad_scaler() -> None:
    """Fix 12: RecBole's trainer module builds `torch.amp.GradScaler("cuda", ...)`, not the
    deprecated `torch.cuda.amp.GradScaler(...)` (same class and arguments, no FutureWarning)."""
    import functools

    import torch
    from recbole.trainer import trainer as trainer_module

    if not isinstance(trainer_module.amp, _ModuleForRecBole):
        trainer_module.amp = _ModuleForRecBole(
            trainer_module.amp, GradScaler=functools.partial(torch.amp.GradScaler, "cuda")
        )


def _race_free_ensure_dir() -> None:
    """Fix 13: RecBole's ensure_dir without the check-then-make race (trainer.py imports it by name)."""
    import recbole.trainer.trainer as trainer
    import recbole.utils
    import recbole.utils.utils as utils

    def ensure_dir(dir_path):
        os.makedirs(dir_path, exist_ok=True)

    ensure_dir.__doc__ = (
        "RecBole's ensure_dir, safe when processes make the folder at once (recbole_dlrrec.patches, fix 13)."
    )
    utils.ensure_dir = recbole.utils.ensure_dir = trainer.ensure_dir = ensure_dir


# Every fix, in the order apply() installs them. One function per fix; add new ones here.
PATCHES: List[Callable[[], object]] = [
    omp_passive_wait,  # 4: first, before anything below imports torch
    keep_freed_heap,  # 6
    _fill_nan_by_assignment,  # 3a
    _load_feat_without_chained_fill,  # 3b
    _per_row_agg_len,  # 3c
    _numpy_aliases,  # 1
    _weights_only_checkpoints,  # 2
    classification_metrics,  # 7
    _untrusted_caches,  # 8
    _distributed_init_device,  # 9
    _distributed_trainer,  # 9
    _gathered_evaluation,  # 10
    _seeding_selects_deterministic_kernels,  # 11
    _torch_amp_grad_scaler,  # 12
    _race_free_ensure_dir,  # 13
]


def apply() -> None:
    """Install every fix in PATCHES, once. Safe to call many times: later calls do nothing."""
    global _APPLIED
    if _APPLIED:
        return
    for patch in PATCHES:
        patch()
    _APPLIED = True
