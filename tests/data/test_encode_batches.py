"""Tests of recbole_dlrrec.data.encode_batches and of the vectors it makes a pure function of the
text: one token length per batch, one torch thread, one process per core."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random

import numpy as np
import pytest

from recbole_dlrrec.data.encode_batches import one_thread, plan_chunks, token_lengths
from recbole_dlrrec.data.encoder import TextEncoder, cache_key

REAL_REVIEWS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "..",
    "shared",
    "data",
    "google-local-hi-ms",
    "reviews.json.gz",
)


def test_chunks_hold_one_length_each_and_depend_only_on_the_set_of_texts():
    rng = random.Random(0)
    keys = [f"k{i:03d}" for i in range(60)]
    lengths = [rng.choice([3, 5, 9]) for _ in keys]
    chunks = plan_chunks(keys, lengths, batch_size=7)
    assert sorted(itertools.chain.from_iterable(chunks)) == list(range(60))
    for chunk in chunks:
        assert len(chunk) <= 7 and len({lengths[i] for i in chunk}) == 1
    assert [lengths[c[0]] for c in chunks] == sorted((lengths[c[0]] for c in chunks), reverse=True)
    shuffled = list(range(60))
    rng.shuffle(shuffled)
    again = plan_chunks([keys[i] for i in shuffled], [lengths[i] for i in shuffled], batch_size=7)
    assert [[keys[shuffled[i]] for i in c] for c in again] == [[keys[i] for i in c] for c in chunks]
    with pytest.raises(ValueError, match="3 keys but 2 lengths"):
        plan_chunks(["a", "b", "c"], [1, 2], 4)


def test_token_lengths_are_the_attention_masks_sums():
    class Tokenizing:
        def tokenize(self, texts):
            width = max(len(t.split()) for t in texts) + 2
            return {"attention_mask": [[1] * (len(t.split()) + 2) + [0] * (width - len(t.split()) - 2) for t in texts]}

    assert token_lengths(Tokenizing(), ["a b", "c", "d e f g"]) == [4, 3, 6]
    assert token_lengths(object(), ["abc", "d"]) == [3, 1]  # no tokenizer: characters


@pytest.mark.slow
def test_one_thread_narrows_torch_on_the_cpu_only_and_restores_it():
    import torch

    before = torch.get_num_threads()
    with one_thread("cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with one_thread("cuda"):
        assert torch.get_num_threads() == before


def test_device_auto_is_the_gpu_when_torch_sees_one_and_its_vectors_are_cached_apart(tmp_path, monkeypatch):
    import torch

    from recbole_dlrrec.data.encoder import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    enc = TextEncoder(str(model_dir), cache_path=str(tmp_path / "c.sqlite"), show_progress=False)
    gpu_identity = enc._cache_identity()
    assert gpu_identity == enc.model_id + "@cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    cpu = TextEncoder(str(model_dir), cache_path=str(tmp_path / "c.sqlite"), show_progress=False)
    assert cpu._cache_identity() == cpu.model_id
    assert cache_key(cpu._cache_identity(), "t") != cache_key(gpu_identity, "t")


def real_short_reviews(n: int) -> list[str]:
    """The first ``n`` distinct real review texts of at most 200 characters (skips without the data)."""
    if not os.path.isfile(REAL_REVIEWS):
        pytest.skip(f"real Google Local data not found at {os.path.normpath(REAL_REVIEWS)}")
    texts: dict[str, None] = {}
    with gzip.open(REAL_REVIEWS, "rt", encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line).get("text") or ""
            if text.strip() and len(text) <= 200:
                texts[text] = None
            if len(texts) >= n:
                break
    return list(texts)


@pytest.mark.slow
def test_vectors_are_the_same_bytes_for_any_cache_state_batch_size_worker_and_thread_count(tmp_path):
    """Real all-MiniLM-L6-v2 on 48 real reviews: a cold cache in one process, a cold cache in two
    worker processes with another batch size, a cache partly filled by other batches (and torch
    on two threads outside), and the warm cache give byte-identical vectors."""
    import torch

    texts = real_short_reviews(48)

    def build(name: str, workers: int, batch_size: int, first: list[str] | None = None) -> np.ndarray:
        path = str(tmp_path / f"{name}.sqlite")
        if first:
            with TextEncoder(cache_path=path, batch_size=5, workers=1, show_progress=False) as pre:
                pre.encode(first)
        with TextEncoder(cache_path=path, batch_size=batch_size, workers=workers, show_progress=False) as enc:
            out = enc.encode(texts)
            assert enc.last_stats["encoded"] == len(set(texts) - set(first or []))
        return out

    cold = build("cold", workers=1, batch_size=64)
    assert cold.shape == (48, 384)
    pooled = build("pooled", workers=2, batch_size=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        partly = build("partly", workers=1, batch_size=16, first=texts[::3] + ["an unrelated text to pad the batch"])
    finally:
        torch.set_num_threads(threads)
    with TextEncoder(cache_path=str(tmp_path / "pooled.sqlite"), show_progress=False) as warm_enc:
        warm = warm_enc.encode(texts)
        assert warm_enc.last_stats["cached"] == 48
    for other in (pooled, partly, warm):
        assert other.tobytes() == cold.tobytes()
