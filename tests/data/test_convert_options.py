"""The converter's options are declared once (ConvertOptions) and the command line is built from them."""

from __future__ import annotations

import dataclasses

import pytest

from recbole_dlrrec.cli import convert as cli_convert
from recbole_dlrrec.data import google_local, yelp
from recbole_dlrrec.data.convert.options import SOURCE_DEFAULT, ConvertOptions, from_args
from recbole_dlrrec.data.convert.records import ConversionError
from recbole_dlrrec.data.sources import DEFAULT_SOURCE, SOURCES

BASE = ["--reviews", "r.json", "--meta", "m.json", "--name", "x"]


def parse(*extra):
    return cli_convert.build_arg_parser().parse_args(BASE + list(extra))


def test_the_command_line_defaults_are_the_options_defaults():
    assert from_args(parse()) == ConvertOptions()


def test_every_option_has_one_flag_with_its_help():
    text = cli_convert.build_arg_parser().format_help()
    for f in dataclasses.fields(ConvertOptions):
        flag = f.metadata.get("flag", f"--{f.name}")
        assert f.metadata["help"] and flag in text, f.name


def test_each_flag_sets_its_option():
    changed = {
        "split": ("random", ["--split", "random"]),
        "ratios": ((0.6, 0.2, 0.2), ["--ratios", "0.6", "0.2", "0.2"]),
        "seed": (7, ["--seed", "7"]),
        "label_threshold": (3.5, ["--label_threshold", "3.5"]),
        "category_filter": (None, ["--category_filter", ""]),
        "strict": (True, ["--strict"]),
        "include_leaky_meta": (True, ["--include_leaky_meta"]),
        "user_text_max_chars": (99, ["--user_text_max_chars", "99"]),
        "k_core": (3, ["--k_core", "3"]),
        "user_history": (False, ["--no_user_history"]),
        "user_vector": ("mean", ["--user_vector", "mean"]),
        "encoder_model": ("m", ["--encoder_model", "m"]),
        "encoder_cache": ("c.sqlite", ["--encoder_cache", "c.sqlite"]),
        "encoder_batch_size": (8, ["--encoder_batch_size", "8"]),
        "encoder_device": ("cpu", ["--encoder_device", "cpu"]),
        "encoder_workers": (2, ["--encoder_workers", "2"]),
        "encoder_backend": ("onnx", ["--encoder_backend", "onnx"]),
        "ray_address": ("127.0.0.1:6379", ["--ray_address", "127.0.0.1:6379"]),
        "encoder_ray_actors": (3, ["--encoder_ray_actors", "3"]),
        "image_encoder": ("none", ["--image_encoder", "none"]),
        "max_line_bytes": (4096, ["--max_line_bytes", "4096"]),
        "force": (True, ["--force"]),
        "show_progress": (False, ["--quiet"]),
    }
    assert set(changed) == {f.name for f in dataclasses.fields(ConvertOptions)}  # a new option needs a line here
    for name, (value, flags) in changed.items():
        assert getattr(from_args(parse(*flags)), name) == value, name
    with pytest.raises(SystemExit):
        parse("--split", "sideways")


def test_the_category_filter_default_is_the_sources():
    assert ConvertOptions().category_filter == SOURCE_DEFAULT
    assert ConvertOptions().with_source_defaults("Restaurants").category_filter == "Restaurants"
    assert ConvertOptions(category_filter=None).with_source_defaults("Restaurants").category_filter is None
    assert google_local.DEFAULT_CATEGORY_FILTER == "restaurant" and yelp.DEFAULT_CATEGORY_FILTER == "Restaurants"


def test_sources_are_named_once():
    assert DEFAULT_SOURCE == "google" and parse().source == "google" and parse("--source", "yelp").source == "yelp"
    assert {name: module.SOURCE.name for name, module in SOURCES.items()} == {"google": "google", "yelp": "yelp"}


def test_the_encoder_options_reach_the_text_encoder(tmp_path, monkeypatch):
    from recbole_dlrrec.data import encoder as encoder_module
    from recbole_dlrrec.data.convert import pipeline

    made = {}

    class Recording:
        def __init__(self, **kwargs):
            made.update(kwargs)

        def close(self):
            made["closed"] = True

    monkeypatch.setattr(encoder_module, "TextEncoder", Recording)
    opts = ConvertOptions(encoder_workers=3, encoder_ray_actors=2, ray_address="10.0.0.1:6379")
    with pipeline._opened(None, opts, str(tmp_path)):
        pass
    assert made["workers"] == 3 and made["backend"] == "torch" and made["closed"]
    assert made["ray_address"] == "10.0.0.1:6379" and made["ray_actors"] == 2
    with pytest.raises(ConversionError, match="encoder_workers must be at least 1"):
        ConvertOptions(encoder_workers=0).validate()
