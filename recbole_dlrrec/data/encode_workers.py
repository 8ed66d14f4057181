"""One encoder process per core: a pool of spawned processes, each holding the model on the CPU
with one torch thread (or its ONNX export, encode_onnx.py), each encoding whole chunks of
encode_batches.plan_chunks, so the vectors are those of the in-process path."""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from recbole_dlrrec.data.encode_batches import encode_chunk

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
