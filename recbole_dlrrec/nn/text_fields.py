"""Text as float fields, for models built on RecBole's field embeddings (the text-aware baselines).

    rows per side B --frozen value table--> B x k values per side --> B x F_t values (F_t = k x sides)
    values B x F_t --x one learned D-vector per field--> B x F_t x D   (RecBole's float-field embedding)
    values B x F_t --. one learned weight per field--> B x 1           (its first-order term)

Each side's table holds, per row, the side's text vector reduced by a frozen PCA (fitted by the
caller on the train ids' vectors, scaled to the spread of RecBole's float fields) and zeros for rows without
text: an id with no vector sits at the train mean of every component. The tables are data (rebuilt
from the side files), kept as non-persistent buffers; only the field vectors and weights learn.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class TextFieldArch(nn.Module):
    """Per-side value tables -> B x F_t x D field vectors and the B x 1 first-order term.

    Args:
        tables: one N_s x k float table per side (row = the side's table row, e.g. the RecBole id).
        dim: D.
    """

    def __init__(self, tables: Sequence[torch.Tensor], dim: int):
        super().__init__()
        if not tables or len({int(t.shape[1]) for t in tables}) != 1:
            raise ValueError(f"need one or more tables with one width, got {[tuple(t.shape) for t in tables]}")
        for index, table in enumerate(tables):
            self.register_buffer(f"table_{index}", table.float(), persistent=False)
        self.sides = len(tables)
        self.num_fields = self.sides * int(tables[0].shape[1])
        # nn.Embedding, as RecBole's FLEmbedding / FMFirstOrderLinear hold theirs, so that a
        # model's own initialisation (xavier on every Embedding) treats them as its float fields.
        self.field_vectors = nn.Embedding(self.num_fields, dim)
        self.field_weights = nn.Embedding(self.num_fields, 1)
        self.register_buffer("field_index", torch.arange(self.num_fields), persistent=False)

    def values(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        """One B row tensor per side -> B x F_t values."""
        if len(rows) != self.sides:
            raise ValueError(f"need {self.sides} row tensors, got {len(rows)}")
        return torch.cat([getattr(self, f"table_{index}")[r] for index, r in enumerate(rows)], dim=1)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """B x F_t values -> B x F_t x D."""
        return values.unsqueeze(2) * self.field_vectors(self.field_index)

    def first_order(self, values: torch.Tensor) -> torch.Tensor:
        """B x F_t values -> B x 1."""
        return values @ self.field_weights(self.field_index)
