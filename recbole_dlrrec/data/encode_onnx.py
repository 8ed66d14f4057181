"""ONNX Runtime backend of the text encoder (``TextEncoder(backend="onnx")``), an optional extra:

    pip install onnxruntime onnx        # or: pip install 'recbole-dlrrec[onnx]'

The model's transformer is exported from its local torch weights with ``torch.onnx.export`` (no
download; ``onnx`` is needed for the export only), once per model, into ``<cache folder>/onnx/
<model_id>.onnx`` (written atomically; reused afterwards). :class:`OnnxSentenceModel` then stands
in for the SentenceTransformer where the encoder uses it (``tokenize``, ``encode``): the
sentence-transformers tokenizer, onnxruntime on ONE thread (the cores are used by worker
processes, as for torch), mean pooling over the attention mask, L2 norm.

Fidelity rule, checked every time the backend is built: on :data:`PROBE_TEXTS` every vector has
cosine >= :data:`MIN_COSINE` with the torch model's, else the backend is refused
(EncoderError). Its vectors differ from torch's in the low bits, so the encoder caches them
under ``model_id@onnx``; within the backend they are a pure function of the text, as with torch
(one token length per batch, one thread). CPU only.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.data.encode_batches import preprocessor

INSTALL_HINT = "pip install onnxruntime onnx (or pip install 'recbole-dlrrec[onnx]')"
#: Smallest cosine with the torch vector that a text may have under the ONNX backend.
MIN_COSINE = 0.9999
#: Texts of several lengths the backend's fidelity is checked on whenever it is built.
PROBE_TEXTS = (
    "ok",
    "Lovely staff, quick service and the noodles were hot.",
    "We waited forty minutes for a table although the room was half empty; the fish was dry "
    "and the rice cold, but the dessert almost made up for it. Parking is hard on weekends.",
    "Cheap, clean, open late. " * 12,
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def missing_packages() -> list[str]:
    """The packages the backend needs that are not installed."""
    return [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]


def export_path(cache_path: str, model_id: str) -> str:
    """Where the exported model of ``model_id`` is kept: ``onnx/<model_id>.onnx`` beside the cache."""
    return os.path.join(os.path.dirname(os.path.abspath(cache_path)), "onnx", f"{model_id}.onnx")


def export(st_model: Any, path: str) -> None:
    """Write the transformer of ``st_model`` (a SentenceTransformer) to ``path`` as ONNX, atomically."""
    import torch

    class LastHidden(torch.nn.Module):
        """The transformer with keyword inputs, returning the token states B x T x D."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = preprocessor(st_model)(["an example text"])
    with atomic.atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(
            LastHidden(st_model[0].auto_model.eval()),
            tuple(sample[k] for k in _INPUTS),
            tmp,
            input_names=list(_INPUTS),
            output_names=["hidden"],
            dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*_INPUTS, "hidden")},
            opset_version=17,
            dynamo=False,
        )


class OnnxSentenceModel:
    """A mean-pooling sentence model run by onnxruntime on one thread: ``tokenize`` and
    ``encode`` as the encoder calls them on a SentenceTransformer; ``encode`` returns float32
    ``[n, dim]`` rows of unit length."""

    def __init__(self, st_model: Any, onnx_path: str):
        import onnxruntime

        pooling = st_model[1] if len(st_model) > 1 else None
        # sentence-transformers 6 names the mode ("mean"); earlier versions had one flag per mode
        mean = getattr(pooling, "pooling_mode", None) == "mean" or getattr(pooling, "pooling_mode_mean_tokens", False)
        if not mean:
            raise ValueError("the onnx backend supports mean-pooling sentence models only")
        self.st_model = st_model
        self.max_seq_length = st_model.max_seq_length
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        self._feeds = [i.name for i in self.session.get_inputs()]

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        return preprocessor(self.st_model)(texts)

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        features = self.tokenize(list(texts))
        feeds = {k: np.asarray(features[k], dtype=np.int64) for k in self._feeds}
        hidden = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def fidelity(st_model: Any, onnx_model: OnnxSentenceModel, texts: tuple[str, ...] = PROBE_TEXTS) -> float:
    """The smallest cosine between the ONNX and the torch vector of each of ``texts``."""
    reference = st_model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    mine = np.stack([onnx_model.encode([t])[0] for t in texts])
    return float((np.asarray(reference, dtype=np.float64) * mine).sum(axis=1).min())


def build(st_model: Any, onnx_path: str) -> OnnxSentenceModel:
    """The ONNX stand-in of ``st_model``, exported to ``onnx_path`` when not there yet, after the
    fidelity check (ValueError naming the cosine when it fails)."""
    if not os.path.isfile(onnx_path):
        export(st_model, onnx_path)
    model = OnnxSentenceModel(st_model, onnx_path)
    worst = fidelity(st_model, model)
    if worst < MIN_COSINE:
        raise ValueError(
            f"its vectors reach only cosine {worst:.6f} with the torch model's (needs >= {MIN_COSINE}); "
            "use the torch backend"
        )
    return model
