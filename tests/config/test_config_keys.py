"""Key specs from YAML comments: the type/choice/rule grammar, the rules' agreement with the
code that uses the keys, and the one base class of input errors."""

from __future__ import annotations

import math

import pytest

from recbole_dlrrec.config.keys import ConfigKeyError, KeySpec, check_overrides, parse_note, value_problem
from recbole_dlrrec.config.stack import base_key_specs
from recbole_dlrrec.errors import InputError


def test_note_grammar():
    spec = parse_note("tau", "float, > 0", "x.yaml", " 0.13  # (float, > 0)")
    assert spec.types == frozenset({"float"}) and spec.rules == ((">", 0.0),) and not spec.nullable
    spec = parse_note("reduction", "str: mlp|linear|pca|none", "x.yaml", " mlp")
    assert spec.types == frozenset({"str"}) and spec.choices == ("mlp", "linear", "pca", "none") and spec.str_only
    spec = parse_note("pos_weight", "float or 'auto', > 0", "x.yaml", " 1.0")
    assert spec.types == frozenset({"float", "str"}) and spec.choices == ("auto",) and spec.rules == ((">", 0.0),)
    spec = parse_note("cl_max_anchors", "int or null, >= 2", "x.yaml", " 512")
    assert spec.nullable and spec.rules == ((">=", 2.0),)
    assert parse_note("item_text_vec", "str", "x.yaml", " ~").nullable  # a null default
    assert parse_note("hidden", "list of int", "x.yaml", " [1]").types == frozenset({"list", "int"})


@pytest.mark.parametrize(
    "value, ok",
    [
        (0.5, True),
        (1, True),
        (0, False),
        (-1.0, False),
        (math.nan, False),
        (None, False),
        ("auto", True),
        ("bogus", False),
        (True, False),
    ],
)
def test_value_problem(value, ok):
    spec = parse_note("pos_weight", "float or 'auto', > 0", "x.yaml", " 1.0")
    assert (value_problem(value, spec) is None) == ok


def test_check_overrides_names_the_key_and_where():
    specs = {"tau": parse_note("tau", "float, > 0", "DLRREC.yaml", " 0.13")}
    with pytest.raises(ConfigKeyError, match=r"config key 'tau' must be > 0, got 0 \(from here\)"):
        check_overrides({"tau": 0}, specs, " (from here)")
    with pytest.raises(ConfigKeyError, match="unknown config key 'taux'.*Did you mean tau"):
        check_overrides({"taux": 1.0}, specs)


def test_yaml_rules_refuse_values_outside_them():
    specs = base_key_specs()
    for key, bad in {"epochs": 0, "learning_rate": 0.0, "train_batch_size": 0, "tau": 0.0, "w1": -1e-9}.items():
        assert value_problem(bad, specs[key]), key


def test_every_input_error_is_an_input_error():
    from recbole_dlrrec.config.registry import UnknownModelError
    from recbole_dlrrec.config.stack import ConfigFileError
    from recbole_dlrrec.data.encoder import EncoderError, EncoderInputError
    from recbole_dlrrec.data.google_local import ConversionError
    from recbole_dlrrec.data.text_vectors import TextVectorsMissingError
    from recbole_dlrrec.errors import FeatureError
    from recbole_dlrrec.experiments.cold_start import ColdSplitError
    from recbole_dlrrec.experiments.search_records import TuneRunError
    from recbole_dlrrec.experiments.significance import SignificanceInputError
    from recbole_dlrrec.experiments.tune_space import SpaceError
    from recbole_dlrrec.runtime.quick_start import DatasetNotFoundError

    for cls in (
        UnknownModelError,
        DatasetNotFoundError,
        ConfigFileError,
        ConfigKeyError,
        SpaceError,
        TuneRunError,
        ColdSplitError,
        TextVectorsMissingError,
        SignificanceInputError,
        ConversionError,
        EncoderInputError,
        FeatureError,
    ):
        assert issubclass(cls, InputError), cls
    for cls in (
        UnknownModelError,
        DatasetNotFoundError,
        ConfigFileError,
        ConfigKeyError,
        SpaceError,
        TuneRunError,
        ColdSplitError,
        TextVectorsMissingError,
        SignificanceInputError,
    ):
        assert issubclass(cls, ValueError), cls  # callers that catch ValueError keep working
    assert issubclass(EncoderInputError, EncoderError) and not issubclass(EncoderError, InputError)


def test_keyspec_defaults_keep_old_constructions_working():
    spec = KeySpec("swing_topk", frozenset({"int"}), "swing.yaml")
    assert value_problem(3, spec) is None and value_problem("x", spec)
