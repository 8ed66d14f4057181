"""Tests of the optional ONNX Runtime backend of the text encoder (recbole_dlrrec.data.encode_onnx):
refused in one line when its packages are missing or it is asked for what it cannot do; with the
packages, the real model's vectors pass the fidelity rule, are a pure function of the text and are
cached apart from torch's."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from recbole_dlrrec.data import encode_onnx
from recbole_dlrrec.data.encoder import EncoderError, EncoderInputError, TextEncoder, cache_key

HAVE_ONNX = not encode_onnx.missing_packages()


def test_missing_packages_are_one_line_telling_how_to_install(tmp_path, monkeypatch):
    from recbole_dlrrec.data.convert.options import ConversionError, ConvertOptions

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("onnx") else real(name))
    assert encode_onnx.missing_packages() == ["onnxruntime", "onnx"]
    with pytest.raises(
        EncoderInputError, match=r"backend onnx needs onnxruntime and onnx: pip install onnxruntime onnx"
    ) as e:
        TextEncoder(backend="onnx", cache_path=str(tmp_path / "c.sqlite"))
    assert "\n" not in str(e.value)
    with pytest.raises(ConversionError, match="--encoder_backend onnx needs onnxruntime and onnx"):
        ConvertOptions(encoder_backend="onnx").validate()


def test_an_unknown_backend_and_onnx_off_the_cpu_or_on_ray_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(encode_onnx, "missing_packages", lambda: [])
    with pytest.raises(EncoderInputError, match="backend must be one of torch, onnx, got 'tensorrt'"):
        TextEncoder(backend="tensorrt", cache_path=str(tmp_path / "c.sqlite"))
    with pytest.raises(EncoderInputError, match="Ray cluster uses the torch backend"):
        TextEncoder(backend="onnx", ray_address="127.0.0.1:1", cache_path=str(tmp_path / "c.sqlite"))
    enc = TextEncoder(backend="onnx", cache_path=str(tmp_path / "c.sqlite"), show_progress=False)
    assert enc.device == "cpu" and enc._cache_identity() == enc.model_id + "@onnx"
    assert cache_key(enc._cache_identity(), "t") != cache_key(enc.model_id, "t")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ONNX, reason=f"the onnx backend is not installed ({encode_onnx.INSTALL_HINT})")
def test_real_model_passes_fidelity_and_its_vectors_are_pure_and_cached_apart(tmp_path):
    texts = [
        "Great pasta and friendly staff.",
        "Great tacos and friendly owners.",
        "The car needs new brake pads and an oil change before winter.",
        "ok",
    ]
    cache = str(tmp_path / "c.sqlite")
    with TextEncoder(backend="onnx", cache_path=cache, show_progress=False, workers=1) as enc:
        together = enc.encode(texts)
        exported = encode_onnx.export_path(cache, enc.model_id)
    written = os.stat(exported).st_mtime_ns
    with TextEncoder(cache_path=cache, show_progress=False, workers=1) as torch_enc:
        reference = torch_enc.encode(texts)
        assert torch_enc.last_stats["encoded"] == 4  # the onnx vectors are not torch's cache entries
    assert float((together * reference).sum(axis=1).min()) >= encode_onnx.MIN_COSINE
    with TextEncoder(backend="onnx", use_cache=False, cache_path=cache, show_progress=False, workers=1) as alone:
        one_by_one = np.stack([alone.encode([t])[0] for t in texts])
    assert one_by_one.tobytes() == together.tobytes()
    assert os.stat(exported).st_mtime_ns == written  # exported once, then reused


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ONNX, reason=f"the onnx backend is not installed ({encode_onnx.INSTALL_HINT})")
def test_a_backend_that_misses_the_fidelity_rule_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(encode_onnx, "MIN_COSINE", 1.5)  # no cosine reaches it
    enc = TextEncoder(backend="onnx", cache_path=str(tmp_path / "c.sqlite"), show_progress=False)
    with pytest.raises(
        EncoderError, match=r"reach only cosine (0\.99\d+|1\.0+) with the torch model's \(needs >= 1\.5\)"
    ):
        enc.encode(["some text"])
