"""Text encoding past one machine: the chunks of encode_batches.plan_chunks on a Ray cluster, as a
Ray Data ``map_batches`` over actors that each hold the model (CPU, one torch thread).

    TextEncoder(ray_address="HOST:PORT" | "auto", ray_actors=N).encode(texts)

The cluster is joined as the tuner joins it (experiments/ray_backend.py): the address is checked
to answer and, in token mode, the driver to hold the token, before any text is encoded; the
session is left at the end. Each chunk is one row (its texts as a JSON list), each actor call
encodes exactly one chunk, so the batches are those of the in-process path and the vectors are
the same bytes, provided every machine has the same CPU instruction set (the low bits of the
matrix products follow it). The model is the bundled one, found on each worker's own Python
environment, or a model folder at the same path on every machine.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Iterator, Optional

import numpy as np


class ChunkEncoder:
    """Ray Data actor: the model loaded once, on the CPU with one torch thread; each call takes
    a batch of ONE chunk row (``index``, ``texts`` as JSON) and returns its vectors as float32
    bytes with their shape."""

    def __init__(self, model_path: Optional[str], default_path: Callable[[], str]):
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        from recbole_dlrrec.runtime.threads import use_threads

        use_threads(1)
        self.model = SentenceTransformer(model_path or default_path(), device="cpu", local_files_only=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from recbole_dlrrec.data.encode_batches import encode_chunk

        if len(batch["index"]) != 1:
            raise ValueError(f"one chunk per call expected, got {len(batch['index'])}")
        vectors = np.ascontiguousarray(encode_chunk(self.model, json.loads(str(batch["texts"][0]))), np.float32)
        return {
            "index": np.asarray(batch["index"]),
            "rows": np.asarray([vectors.shape[0]]),
            "vectors": np.asarray([vectors.tobytes()], dtype=object),
        }


def _in_chunk_order(rows: Iterator[dict[str, Any]], dim_of: Callable[[dict[str, Any]], int]) -> Iterator[np.ndarray]:
    """Each row's ``[rows, dim]`` array, yielded in ``index`` order whatever order rows come in."""
    waiting: dict[int, np.ndarray] = {}
    next_index = 0
    for row in rows:
        vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(int(row["rows"]), dim_of(row))
        waiting[int(row["index"])] = vectors
        while next_index in waiting:
            yield waiting.pop(next_index)
            next_index += 1


def _row_width(row: dict[str, Any]) -> int:
    return len(row["vectors"]) // 4 // max(1, int(row["rows"]))


def encode_on_ray(
    ray: Any, model_path: Optional[str], default_path: Callable[[], str], chunks: list[list[str]], actors: int
) -> Iterator[np.ndarray]:
    """Vectors of each chunk, in the order of ``chunks``, encoded by ``actors`` Ray Data actors."""
    items = [{"index": i, "texts": json.dumps(texts)} for i, texts in enumerate(chunks)]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * actors)))
    encoded = dataset.map_batches(
        ChunkEncoder,
        fn_constructor_args=(model_path, default_path),
        batch_size=1,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=1,
    )
    yield from _in_chunk_order(encoded.iter_rows(), _row_width)


@contextlib.contextmanager
def ray_chunk_runner(
    address: str, model_path: Optional[str], default_path: Callable[[], str], actors: int
) -> Iterator[Callable[[list[list[str]]], Iterator[np.ndarray]]]:
    """Join the cluster at ``address`` (checked first: a one-line input error when nothing answers
    or the token is missing) and yield a runner of chunks on it; leave the cluster afterwards.
    ``model_path`` None: the model each worker finds with ``default_path`` (the bundled one)."""
    from recbole_dlrrec.experiments import ray_auth
    from recbole_dlrrec.experiments.ray_backend import check_ray_address, import_ray, ray_session

    check_ray_address(address)
    ray_auth.check_driver_token(address)
    ray, _ = import_ray(local=False)
    with ray_session(ray, address, None):
        yield lambda chunks: encode_on_ray(ray, model_path, default_path, chunks, actors)
