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

3. pandas 3 (copy-on-write, new `Series.agg`) breaks RecBole's `Dataset` in three places; each
   has its own function below, installed on every pandas (they are no-ops in effect on pandas 2):
   a. `_fill_nan` fills missing values with the chained `feat[field].fillna(..., inplace=True)`,
      which on pandas 3 fills a temporary copy: missing floats stay NaN and missing tokens are
      not set to padding, silently. `fill_missing_values` is `_fill_nan` with assignments.
   b. `_load_feat` fills empty token_seq / float_seq cells the same chained way, then splits each
      cell as a string: on pandas 3 an empty cell stays NaN and loading fails
      (`'float' object has no attribute 'split'`). `_seq_cells_read_as_empty` makes the
      module's `read_csv` return those cells as "" already.
   c. RecBole takes per-row sequence lengths with `series.agg(len)` (token_seq remapping,
      float_seq normalization / discretization). pandas 2 applied `len` to each row; pandas 3
      applies it to the whole Series, so the remap splits all ids into one row and fails.
      `_per_row_agg_len` restores the per-row meaning for calls made from RecBole's code only.

4. Not a RecBole bug, but a fix every run needs here: numba's parallel SWING kernels and torch
   share the OpenMP runtime, whose default busy-waiting threads made training after an in-process
   SWING computation up to 10x slower on a shared 2-core machine. `OMP_WAIT_POLICY=PASSIVE` is
   set (unless the user set it) before torch is first imported through this package.

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
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        _atomic_torch_save(weights_only_checkpoint(self, epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    _save_checkpoint.__doc__ = "Atomic, weights_only-loadable replacement (recbole_dlrrec.patches)."
    Trainer._save_checkpoint = _save_checkpoint


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
                feat[field] = feat[field].apply(lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x)


def _fill_nan_by_assignment() -> None:
    """Fix 3a: install `fill_missing_values` as `Dataset._fill_nan` (the original stays as __wrapped__)."""
    from recbole.data.dataset.dataset import Dataset

    if getattr(Dataset._fill_nan, "__wrapped__", None) is None:
        fill_missing_values.__wrapped__ = Dataset._fill_nan
        Dataset._fill_nan = fill_missing_values


def read_feature_file(*args, **kwargs):
    """Fix 3b: `pandas.read_csv` for RecBole's `Dataset._load_feat`: empty token_seq / float_seq
    cells come back as "" (what RecBole's chained fillna meant them to be), other columns as read.

    `_load_feat` reads with ``usecols`` of ``name:type`` headers and renames the columns after."""
    import pandas as pd

    df = pd.read_csv(*args, **kwargs)
    for column in df.columns:
        if str(column).endswith("_seq") and df[column].isna().any():
            df[column] = df[column].fillna("")
    return df


class _PandasForRecBoleDataset:
    """The `pd` name in recbole.data.dataset.dataset: pandas itself, but `read_csv` is
    `read_feature_file` (only `_load_feat` reads files there)."""

    def __init__(self, pandas_module):
        self.__wrapped__ = pandas_module
        self.read_csv = read_feature_file

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


def _seq_cells_read_as_empty() -> None:
    """Fix 3b: route RecBole's dataset module's `pd.read_csv` through `read_feature_file`."""
    from recbole.data.dataset import dataset as dataset_module

    if not isinstance(dataset_module.pd, _PandasForRecBoleDataset):
        dataset_module.pd = _PandasForRecBoleDataset(dataset_module.pd)
    chained = getattr(dataset_module.pd.errors, "ChainedAssignmentError", None)
    if chained is not None:  # pandas 3 warns that RecBole's fill is a no-op; the read filled already
        import warnings

        warnings.filterwarnings("ignore", category=chained, module=r"recbole\.data\.dataset\.dataset")


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
    agg.__wrapped__ = pandas_agg
    pd.Series.agg = agg


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
    _numpy_aliases()
    _weights_only_checkpoints()
    _fill_nan_by_assignment()  # fix 3a
    _seq_cells_read_as_empty()  # fix 3b
    _per_row_agg_len()  # fix 3c
    _APPLIED = True
