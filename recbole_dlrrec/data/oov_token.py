"""Unseen users through the data alone: one reserved user token, for every model.

The model-level switches (`oov_embedding`, `id_dropout_*`: nn/oov.py) exist only in DLRM and
DLRREC. So that a baseline (FM, DeepFM, LR, ...) can get the same idea, `oov_user_token` rewrites
the loaded splits' user column before any loader or model sees it:

    valid / test rows whose user never occurs in TRAIN  -> the reserved token (RecBole's id 0)
    a seeded `oov_user_token_rate` share of TRAIN rows  -> the reserved token (so it is trained)

The TRAIN draw is one fixed choice per seed (numpy's generator seeded with the config's seed,
over the train rows in file order), not a per-epoch dropout. The reserved token is RecBole's
padding id 0, which every model's embedding tables already hold and no real user has; its user
features are the padding row's (0: "no train reviews"), its text none. Users only: an item's
features (metadata, text) are looked up by its id, so a reserved item token would throw away
what a cold item has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict

import numpy as np
import torch

#: The id the unseen users are mapped to: RecBole's padding id, a row of every embedding table.
RESERVED_ID = 0


@dataclass(frozen=True)
class OOVTokenCounts:
    """What `map_unseen_users` changed: rows mapped per split, and the rows of each split."""

    mapped: Dict[str, int]
    rows: Dict[str, int]

    def line(self) -> str:
        parts = ", ".join(f"{split} {self.mapped[split]} of {self.rows[split]}" for split in self.mapped)
        return f"oov_user_token: rows mapped to the reserved user token: {parts}"


def map_unseen_users(config, splits: Dict[str, Any]) -> OOVTokenCounts:
    """Rewrite the user column of each split's dataset (`splits`: 'train', 'valid', 'test' ->
    RecBole Dataset) as the module doc says. The column is replaced by a new tensor, never
    written in place (a split's column may share storage with the whole dataset's)."""
    field = config["USER_ID_FIELD"]
    train = splits["train"]
    train_users = train.inter_feat[field]
    known = torch.bincount(train_users.long(), minlength=train.num(field)) > 0
    known[RESERVED_ID] = False
    rng = np.random.default_rng(int(config["seed"]))
    mapped, rows = {}, {}
    for split, dataset in splits.items():
        users = dataset.inter_feat[field]
        if split == "train":
            mask = torch.from_numpy(rng.random(len(users)) < float(config["oov_user_token_rate"]))
        else:
            mask = ~known[users]
        dataset.inter_feat.interaction[field] = torch.where(mask, torch.full_like(users, RESERVED_ID), users)
        mapped[split], rows[split] = int(mask.sum()), len(users)
    counts = OOVTokenCounts(mapped, rows)
    logging.getLogger().info(counts.line())
    return counts
