"""DLRREC's item text from reviews (`item_review_text`): each row sees one more item vector, the
mean of the item's TRAIN-period review vectors, beside the item's metadata text.

    ({dataset}.itemrev.npz per item, {dataset}.itemrevhist.npz per train row; written by the
    converter with --user_vector mean)
    (user, item) of B rows --ItemReviewLookup--> B rows of the item TextTower's table
        --the item tower (the metadata's reduction and adapter)--> B x D, one more feature
    vector in the interaction (B x F x D becomes B x (F + 1) x D).

Which review vector a row sees follows the user history's rule: a listed TRAIN row reads the
mean of its item's strictly earlier train reviews (never its own review, whose sentiment
predicts its label); every other row (valid, test) the mean of all the item's train reviews. A
row with no such review (the item's first train review, an item without train reviews) gets
what the user history gives a row without text: the tower's output of a zero vector, or the
learned vector under `no_history: learned`. A training row the lookup cannot find (its user
replaced by oov_user_token's reserved token) reads no vector either (ItemReviewLookup).

The item tower's table grows, metadata rows first, so an item id still reads its metadata row:

    rows [0, N)          the metadata vectors (unchanged; the contrastive heads, the collapse
                         monitor and the V0 PCA fit read only these)
    rows [N, 2N)         per item id, the mean of its train reviews (row N: none)
    rows [2N, 2N + m)    the per-train-row means of earlier reviews

Why a feature of its own through the SAME reduction, rather than the review vector averaged into
the metadata vector before the tower: the interaction can weigh what an item is (metadata) and
what its visitors said (reviews) apart, and an item without reviews reads "no reviews" instead of
a halved metadata vector; the heads keep contrasting the metadata vector, unchanged. Both come
from one sentence encoder, so one reduction serves both and the switch adds no tower (with
`no_history: learned`, one learned vector).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.data.text_vectors import ItemReviews, TextTable, load_item_reviews
from recbole_dlrrec.nn.text import RowHistoryLookup


def load_item_review_inputs(switch: bool, reduction: str, config, dataset, item_table: Optional[TextTable]):
    """The dataset's ItemReviews when `switch` (item_review_text) is on, else None.
    ConfigKeyError when there is no item text tower for them; TextVectorsMissingError (one line
    naming the file) when the files are absent or do not fit."""
    if not switch:
        return None
    if item_table is None:
        why = "reduction is 'none'" if reduction == "none" else f"item_text_vec is {config['item_text_vec']!r}"
        raise ConfigKeyError(f"item_review_text: true needs the item text tower, but {why}")
    return load_item_reviews(config, dataset, item_table.dim)


def item_tower_table(
    table: TextTable, reviews: ItemReviews, learned_missing: bool
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(vectors (2N + m) x T, missing flags or None) of the item tower under item_review_text
    (the layout in the module doc). With `learned_missing` (no_history: learned) the review rows
    without a vector take the learned vector; the metadata rows never do (as without the switch)."""
    n = len(table.vectors)
    if len(reviews.table.vectors) != n:
        raise ValueError(f"item review table has {len(reviews.table.vectors)} rows, the item text table {n}")
    vectors = torch.cat([table.vectors, reviews.table.vectors, reviews.rows.vectors])
    if not learned_missing:
        return vectors, None
    none = torch.zeros(n, dtype=torch.bool)
    return vectors, torch.cat([none, ~reviews.table.has_vector, none.new_zeros(len(reviews.rows.vectors))])


class ItemReviewLookup(RowHistoryLookup):
    """(user, item) of B rows -> B rows of the item tower's table (module doc): 2N + r for a
    listed train row with earlier reviews, N (no vector) for one without, N + item (the item's
    whole train period) for every other row at evaluation.

    In training every row is a train row, so a row the lookup cannot find (oov_user_token put
    the reserved user in its user's place) reads no vector: the item's whole train period holds
    the row's own review."""

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        rows = super().forward(users, items)
        if self.training:
            rows = torch.where(rows < 2 * self.offset, torch.full_like(rows, self.offset), rows)
        return rows


def item_review_lookup(num_item_rows: int, reviews: ItemReviews) -> ItemReviewLookup:
    """The ItemReviewLookup of `reviews` for an item table of `num_item_rows` (N) rows."""
    n = int(num_item_rows)
    rows = reviews.rows.rows
    rows = torch.where(rows >= 0, rows + 2 * n, torch.full_like(rows, n))
    return ItemReviewLookup(reviews.rows.keys, rows, reviews.rows.num_items, unlisted="item", offset=n)
