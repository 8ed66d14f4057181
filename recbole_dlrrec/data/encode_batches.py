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
  by running one process per core (:class:`WorkerPool`), not by widening torch's pool.

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


# -- one process per core ------------------------------------------------------------------------
_WORKER_MODEL: Any = None


def _start_worker(model_path: str, onnx_path: str | None) -> None:
    """Pool initializer: load the model once per worker, on the CPU, torch on one thread; with
    ``onnx_path`` the ONNX stand-in of encode_onnx.py (exported and checked by the parent)."""
    global _WORKER_MODEL
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    from recbole_dlrrec.runtime.threads import use_threads

    use_threads(1)
    _WORKER_MODEL = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    if onnx_path is not None:
        from recbole_dlrrec.data.encode_onnx import OnnxSentenceModel

        _WORKER_MODEL = OnnxSentenceModel(_WORKER_MODEL, onnx_path)


def _encode_in_worker(texts: list[str]) -> np.ndarray:
    return encode_chunk(_WORKER_MODEL, texts)


class WorkerPool:
    """``workers`` processes (spawned: no fork of a process that holds torch's threads), each
    holding the model at ``model_path`` on the CPU with one torch thread (or its ONNX export at
    ``onnx_path``, run by onnxruntime on one thread).

    ``imap(chunks)`` yields each chunk's vectors in the order of ``chunks`` as they finish.
    """

    def __init__(self, model_path: str, workers: int, onnx_path: str | None = None):
        import multiprocessing

        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool = multiprocessing.get_context("spawn").Pool(
            workers, initializer=_start_worker, initargs=(model_path, onnx_path)
        )

    def imap(self, chunks: list[list[str]]) -> Iterator[np.ndarray]:
        return self._pool.imap(_encode_in_worker, chunks)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
