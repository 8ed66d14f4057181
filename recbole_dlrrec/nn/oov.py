"""Unseen ids by design: one learned out-of-vocabulary (OOV) row per id field, and ID dropout.

An id that never occurs in the TRAIN split has an embedding row that no gradient ever reached
(its initial random draw). `OOVArch` replaces, in the token fields' vectors B x F_tok x D, the
row of every such id by one learned D-vector of its field (the OOV row), so an unseen user or
item is scored as "an unknown one" instead of as noise. The OOV row is trained by ID dropout:
in training each row's known id is replaced by the OOV row with probability `rate` (per field,
per step; the draws come from a generator of the arch's own, seeded, so the same seed gives the
same masks and the global random stream stays as it was).

A caller may hand over substitutes per field (B x D vectors with a B bool "available" flag, e.g.
DLRREC's text-to-ID mapper output for rows whose id has text): a replaced row then takes its
substitute where available and the OOV row elsewhere, in training (dropped ids) and in evaluation
(unseen ids) alike, so what the network learns on dropped ids is what it meets on unseen ones.

A model with a first-order term (a per-id scalar weight, FM-style) swaps the replaced rows'
weights for one learned OOV bias per field too (`first_order_shift`), with the same draw.

Shapes: B = batch, F_tok = token fields, H = fields handled here, D = embedding size, N_f = ids
of field f.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from recbole_dlrrec.nn.layers import mlp

#: field position -> (B x D substitute vectors, B bool: the row has a substitute).
Substitutes = Dict[int, Tuple[torch.Tensor, torch.Tensor]]


class OOVArch(nn.Module):
    """OOV rows and ID dropout for some of the token fields.

    Args:
        fields: the positions (in the token fields, B x F_tok) of the id fields it handles.
        known: per field of `fields`, N_f bool: the ids seen in TRAIN (id 0, RecBole's padding,
            is never known).
        dim: D.
        rates: per field of `fields`, the ID dropout rate in [0, 1) (0: unseen ids still map to
            the OOV row, which then stays at its initial zeros).
        seed: seeds the dropout generator (one per device, made on first use).
        first_order: also hold one OOV bias per field (`oov_bias`, H) for a model's first-order
            term (a per-id scalar weight): `first_order_shift`.
    """

    def __init__(
        self,
        fields: Sequence[int],
        known: Sequence[torch.Tensor],
        dim: int,
        rates: Sequence[float],
        seed: int,
        first_order: bool = False,
    ):
        super().__init__()
        if not (len(fields) == len(known) == len(rates)):
            raise ValueError(f"one known mask and one rate per field, got {len(fields)}, {len(known)}, {len(rates)}")
        for rate in rates:
            if not 0 <= rate < 1:
                raise ValueError(f"ID dropout rate must be in [0, 1), got {rate}")
        self.fields = [int(f) for f in fields]
        self.rates = [float(r) for r in rates]
        self.seed = int(seed)
        for i, mask in enumerate(known):
            self.register_buffer(f"known_{i}", mask.bool(), persistent=False)
        # Zeros, not a random draw: an unknown id starts as "no information", and the random
        # stream of every later initialisation stays as it was without the switch.
        self.oov_rows = nn.Parameter(torch.zeros(len(self.fields), dim))
        self.oov_bias = nn.Parameter(torch.zeros(len(self.fields))) if first_order else None
        self._generators: Dict[str, torch.Generator] = {}

    def known(self, i: int) -> torch.Tensor:
        """N_f bool: the known ids of the i-th handled field."""
        return getattr(self, f"known_{i}")

    def known_at(self, field: int, ids: torch.Tensor) -> torch.Tensor:
        """Bool like `ids`: which ids of the token field at position `field` are known."""
        return self.known(self.fields.index(field))[ids]

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def replaced(self, i: int, ids: torch.Tensor) -> torch.Tensor:
        """B bool: the rows whose id of the i-th handled field takes the OOV path: unseen ids
        always, and in training a `rate` share of the known ones."""
        out = ~self.known(i)[ids]
        if self.training and self.rates[i] > 0:
            draw = torch.rand(ids.shape, generator=self._generator(ids.device), device=ids.device)
            out = out | (draw < self.rates[i])
        return out

    def replaced_rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token ids B x F_tok -> B x H bool (H = handled fields, in `fields` order): one step's
        OOV path, drawn once and shared by the vectors and the first-order weights."""
        return torch.stack([self.replaced(i, token_ids[:, field]) for i, field in enumerate(self.fields)], dim=1)

    def forward(
        self,
        token_ids: torch.Tensor,
        token_vectors: torch.Tensor,
        replaced: Optional[torch.Tensor] = None,
        substitutes: Optional[Substitutes] = None,
    ) -> torch.Tensor:
        """token ids B x F_tok, their rows B x F_tok x D -> B x F_tok x D with the handled
        fields' replaced rows (`replaced` B x H, drawn here when None) swapped for their
        substitute or their field's OOV row."""
        replaced = self.replaced_rows(token_ids) if replaced is None else replaced
        columns = list(token_vectors.unbind(1))
        for i, field in enumerate(self.fields):
            fill = self.oov_rows[i].to(token_vectors.dtype).expand_as(columns[field])
            if substitutes is not None and field in substitutes:
                vectors, available = substitutes[field]
                fill = torch.where(available.unsqueeze(1), vectors.to(token_vectors.dtype), fill)
            columns[field] = torch.where(replaced[:, i].unsqueeze(1), fill, columns[field])
        return torch.stack(columns, dim=1)

    def first_order_shift(self, weights: torch.Tensor, replaced: torch.Tensor) -> torch.Tensor:
        """The change of a first-order term (a per-id scalar weight, summed over fields) when
        the replaced rows take their field's OOV bias: `weights` B x H (the handled fields'
        per-id weights), `replaced` B x H -> B. Needs `first_order`."""
        assert self.oov_bias is not None, "built without first_order"
        return torch.where(replaced, self.oov_bias.to(weights.dtype) - weights, torch.zeros_like(weights)).sum(1)


class TextToIdMap(nn.Module):
    """A small network from a side's text vector (B x D, the text tower's output) to its ID
    embedding space (B x D): what an id with text but no trained row gets instead of the OOV
    row. Fitted on warm ids by `fit_loss`; its input is detached, so it reads the text path and
    never trains it.

    Args:
        dim: D.
        hidden: hidden sizes of its MLP (ReLU between layers).
    """

    def __init__(self, dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(dim, hidden, dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.net(text.detach())

    def fit_loss(self, text: torch.Tensor, id_vectors: torch.Tensor, warm: torch.Tensor) -> torch.Tensor:
        """Mean squared error (over the warm rows, mean over D) between the map of `text` B x D
        and the detached ID rows `id_vectors` B x D; `warm`: B bool, rows with a trained ID row
        and a text. 0 (with a gradient path) when no row is warm."""
        error = (self(text) - id_vectors.detach().to(text.dtype)).float().pow(2).mean(1)
        weights = warm.float()
        return (error * weights).sum() / weights.sum().clamp(min=1.0)
