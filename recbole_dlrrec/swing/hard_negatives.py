"""Hard negatives for the contrastive heads (``cl_negatives: hard``).

A hard negative of an anchor is close to it in text but behaviourally unrelated: among the ids
that share *no* TRAIN interaction with the anchor (items: no common user; users: no common item;
every train row counts, whatever its label), the ``cl_hard_pool`` (m) nearest by cosine of the
side's raw text vectors. The anchor itself, the padding id 0 and ids without a text vector are
never hard ids; an anchor without a text vector has none.

Since a positive always shares an interaction with its anchor (SWING, co-occurrence cosine and
Jaccard are all zero without a common neighbour, and their edges are a subset of the train
rows), a hard id is never the drawn positive either; the sampler still checks it.

Per batch (:meth:`HardNegativeSampler.sample`) each anchor gets ``N`` negatives: ``min(N, count)``
distinct ids drawn uniformly from its ``count`` hard ids, and the remaining ``N - count`` (when the
anchor has fewer than ``N``) drawn uniformly, with replacement, from the corpus minus {anchor, its
drawn positive}: the same law as ``cl_negatives: random``. All on the device, from the sampler's
own generator, with no host synchronisation.

The table (:func:`hard_negative_table`) is built in row chunks: one chunk's cosines (chunk x n,
float32) and its overlap (a sparse product) at a time, so 28k users need tens of MB, not n x n.
It is cached beside the SWING cache (:func:`hard_negatives_for_dataset`), keyed by a digest of
the side's text vectors as aligned to the dataset's ids, the train edges and m.
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Dict, Iterable, Optional, Union

import numpy as np
import torch

from recbole_dlrrec.config.stack import declared_default
from recbole_dlrrec.swing.graph import NeighbourTable, _check_count, binarize
from recbole_dlrrec.swing.sampler import default_rank, rank_seed

__all__ = ["HardNegativeSampler", "hard_negative_table", "hard_negatives_for_dataset"]

#: Cosines per chunk (rows x n): 2^24 float32 = 64 MB, plus one partition copy of it.
CHUNK_ELEMENTS = 1 << 24


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def hard_negative_table(
    vectors, has_vector, graph, pool: int, first_valid_id: int = 1, chunk_elements: int = CHUNK_ELEMENTS
) -> NeighbourTable:
    """Per node, the ``pool`` ids closest by text cosine among those sharing no connector.

    vectors: n x T text vectors (row = internal id); has_vector: n bool (False rows are never
    hard ids and get none); graph: n x connectors sparse (the side's train interactions);
    ids below ``first_valid_id`` are padding. Returns a :class:`NeighbourTable` (scores =
    cosines, which may be negative; ties to the lower id; padding -1).
    """
    pool = _check_count(pool, "cl_hard_pool", allow_none=False)
    unit = _unit_rows(np.asarray(vectors, dtype=np.float32))
    has_vector = np.asarray(has_vector, dtype=bool)
    n = unit.shape[0]
    if has_vector.shape != (n,) or graph.shape[0] != n:
        raise ValueError(
            f"vectors ({n} rows), has_vector {has_vector.shape} and graph {graph.shape} must describe the same nodes"
        )
    nodes = binarize(graph)
    connectors = nodes.T.tocsr()
    candidate = has_vector.copy()
    candidate[:first_valid_id] = False
    m = min(pool, n)
    ids = np.full((n, pool), NeighbourTable.PAD_ID, dtype=np.int64)
    scores = np.zeros((n, pool), dtype=np.float64)
    rows_per_chunk = max(1, chunk_elements // max(n, 1))
    for start in range(0, n, rows_per_chunk):
        end = min(n, start + rows_per_chunk)
        cosine = unit[start:end] @ unit.T  # chunk x n
        cosine[:, ~candidate] = -np.inf
        cosine[~candidate[start:end]] = -np.inf  # anchors without a vector (or padding): none
        cosine[np.arange(end - start), np.arange(start, end)] = -np.inf
        overlap = (nodes[start:end] @ connectors).tocoo()
        cosine[overlap.row, overlap.col] = -np.inf
        # The m-th largest per row is a threshold; ties at it are settled below by id.
        threshold = np.partition(cosine, n - m, axis=1)[:, n - m]
        rows, cols = np.nonzero((cosine >= threshold[:, None]) & np.isfinite(cosine))
        values = cosine[rows, cols]
        order = np.lexsort((cols, -values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        first = np.searchsorted(rows, np.arange(end - start))
        rank = np.arange(rows.shape[0]) - first[rows]
        keep = rank < pool
        ids[rows[keep] + start, rank[keep]] = cols[keep]
        scores[rows[keep] + start, rank[keep]] = values[keep]
    counts = (ids != NeighbourTable.PAD_ID).sum(axis=1)
    return NeighbourTable(ids=ids, scores=scores, counts=counts)


class HardNegativeSampler:
    """Draws each anchor's negatives from its hard ids, topped up uniformly (module docstring).

    Args:
        hard_ids: n x m ids (padding -1 after the real ones), e.g. NeighbourTable.ids.
        counts: n, real hard ids per row.
        n_corpus: uniform top-ups are drawn from ``[first_valid_id, n_corpus)``.
        seed, rank: the generator's stream, as in :class:`~recbole_dlrrec.swing.sampler.SwingSampler`.
    """

    def __init__(
        self,
        hard_ids,
        counts,
        n_corpus: int,
        seed: int = 0,
        device: Union[str, torch.device, None] = "cpu",
        first_valid_id: int = 1,
        rank: Optional[int] = None,
    ):
        self.device = torch.device(device if device is not None else "cpu")
        self.first_valid_id = _check_int(first_valid_id, "first_valid_id", 0)
        # At least 3 ids, so that one is left after excluding an anchor and its positive.
        self.n_corpus = _check_int(n_corpus, "n_corpus", self.first_valid_id + 3)
        self.hard_ids = torch.as_tensor(np.asarray(hard_ids), dtype=torch.long, device=self.device)
        self.counts = torch.as_tensor(np.asarray(counts), dtype=torch.long, device=self.device)
        if self.hard_ids.dim() != 2 or self.counts.shape != self.hard_ids.shape[:1]:
            raise ValueError(
                f"hard_ids must be n x m and counts n, got {tuple(self.hard_ids.shape)} and {tuple(self.counts.shape)}"
            )
        seed = _check_int(seed, "seed", 0)
        rank = _check_int(default_rank() if rank is None else rank, "rank", 0)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(rank_seed(seed, rank))
        self._float = torch.float32 if self.device.type == "mps" else torch.float64

    @classmethod
    def from_table(cls, table: NeighbourTable, n_corpus: int, **kwargs) -> "HardNegativeSampler":
        return cls(table.ids, table.counts, n_corpus, **kwargs)

    def _uniform_excluding(self, anchors: torch.Tensor, positives: torch.Tensor, n: int) -> torch.Tensor:
        """B x n ids uniform on the corpus minus {anchor, positive}: draw among the allowed count,
        then shift past the excluded ids in increasing order (exact, no rejection loop)."""
        low, high = self.first_valid_id, self.n_corpus
        anchor_in = (anchors >= low) & (anchors < high)
        positive_in = (positives >= low) & (positives < high) & (positives != anchors)
        beyond = torch.full_like(anchors, high)  # an exclusion no draw reaches
        first = torch.where(anchor_in, anchors, beyond)
        second = torch.where(positive_in, positives, beyond)
        first, second = torch.minimum(first, second), torch.maximum(first, second)
        allowed = (high - low) - anchor_in.long() - positive_in.long()
        u = torch.rand((anchors.shape[0], n), generator=self.generator, device=self.device, dtype=self._float)
        draws = low + torch.minimum((u * allowed[:, None]).long(), allowed[:, None] - 1)
        draws = draws + (draws >= first[:, None]).long()
        return draws + (draws >= second[:, None]).long()

    def sample(self, anchors: torch.Tensor, positives: torch.Tensor, n_negatives: int) -> torch.Tensor:
        """Negatives ``B x n_negatives`` for ``anchors`` / their drawn ``positives`` (B each)."""
        n_negatives = _check_int(n_negatives, "n_negatives", 0)
        anchors = anchors.to(self.device).long()
        positives = positives.to(self.device).long()
        negatives = self._uniform_excluding(anchors, positives, n_negatives)
        n_hard = min(n_negatives, self.hard_ids.shape[1])
        if n_hard == 0 or anchors.numel() == 0:
            return negatives
        table = self.hard_ids[anchors]  # B x m
        count = self.counts[anchors]
        column = torch.arange(table.shape[1], device=self.device)
        # Distinct hard ids: the columns of the n_hard smallest random keys, padding keyed last.
        keys = torch.rand(table.shape, generator=self.generator, device=self.device, dtype=self._float)
        keys = keys.masked_fill(column[None, :] >= count[:, None], 2.0)
        picked = table.gather(1, keys.argsort(dim=1)[:, :n_hard])  # B x n_hard
        use = (column[None, :n_hard] < count[:, None]) & (picked != positives[:, None]) & (picked != anchors[:, None])
        negatives[:, :n_hard] = torch.where(use, picked, negatives[:, :n_hard])
        return negatives


def _vectors_digest(vectors: np.ndarray, has_vector: np.ndarray) -> str:
    """SHA-256 of the text vectors as the model reads them: the side file's content, aligned to
    the dataset's internal ids (so a re-mapped dataset with the same file is another key)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(vectors.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    digest.update(np.asarray(has_vector, dtype=bool).tobytes())
    return digest.hexdigest()


def hard_pool_from_config(config) -> int:
    """``cl_hard_pool``, checked; a config without the key (or with null) gets the value of the
    property file that declares it (properties/model/DLRREC.yaml)."""
    pool = config["cl_hard_pool"] if "cl_hard_pool" in config else None
    return _check_count(declared_default("cl_hard_pool") if pool is None else pool, "cl_hard_pool", allow_none=False)


def hard_negatives_for_dataset(config, train_dataset, sides: Iterable[str], logger=None) -> Dict[str, NeighbourTable]:
    """{side: hard-id table} for ``sides`` ('item' / 'user') of a TRAIN split, cached under
    :func:`~recbole_dlrrec.swing.cache.swing_cache_dir`. Raises TextVectorsMissingError (an
    InputError) naming the key when a side has no text vectors."""
    from recbole_dlrrec.data.text_vectors import SIDES, TextVectorsMissingError, load_text_table
    from recbole_dlrrec.swing.cache import edges_fingerprint, load_or_compute, swing_cache_dir, train_edges

    pool = hard_pool_from_config(config)
    graph = train_edges(config, train_dataset, "all")  # any shared train row disqualifies
    fingerprint = edges_fingerprint(graph)
    tables = {}
    for side in sides:
        text = load_text_table(config, train_dataset, side)
        if text is None:
            key = SIDES[side][1]
            raise TextVectorsMissingError(
                f"cl_negatives: hard needs {side} text vectors, but {key} is not set for dataset "
                f"{config['dataset']!r}; set {key} or choose another cl_negatives"
            )
        vectors, has_vector = text.vectors.numpy(), text.has_vector.numpy()
        side_graph = graph if side == "user" else graph.T.tocsr()
        key_params = {
            "dataset": str(config["dataset"]),
            "side": side,
            "pool": pool,
            "vectors": _vectors_digest(vectors, has_vector),
        }

        def compute(vectors=vectors, has_vector=has_vector, side_graph=side_graph):
            table = hard_negative_table(vectors, has_vector, side_graph, pool)
            return {"ids": table.ids.astype(np.int32), "scores": table.scores.astype(np.float32)}

        result = load_or_compute(
            swing_cache_dir(config), key_params, compute, fingerprint, logger, prefix=f"hard_{side}"
        )
        ids = result.arrays["ids"].astype(np.int64)
        tables[side] = NeighbourTable(
            ids=ids, scores=result.arrays["scores"], counts=(ids != NeighbourTable.PAD_ID).sum(axis=1)
        )
    return tables
