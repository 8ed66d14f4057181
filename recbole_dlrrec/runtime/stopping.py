"""Early stopping measured in optimizer steps, on top of RecBole's epoch-based early stopping.

RecBole stops a run once `stopping_step` validations in a row brought no better `valid_metric`.
Counted in validations, that patience means very different amounts of training by dataset
size: on a small file (one or two batches per epoch) six validations are six to twelve
optimizer steps, and a model that has barely left its initialisation stops at a noisy early
peak. Two keys (properties/overall.yaml) state the budget in steps instead:

    min_steps                no stop before this many optimizer steps (batches) have run; the
                             run may still end earlier at `epochs`.
    stopping_patience_steps  stop once this many steps (rounded up to whole validations) have
                             passed without a better valid_metric; replaces stopping_step.

Both null: RecBole's own rule, untouched. RecBole's Trainer reads `trainer.stopping_step` at
every validation (recbole.utils.early_stopping: stop when the count of validations without a
better score exceeds it), so the budget is applied by setting that attribute before each
validation; the count of steps comes from the training loader's length, one optimizer step per
batch.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

#: `trainer.stopping_step` while `min_steps` is not reached: no count of validations exceeds it.
NEVER = 2**62


def patience_in_validations(patience_steps: int, steps_per_epoch: int, eval_step: int) -> int:
    """`stopping_patience_steps` as RecBole's `stopping_step`: RecBole stops when more than
    `stopping_step` validations brought no better score, each `eval_step` epochs of
    `steps_per_epoch` steps apart; so the smallest count of validations that spans at least
    `patience_steps` steps, minus one."""
    per_validation = max(1, steps_per_epoch) * max(1, eval_step)
    return max(0, math.ceil(patience_steps / per_validation) - 1)


class StepBudget:
    """min_steps / stopping_patience_steps for one trainer (see the module doc).

    Args:
        trainer: RecBole's Trainer (its `stopping_step`, `eval_step` and `_train_epoch`).
        steps_per_epoch: the training loader's batches per epoch.
        min_steps, patience_steps: the keys' values (None: not set).
    """

    def __init__(self, trainer, steps_per_epoch: int, min_steps: Optional[int], patience_steps: Optional[int]):
        self.trainer = trainer
        self.steps_per_epoch = int(steps_per_epoch)
        self.min_steps = int(min_steps or 0)
        self.patience = (
            trainer.stopping_step
            if patience_steps is None
            else patience_in_validations(int(patience_steps), self.steps_per_epoch, trainer.eval_step)
        )
        self.steps = 0
        trainer.stopping_step = self.stopping_step()

    def stopping_step(self) -> int:
        """RecBole's `stopping_step` for the next validation."""
        return self.patience if self.steps >= self.min_steps else NEVER

    def after_epoch(self) -> None:
        """Count the epoch's steps; the validation that follows sees the updated patience."""
        self.steps += self.steps_per_epoch
        self.trainer.stopping_step = self.stopping_step()


def apply_step_budget(config, trainer, steps_per_epoch: int) -> Optional[StepBudget]:
    """Install `min_steps` / `stopping_patience_steps` on `trainer` (wrapping its `_train_epoch`
    on this trainer only, so the count follows every epoch RecBole trains). None, and the
    trainer untouched, when both keys are null."""
    min_steps, patience_steps = config["min_steps"], config["stopping_patience_steps"]
    if min_steps is None and patience_steps is None:
        return None
    budget = StepBudget(trainer, steps_per_epoch, min_steps, patience_steps)
    cap = trainer.epochs * max(1, int(steps_per_epoch))
    if budget.min_steps > cap:
        logging.getLogger().info(
            f"min_steps={budget.min_steps}: epochs={trainer.epochs} x {steps_per_epoch} batches per epoch "
            f"caps this run at {cap} steps, without early stopping"
        )
    train_epoch = trainer._train_epoch

    def counted_train_epoch(*args, **kwargs):
        result = train_epoch(*args, **kwargs)
        budget.after_epoch()
        return result

    trainer._train_epoch = counted_train_epoch
    return budget
