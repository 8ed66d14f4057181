"""DLRREC's text-to-ID mapper (`text_to_id`): an unseen id with text gets an ID embedding from it.

With `oov_embedding` an id never seen in TRAIN takes its side's learned OOV row (nn/oov.py).
DLRREC knows more about such an id when it has a text vector (a cold item's metadata, a user's
earlier reviews): `text_to_id` fits, per side with text, a small network (nn/oov.py
TextToIdMap) from the side's text vector (the text tower's output, B x D, detached) to the ID
embedding space, on the warm rows of each training batch (known id and a text: mean squared
error to the detached ID rows, one more loss part, `text_to_id`). A row on the OOV path (an
unseen id at evaluation, an ID-dropped id in training) then takes the map of its text where it
has one and the OOV row where it has none, so the interaction learns on dropped ids what it
meets on unseen ones.

Shapes: B = batch, D = embedding size, N = rows of a side's text table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, cast

import torch
from torch import nn

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.nn.oov import Substitutes, TextToIdMap

if TYPE_CHECKING:
    from recbole_dlrrec.models.dlrrec import DLRREC, DLRRECOptions
    from recbole_dlrrec.models.dlrrec_parts import TextInputs


class TextToIdSides(nn.Module):
    """The text-to-ID maps of the sides with text, and which rows of each side's text table
    hold a text (N bool per side: the table's own flags, then the user history rows)."""

    def __init__(self, maps: Dict[str, TextToIdMap], has_text: Dict[str, torch.Tensor]):
        super().__init__()
        self.maps = nn.ModuleDict(maps)
        for side, flags in has_text.items():
            self.register_buffer(f"has_text_{side}", flags.bool(), persistent=False)

    def has_text(self, side: str) -> torch.Tensor:
        return getattr(self, f"has_text_{side}")

    def _rows(
        self, model: "DLRREC", interaction, extras: List[torch.Tensor]
    ) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
        """side -> (B x D text of the batch's rows, B bool: the row's text table row holds a
        text); `extras` in the order of model.text_sides."""
        texts = dict(zip(model.text_sides, extras))
        return {side: (texts[side], self.has_text(side)[model.tower_rows(side, interaction)]) for side in self.maps}

    def substitutes(self, model: "DLRREC", interaction, extras: List[torch.Tensor]) -> Substitutes:
        """token field position -> (B x D mapped text, B bool: the row has a text)."""
        return {
            model.id_field_position(side): (self.maps[side](text), has)
            for side, (text, has) in self._rows(model, interaction, extras).items()
        }

    def fit_loss(
        self, model: "DLRREC", interaction, token_vectors: torch.Tensor, extras: List[torch.Tensor]
    ) -> torch.Tensor:
        """The maps' fit on the batch's warm rows (summed over sides): `token_vectors` B x
        F_tok x D are the raw token rows (before the OOV swap)."""
        assert model.oov_arch is not None, "text_to_id is built only with oov_embedding"
        total = torch.zeros((), device=token_vectors.device)
        for side, (text, has) in self._rows(model, interaction, extras).items():
            field = model.id_field_position(side)
            warm = has & model.oov_arch.known_at(field, interaction[model.id_field(side)])
            total = total + cast(TextToIdMap, self.maps[side]).fit_loss(text, token_vectors[:, field], warm)
        return total


def build_text_to_id(options: "DLRRECOptions", text: "TextInputs") -> Optional[TextToIdSides]:
    """The maps when `text_to_id` is on (None when off); ConfigKeyError when it cannot work."""
    if not options.text_to_id:
        return None
    if not options.oov_embedding:
        raise ConfigKeyError("text_to_id: true needs oov_embedding: true (the map serves the ids on the OOV path)")
    if not text.tables:
        raise ConfigKeyError("text_to_id: true needs text vectors (reduction is 'none' or the dataset has none)")
    has_text = {}
    for side, table in text.tables.items():
        flags = table.has_vector
        if side == "user" and text.history is not None:  # the history rows follow (dlrrec_parts.text_tower)
            flags = torch.cat([flags, torch.ones(len(text.history.vectors), dtype=torch.bool)])
        has_text[side] = flags
    maps = {side: TextToIdMap(options.embedding_size, options.text_to_id_hidden) for side in text.tables}
    return TextToIdSides(maps, has_text)
