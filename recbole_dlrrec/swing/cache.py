"""SWING neighbours of a RecBole TRAIN split, cached on disk.

:func:`swing_for_dataset` reads the ``swing_*`` config keys (:func:`swing_params_from_config`,
defaults in ``properties/swing.yaml``), builds the edge matrix (:func:`~recbole_dlrrec.swing.graph.swing_edges_matrix`),
and loads or computes both similarities (:func:`load_or_compute`): the ``.npz`` file name hashes
the parameters, the edge structure (:func:`edges_fingerprint`) and :data:`CACHE_FORMAT_VERSION`.
``cl_similarity`` picks the similarity: ``swing`` (default; its cache key and file names are
those it always had) or a co-occurrence score of :mod:`recbole_dlrrec.swing.similarity`, whose
files are named and keyed by the similarity (``itemcf_cosine_<hash>.npz``, ``jaccard_<hash>.npz``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from typing import Callable, Dict, NamedTuple, Tuple

import numpy as np
import scipy.sparse as sp

from recbole_dlrrec.atomic import atomic_path
from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.config.stack import declared_default
from recbole_dlrrec.swing.graph import (
    SWING_EDGE_CHOICES,
    SwingNeighbours,
    _check_alpha,
    _check_count,
    _check_seed,
    binarize,
    swing_edges_matrix,
)
from recbole_dlrrec.swing.kernels import item_similarity, user_similarity
from recbole_dlrrec.swing.similarity import SIMILARITIES, similarity_tables

#: Bump when the algorithm or the cached layout changes: old cache files then stop matching.
CACHE_FORMAT_VERSION = 1
_META_KEY = "__swing_meta__"


class CacheResult(NamedTuple):
    """What :func:`load_or_compute` did: the arrays, the file, whether it was loaded, seconds."""

    arrays: Dict[str, np.ndarray]
    path: str
    loaded: bool
    seconds: float


def edges_fingerprint(graph) -> str:
    """SHA-256 of the binarized edge structure (shape and edges; values ignored)."""
    graph = binarize(graph)
    digest = hashlib.sha256()
    digest.update(np.asarray(graph.shape, dtype=np.int64).tobytes())
    digest.update(graph.indptr.astype(np.int64).tobytes())
    digest.update(graph.indices.astype(np.int64).tobytes())
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cache key parameter of type {type(value).__name__} is not JSON-serialisable")


def _cache_meta(key_params: dict, fingerprint: str) -> str:
    return json.dumps(
        {"version": CACHE_FORMAT_VERSION, "params": key_params, "fingerprint": fingerprint},
        sort_keys=True,
        default=_json_default,
    )


def cache_file_path(cache_dir: str, key_params: dict, fingerprint: str = "", prefix: str = "swing") -> str:
    """``<cache_dir>/<prefix>_<16 hex of sha256(params, fingerprint, version)>.npz``."""
    digest = hashlib.sha256(_cache_meta(key_params, fingerprint).encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f"{prefix}_{digest}.npz")


def _say(logger, level: str, message: str) -> None:
    if logger is not None:
        getattr(logger, level)(message)
    elif level == "warning":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        print(message)


def load_or_compute(
    cache_dir: str,
    key_params: dict,
    compute_fn: Callable[[], Dict[str, np.ndarray]],
    fingerprint: str = "",
    logger=None,
    prefix: str = "swing",
) -> CacheResult:
    """Load the arrays cached for (``key_params``, ``fingerprint``) or compute and save them.

    ``compute_fn()`` returns a dict of numpy arrays (names not starting with ``__``). The file
    name hashes the parameters and the fingerprint (and :data:`CACHE_FORMAT_VERSION`); the
    parameters are also stored in the file and checked on load. Writes are atomic (temporary
    file in ``cache_dir``, then ``os.replace``). A file that cannot be read or does not match
    is recomputed with a warning. Messages go to ``logger`` (``info``/``warning``) or, without a
    logger, to stdout / ``warnings.warn``.
    """
    path = cache_file_path(cache_dir, key_params, fingerprint, prefix)
    meta = _cache_meta(key_params, fingerprint)
    start = time.perf_counter()
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as stored:
                if _META_KEY not in stored.files or str(stored[_META_KEY]) != meta:
                    raise ValueError("parameters stored in the file do not match")
                arrays = {name: stored[name] for name in stored.files if name != _META_KEY}
            _say(logger, "info", f"loaded {prefix} cache {path}")
            return CacheResult(arrays, path, True, time.perf_counter() - start)
        except Exception as error:  # noqa: BLE001 - any unreadable file is recomputed
            _say(
                logger, "warning", f"{prefix} cache {path} is unreadable ({type(error).__name__}: {error}); recomputing"
            )
    arrays = compute_fn()
    if not isinstance(arrays, dict) or any(name.startswith("__") for name in arrays):
        raise ValueError("compute_fn must return a dict of arrays with names not starting '__'")
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    with atomic_path(path) as tmp_path, open(tmp_path, "wb") as tmp:
        np.savez(tmp, **arrays, **{_META_KEY: np.array(meta)})  # type: ignore[arg-type]  # numpy stubs
        tmp.flush()
        os.fsync(tmp.fileno())
    _say(logger, "info", f"saved {prefix} cache {path}")
    return CacheResult(arrays, path, False, time.perf_counter() - start)


def _config_value(config, key: str):
    """``config[key]``; a key the config lacks (a Config or dict built without the plugin's
    files) takes its value in the property file that declares it (``properties/swing.yaml``)."""
    return config[key] if key in config else declared_default(key)


def swing_params_from_config(config) -> dict:
    """Validated SWING parameters from a RecBole ``Config`` (or a dict); errors name the key."""
    alpha = _check_alpha(_config_value(config, "swing_alpha"), "swing_alpha")
    topk = _check_count(_config_value(config, "swing_topk"), "swing_topk", allow_none=False)
    item_cap = _check_count(_config_value(config, "swing_max_users_per_item"), "swing_max_users_per_item")
    user_cap = _check_count(_config_value(config, "swing_max_items_per_user"), "swing_max_items_per_user")
    edges = _config_value(config, "swing_edges")
    if edges not in SWING_EDGE_CHOICES:
        raise ValueError(f"swing_edges must be one of {SWING_EDGE_CHOICES}, got {edges!r}")
    seed = _check_seed(config["seed"] if "seed" in config else 0, "seed")
    return {
        "alpha": alpha,
        "topk": topk,
        "max_users_per_item": item_cap,
        "max_items_per_user": user_cap,
        "edges": edges,
        "seed": seed,
    }


def _csr_arrays(prefix: str, csr: sp.csr_matrix) -> Dict[str, np.ndarray]:
    return {
        f"{prefix}_indptr": csr.indptr,
        f"{prefix}_indices": csr.indices,
        f"{prefix}_data": csr.data,
        f"{prefix}_shape": np.asarray(csr.shape, dtype=np.int64),
    }


def _csr_from_arrays(prefix: str, arrays: Dict[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(n) for n in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )


def swing_cache_dir(config) -> str:
    """``<side_data_path>/swing_cache`` when ``side_data_path`` is set, else ``<data_path>/...``."""
    side = config["side_data_path"] if "side_data_path" in config else None
    return os.path.join(side or config["data_path"], "swing_cache")


def similarity_from_config(config) -> str:
    """The validated ``cl_similarity`` (default ``swing``)."""
    similarity = _config_value(config, "cl_similarity")
    if similarity not in SIMILARITIES:
        raise ConfigKeyError(f"cl_similarity must be one of {SIMILARITIES}, got {similarity!r}")
    return similarity


def train_edges(config, train_dataset, edges: str) -> sp.csr_matrix:
    """The ``user_num x item_num`` edge matrix of the TRAIN interactions (``edges``: 'positive'
    = rows with label 1, or 'all')."""
    inter = train_dataset.inter_feat
    label_field = config["LABEL_FIELD"] if "LABEL_FIELD" in config else None
    labels = None
    if edges == "positive":
        if label_field is None or label_field not in inter:
            raise ValueError(
                f"swing_edges='positive' needs the label field {label_field!r} in "
                "the train interactions; set swing_edges: all to use every row"
            )
        labels = inter[label_field]
    return swing_edges_matrix(
        inter[config["USER_ID_FIELD"]],
        inter[config["ITEM_ID_FIELD"]],
        labels,
        train_dataset.user_num,
        train_dataset.item_num,
        edges,
    )


def swing_neighbours_and_cache(
    config, train_dataset, logger=None, progress: bool = True
) -> Tuple[SwingNeighbours, CacheResult]:
    """:func:`swing_for_dataset` and what the cache did (the file, loaded or computed)."""
    params = swing_params_from_config(config)
    similarity = similarity_from_config(config)
    graph = train_edges(config, train_dataset, params["edges"])
    caps = dict(
        max_users_per_item=params["max_users_per_item"],
        max_items_per_user=params["max_items_per_user"],
        seed=params["seed"],
    )
    if similarity == "swing":
        key_params = {"dataset": str(config["dataset"]), **params}

        def compute():
            common = dict(alpha=params["alpha"], topk=params["topk"], progress=progress, **caps)
            arrays = _csr_arrays("item", item_similarity(graph, **common))
            arrays.update(_csr_arrays("user", user_similarity(graph, **common)))
            return arrays
    else:  # alpha is SWING's own: it does not key the co-occurrence tables
        key_params = {
            "dataset": str(config["dataset"]),
            "similarity": similarity,
            **{name: value for name, value in params.items() if name != "alpha"},
        }

        def compute():
            users, items = similarity_tables(graph, similarity, params["topk"], **caps)
            return {**_csr_arrays("item", items), **_csr_arrays("user", users)}

    cache_dir = swing_cache_dir(config)
    result = load_or_compute(cache_dir, key_params, compute, edges_fingerprint(graph), logger, prefix=similarity)
    neighbours = SwingNeighbours.from_csr(
        _csr_from_arrays("user", result.arrays), _csr_from_arrays("item", result.arrays), params["topk"]
    )
    return neighbours, result


def swing_for_dataset(config, train_dataset, logger=None, progress: bool = True) -> SwingNeighbours:
    """Top-k user-user and item-item neighbours of a RecBole TRAIN split, cached: SWING, or the
    ``cl_similarity`` the config names.

    Reads ``swing_alpha``, ``swing_topk``, ``swing_max_users_per_item``,
    ``swing_max_items_per_user``, ``swing_edges``, ``cl_similarity`` and ``seed`` from ``config``
    (defaults: ``properties/swing.yaml``), builds the edge matrix from
    ``train_dataset.inter_feat`` (``user_num x item_num``) and caches the result in
    :func:`swing_cache_dir`. Only the train split must be passed, or labels leak.
    """
    return swing_neighbours_and_cache(config, train_dataset, logger, progress)[0]
