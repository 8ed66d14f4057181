"""How a training step runs: precision and optimizer, on top of RecBole's own Trainer.

`train_precision` (sets RecBole's own `enable_amp`; RecBole's Trainer wraps each training
forward and loss in `torch.autocast(device_type, enabled=enable_amp)`, and evaluates in float32):

    fp32  the plugin adds no autocast (RecBole's `enable_amp` is left as set; default false).
    bf16  autocast to bfloat16: matmuls in bf16 with fp32 accumulation; weights, optimizer state
          and losses stay fp32. bfloat16 has float32's exponent range, so no loss scaling is
          needed (RecBole's CUDA default, float16 without a GradScaler, could underflow).
    auto  bf16 where the training device multiplies bf16 natively, else fp32. CPU: AVX512-BF16
          or AMX; on the 2-core AMD EPYC benchmark machine bf16 gave DLRREC ~1.5x training
          samples/s at the same AUC (results/bench/). CUDA: fp32, because the GPU step was
          launch-bound at the batch sizes measured in issue #8, where bf16 did not help.

`fused_optimizer`: rebuild RecBole's Adam / AdamW with `fused=True` (one kernel per parameter,
no temporaries: on a 2M-row dataset the dense Adam update of the embedding tables was a quarter
of DLRREC's CPU step). Same update rule; other optimizers are kept as they are.

Defaults: fp32 and no fused optimizer for every model (properties/overall.yaml, so RecBole's
baselines run as RecBole ships them); auto and fused for the plugin's DLRM and DLRREC
(properties/model/*.yaml).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Optional

import numpy as np
import torch

PRECISIONS = ("auto", "fp32", "bf16")
_FUSABLE = (torch.optim.Adam, torch.optim.AdamW)


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        flags = capabilities()
        return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_precision(value, device) -> str:
    """`train_precision` value and the training device -> 'fp32' or 'bf16'."""
    choice = "fp32" if value is None else str(value).lower()
    if choice not in PRECISIONS:
        raise ValueError(f"train_precision must be one of {PRECISIONS}, got {value!r}")
    if choice != "auto":
        return choice
    device_type = torch.device(device).type if device is not None else "cpu"
    return "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "fp32"


def apply_precision(config) -> str:
    """Turn RecBole's `enable_amp` on (and name bf16 as the autocast dtype) when
    `train_precision` resolves to bf16. Returns the resolved precision. `train_precision` itself
    is left as the user wrote it ('auto' stays 'auto'), so a result's config says what was asked;
    `enable_amp` says what ran."""
    resolved = resolve_precision(config["train_precision"], config["device"])
    if resolved == "bf16":
        config["enable_amp"] = True
        config["enable_scaler"] = False  # no loss scaling with bf16
        # RecBole calls torch.autocast without a dtype, which takes the device's default:
        # bfloat16 on the CPU already, float16 on CUDA, so name bf16 for the device.
        torch.set_autocast_dtype(torch.device(config["device"]).type, torch.bfloat16)
    return resolved


def fuse_optimizer(trainer) -> bool:
    """Replace the trainer's Adam / AdamW by the same optimizer with fused=True (same param
    groups and hyper-parameters). Returns False (and keeps the optimizer) when it is another
    optimizer or this torch / device has no fused kernel for it."""
    optimizer = trainer.optimizer
    if type(optimizer) not in _FUSABLE:
        return False
    groups = [{**group, "fused": True, "foreach": None} for group in optimizer.param_groups]
    try:
        trainer.optimizer = type(optimizer)(groups, lr=optimizer.defaults["lr"])
    except (RuntimeError, TypeError, ValueError) as exc:
        logging.getLogger().warning(f"fused_optimizer: kept the unfused {type(optimizer).__name__} ({exc})")
        return False
    return True


class ReductionSchedule:
    """`reduction_warmup_epochs` / `reduction_lr_scale` (DLRREC): the reduction towers' parameters
    in an optimizer param group of their own (index `GROUP`), at learning rate 0 for the first
    `warmup_epochs` epochs (frozen: the rest of the model learns on their initial output, a
    linear probe when they start from the PCA), then at `learning_rate` x `scale`. The group's
    optimizer state is cleared when it thaws, so fine-tuning starts with fresh moments instead
    of those of gradients that were never applied. A learning rate of 0, not requires_grad,
    freezes them: the graph, and DDP's view of which parameters take gradients, stay the same."""

    GROUP = 1

    def __init__(self, warmup_epochs: int, learning_rate: float, scale: float):
        self.warmup_epochs = int(warmup_epochs)
        self.fine_tune_lr = float(learning_rate) * float(scale)

    def learning_rate(self, epoch: int) -> float:
        return 0.0 if epoch < self.warmup_epochs else self.fine_tune_lr

    def start_epoch(self, optimizer, epoch: int) -> None:
        group = optimizer.param_groups[self.GROUP]
        lr = self.learning_rate(epoch)
        if group["lr"] == 0.0 and lr > 0.0:
            for param in group["params"]:
                optimizer.state.pop(param, None)
        group["lr"] = lr


def schedule_reduction(trainer) -> Optional[ReductionSchedule]:
    """Give the model's reduction parameters (`model.reduction_parameters()`) their own param
    group and schedule (ReductionSchedule) when its options ask for a warm-up or a scaled
    learning rate; None (the optimizer untouched) otherwise. The schedule runs at the start of
    every training epoch (the trainer's `_train_epoch`, wrapped on this trainer only)."""
    model = trainer.model
    options = getattr(model, "options", None)
    warmup = int(getattr(options, "reduction_warmup_epochs", 0) or 0)
    scale = float(getattr(options, "reduction_lr_scale", 1.0))
    if not warmup and scale == 1.0:
        return None
    reduction = list(model.reduction_parameters())
    if not reduction:
        return None
    taken = {id(p) for p in reduction}
    others = [p for p in model.parameters() if id(p) not in taken]
    schedule = ReductionSchedule(warmup, trainer.learning_rate, scale)
    groups = [{"params": others}, {"params": reduction, "lr": schedule.learning_rate(trainer.start_epoch)}]
    trainer.optimizer = trainer._build_optimizer(params=groups)
    train_epoch = trainer._train_epoch

    def scheduled_train_epoch(train_data, epoch_idx, *args, **kwargs):
        schedule.start_epoch(trainer.optimizer, epoch_idx)
        return train_epoch(train_data, epoch_idx, *args, **kwargs)

    trainer._train_epoch = scheduled_train_epoch
    return schedule


class PredictionRecorder:
    """A trainer's evaluator that also keeps the per-row labels and scores of its LAST call.

    RecBole's Trainer hands every evaluation's collected `DataStruct` to `evaluator.evaluate`;
    this wrapper copies `data.label` and `rec.score` out of it (as float32 numpy arrays, shape
    [rows]) and then lets RecBole's evaluator compute the metrics as usual, so the results are
    unchanged. After `trainer.evaluate(test_data)` the arrays are the test split's (the
    leaderboard's significance tests use them). `labels` / `scores` are None before the first
    call, or when the struct holds no labels (e.g. a ranking evaluation); `row_ids` is None until
    `keep_row_ids` names the rows of the last call.
    """

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.labels: Optional[np.ndarray] = None
        self.scores: Optional[np.ndarray] = None
        self.row_ids: Optional[dict] = None  # keep_row_ids: who each recorded row was

    def evaluate(self, struct):
        try:
            self.labels = struct.get("data.label").detach().cpu().numpy().astype(np.float32).ravel()
            self.scores = struct.get("rec.score").detach().cpu().numpy().astype(np.float32).ravel()
        except (IndexError, KeyError, AttributeError):
            self.labels = self.scores = None
        self.row_ids = None
        return self.evaluator.evaluate(struct)

    def keep_row_ids(self, train_dataset, eval_dataset) -> bool:
        """After evaluating `eval_dataset`: keep each recorded row's user_id, item_id (RecBole's
        internal ids) and how many train rows that user and item have (user_train_rows,
        item_train_rows; int64 arrays of the recorded rows' length), for the boards' clustered
        bootstrap and segment metrics. Labeled evaluation scores the rows in file order; the
        ids are kept only when the dataset's labels match the recorded ones row for row (so a
        loader that reorders rows keeps none). Returns whether they were kept."""
        self.row_ids = None
        inter = eval_dataset.inter_feat
        uid, iid, label = eval_dataset.uid_field, eval_dataset.iid_field, eval_dataset.label_field
        if self.labels is None or inter is None or not uid or not iid or label not in inter:
            return False
        labels = inter[label].detach().cpu().numpy().astype(np.float32).ravel()
        if labels.shape != self.labels.shape or not np.array_equal(labels, self.labels):
            return False
        users = inter[uid].detach().cpu().numpy().astype(np.int64).ravel()
        items = inter[iid].detach().cpu().numpy().astype(np.int64).ravel()
        train = train_dataset.inter_feat
        user_counts = np.bincount(train[uid].detach().cpu().numpy().ravel(), minlength=int(users.max(initial=0)) + 1)
        item_counts = np.bincount(train[iid].detach().cpu().numpy().ravel(), minlength=int(items.max(initial=0)) + 1)
        self.row_ids = {
            "user_id": users,
            "item_id": items,
            "user_train_rows": user_counts[users].astype(np.int64),
            "item_train_rows": item_counts[items].astype(np.int64),
        }
        return True

    def __getattr__(self, name):  # anything else RecBole reads from its evaluator
        return getattr(self.evaluator, name)


def unique_checkpoint_file(config) -> str:
    """`<checkpoint_dir>/<model>-<YYYYmmdd-HHMMSS>-seed<seed>-pid<pid>-<8 hex>.pth`: a checkpoint
    path no other run gets. RecBole's own name (`<model>-<Mon-DD-YYYY_HH-MM-SS>.pth`) is the same
    for every run of a model started in the same second, so concurrent runs overwrote and
    reloaded each other's best model. The random part comes from the OS, not from the RNGs that
    `init_seed` has just seeded (those give every run with the same seed the same draw)."""
    name = (
        f"{config['model']}-{time.strftime('%Y%m%d-%H%M%S')}-seed{config['seed']}"
        f"-pid{os.getpid()}-{secrets.token_hex(4)}.pth"
    )
    return os.path.join(config["checkpoint_dir"], name)


def build_trainer(config, model, record_predictions: bool = False):
    """RecBole's trainer for `config` (get_trainer), with the plugin's step settings applied and a
    checkpoint file of its own (`unique_checkpoint_file`).

    Args:
        record_predictions: give the trainer a PredictionRecorder as its evaluator, so that
            `trainer.evaluator.labels` / `.scores` hold the last evaluation's rows.
    """
    from recbole.utils import get_trainer

    from recbole_dlrrec import patches

    patches.apply()  # RecBole's Trainer saves weights_only checkpoints (patches.py, fix 2)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.saved_model_file = unique_checkpoint_file(config)
    schedule_reduction(trainer)  # before fusing: the fused rebuild keeps the param groups
    if config["fused_optimizer"]:
        fuse_optimizer(trainer)
    if record_predictions:
        trainer.evaluator = PredictionRecorder(trainer.evaluator)
    return trainer
