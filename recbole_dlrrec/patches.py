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

3. pandas 3 breaks RecBole's token_seq remapping (it relies on object-dtype semantics that
   changed). There is no small patch that keeps RecBole's own code path intact, so pandas is
   pinned below 3 (`requirements.txt`); `check_versions()` raises a clear error otherwise.

4. Not a RecBole bug, but a fix every run needs here: numba's parallel SWING kernels and torch
   share the OpenMP runtime, whose default busy-waiting threads made training after an in-process
   SWING computation up to 10x slower on a shared 2-core machine. `OMP_WAIT_POLICY=PASSIVE` is
   set (unless the user set it). OpenMP reads it when torch loads it, so it only takes effect
   when apply() runs before torch is imported, as the CLIs do.

5. RecBole pins `ray<=2.6.3`, whose import needs `pkg_resources` (setuptools < 81) and numpy < 2.
   Only `recbole.quick_start` imports ray. The plugin never imports `recbole.quick_start`, so the
   training path (config, dataset, model, trainer) runs without ray; only `run_tune.py` needs it.
   (No code: a rule the plugin keeps.)

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


A Config the plugin builds reads no command line and eval()s no string value: that is not a
patch but a Config subclass of the one config stack (recbole_dlrrec/config/stack.py, StackConfig).
"""
from __future__ import annotations

import os
from typing import Callable, List

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
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
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
    recbole_quick_start = sys.modules.get("recbole.quick_start.quick_start")
    if recbole_quick_start is not None:
        recbole_quick_start.create_dataset = create_dataset


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

    _set_default_parameters._dlrrec_patched = True
    _set_default_parameters.__doc__ = "RecBole's, after resolving precision/recall (recbole_dlrrec.patches, fix 7)."
    Config._set_default_parameters = _set_default_parameters


# Every fix, in the order apply() installs them. One function per fix; add new ones here.
PATCHES: List[Callable[[], object]] = [
    omp_passive_wait,  # 4: first, before anything below imports torch
    keep_freed_heap,  # 6
    check_versions,  # 3
    _numpy_aliases,  # 1
    _weights_only_checkpoints,  # 2
    classification_metrics,  # 7
    _untrusted_caches,  # 8
]


def apply() -> None:
    """Install every fix in PATCHES, once. Safe to call many times: later calls do nothing."""
    global _APPLIED
    if _APPLIED:
        return
    for patch in PATCHES:
        patch()
    _APPLIED = True
