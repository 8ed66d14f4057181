"""How the texts TextEncoder must encode become forward passes, so that a vector is a pure function
of its text: the same bytes whatever the cache held, the batch size, the worker count or the
thread count.

Measured with all-MiniLM-L6-v2 on real reviews (torch 2.13, CPU): a text's vector is bit-identical
whether it is encoded alone or in a batch of other texts of the SAME token length (no padding),
in any order, for batches of 1 to 128, when torch runs on one thread. It moves by up to 1e-7 when
the batch is padded (texts of other lengths beside it), and when torch runs on two threads (the
split of the matrix products then depends on the batch's shape). So:

* :func:`plan_chunks` groups the texts by exact token length (as the model's own tokenizer counts
  it, truncation included) and cuts each group into chunks of at most ``batch_size``: no chunk is
  ever padded;
* every chunk is encoded by a model on ONE torch thread (:func:`one_thread`); the cores are used
  by running one process per core (encode_workers.WorkerPool), not by widening torch's pool.

A model object without a tokenizer (a test double, a custom encoder) is grouped by character
length instead; its vectors are whatever it makes of each chunk.

On a GPU the kernels depend on the batch's shape, so vectors there are not bit-for-bit those of
the CPU: the encoder keeps them under their own cache identity (see ``TextEncoder``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Sequence

import numpy as np

#: Texts per tokenizer call when counting token lengths (padded to the longest of the call).
_LENGTH_CALL = 1024


def token_lengths(model: Any, texts: Sequence[str]) -> list[int]:
    """Tokens per text as ``model.encode`` will feed them (special tokens and truncation
    included): the attention mask's sum from the sentence-transformers preprocessing
    (:func:`preprocessor`). Character lengths for a model without one."""
    tokenize = preprocessor(model)
    if tokenize is None:
        return [len(t) for t in texts]
    lengths: list[int] = []
    for start in range(0, len(texts), _LENGTH_CALL):
        features = tokenize(list(texts[start : start + _LENGTH_CALL]))
        lengths.extend(int(n) for n in np.asarray(features["attention_mask"]).sum(axis=1))
    return lengths


def preprocessor(model: Any) -> Any:
    """The model's text-to-features step: ``preprocess`` (sentence-transformers 6), else
    ``tokenize`` (earlier versions, and the ONNX stand-in); None for a model without one."""
    return getattr(model, "preprocess", None) or getattr(model, "tokenize", None)


def plan_chunks(keys: Sequence[str], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into ``keys`` grouped into chunks of one token length each, at most
    ``batch_size`` long; longest texts first, then by key, so the plan depends only on the set
    of texts (their keys), never on the order they came in."""
    if len(keys) != len(lengths):
        raise ValueError(f"{len(keys)} keys but {len(lengths)} lengths")
    order = sorted(range(len(keys)), key=lambda i: (-lengths[i], keys[i]))
    chunks: list[list[int]] = []
    for i in order:
        last = chunks[-1] if chunks else None
        if last is None or lengths[last[0]] != lengths[i] or len(last) >= batch_size:
            chunks.append([i])
        else:
            last.append(i)
    return chunks


@contextlib.contextmanager
def one_thread(device: str) -> Iterator[None]:
    """torch (and numba) on one CPU thread inside the block when ``device`` is the CPU (the
    counts as before afterwards); nothing changes for a GPU."""
    if device != "cpu":
        yield
        return
    from recbole_dlrrec.runtime.threads import threads_within

    with threads_within(1):
        yield


def encode_chunk(model: Any, texts: list[str]) -> np.ndarray:
    """One forward pass over ``texts`` (one chunk of :func:`plan_chunks`): float32 ``[n, dim]``,
    as the model normalises it; ``batch_size=len(texts)`` so the model never splits it."""
    out = model.encode(
        texts, batch_size=max(1, len(texts)), normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(out)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1
