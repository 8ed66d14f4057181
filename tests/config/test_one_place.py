"""One place per config fact: each plugin key is declared (type, valid values) in one property
file; a model's file holds only what it adds to or changes from its base model's; the typed
options objects take every default from the YAML files and hold none themselves; and where code
must name the valid values itself (the nn / swing / training registries that implement them), or
reuse a YAML default as a constant, a test here fails when the two disagree."""

from __future__ import annotations

import dataclasses
import os

import pytest

from recbole_dlrrec.config.keys import ConfigKeyError, read_key_specs
from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.config.stack import (
    PROPERTIES_DIR,
    ConfigStack,
    base_key_specs,
    model_config_files,
    plugin_config_files,
    plugin_defaults,
    read_yaml,
)
from recbole_dlrrec.models.dlrm import DLRM, DLRMOptions
from recbole_dlrrec.models.dlrrec import DLRREC, DLRRECOptions

PLUGIN_FILES = [os.path.join(PROPERTIES_DIR, name) for name in ("overall.yaml", "swing.yaml")] + sorted(
    os.path.join(PROPERTIES_DIR, "model", name) for name in os.listdir(os.path.join(PROPERTIES_DIR, "model"))
)
OPTIONS = [(DLRM, DLRM.options_class), (DLRREC, DLRREC.options_class)]


def test_every_plugin_key_is_declared_in_one_file():
    """A key's `(type: choices, rules)` note appears once over overall.yaml, swing.yaml and the
    model files; other files that set the key give a value and a plain comment."""
    declared = {}
    for path in PLUGIN_FILES:
        for key, spec in read_key_specs(path).items():
            if spec.types:
                assert key not in declared, f"{key} is declared in {declared.get(key)} and in {path}"
                declared[key] = path


def test_the_stack_layers_a_model_file_over_its_base_models():
    semantic, dlrm, dlrrec = (
        os.path.join(PROPERTIES_DIR, "model", f"{name}.yaml") for name in ("SemanticIds", "DLRM", "DLRREC")
    )
    assert model_config_files(DLRREC) == [semantic, dlrm, dlrrec]  # SemanticIds: a mixin of DLRREC's
    assert plugin_config_files("DLRREC-V0")[-2:] == [dlrm, dlrrec]
    values, source = ConfigStack("DLRREC", "ml-100k").merged()
    assert (values["first_order"], source["first_order"]) == (True, dlrm)  # inherited, not repeated
    assert (values["interaction"], source["interaction"]) == ("dcn", dlrrec)  # DLRREC's change


def test_a_rule_for_a_recbole_key_lives_in_one_place():
    """keys.RECBOLE_RULES rules RecBole's keys that no plugin file declares again."""
    from recbole_dlrrec.config.keys import RECBOLE_RULES

    for path in PLUGIN_FILES:
        for key, spec in read_key_specs(path).items():
            assert not (spec.types and key in RECBOLE_RULES), f"{key}: declared in {path} and in keys.RECBOLE_RULES"


@pytest.mark.parametrize("model", [DLRM, DLRREC])
def test_a_model_file_holds_only_what_it_adds_or_changes(model):
    """Every key of a model's file that a lower layer (overall, swing, the base model's file)
    also sets has another value there: a repeated value would be a second place for it."""
    files = plugin_config_files(model)
    below: dict = {}
    for path in files[:-1]:
        below.update(read_yaml(path))
    repeated = {key: value for key, value in read_yaml(files[-1]).items() if key in below and below[key] == value}
    assert not repeated, f"{files[-1]} repeats {repeated}"


@pytest.mark.parametrize("model, options_class", OPTIONS)
def test_options_hold_no_default_of_their_own(model, options_class):
    assert issubclass(DLRRECOptions, DLRMOptions) and DLRREC.options_class is DLRRECOptions
    assert all(
        field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        for field in dataclasses.fields(options_class)
    )


@pytest.mark.slow
@pytest.mark.parametrize("model, options_class", OPTIONS)
def test_options_of_an_empty_config_are_the_stacks_defaults(model, options_class):
    """A config that lacks every key gives the options the stack resolves from the YAML files:
    the two layers cannot disagree on a default."""
    values, _ = ConfigStack(model.__name__, "restaurants").merged()
    assert build_options(options_class, {}, model) == build_options(options_class, values, model)
    for field in dataclasses.fields(options_class):
        assert getattr(build_options(options_class, {}, model), field.name) == plugin_defaults(model)[field.name]


def test_options_check_values_with_the_stacks_message():
    with pytest.raises(ConfigKeyError, match=r"^config key 'tau' must be > 0, got 0$"):
        build_options(DLRRECOptions, {"tau": 0}, DLRREC)
    with pytest.raises(ConfigKeyError, match="^config key 'cl_repr' must be one of fused|text|id|text_vs_id"):
        build_options(DLRRECOptions, {"cl_repr": "txt"}, DLRREC)
    with pytest.raises(ConfigKeyError, match="^config key 'reduction_hidden' must not be null"):
        build_options(DLRRECOptions, {"reduction_hidden": None}, DLRREC)
    typed = build_options(DLRRECOptions, {"w1": 1, "cl_max_anchors": None}, DLRREC)
    assert (type(typed.w1), typed.w1, typed.cl_max_anchors) == (float, 1.0, None)


def test_code_registries_implement_exactly_the_declared_choices():
    """nn/, swing/, runtime/ and DLRREC's strategies (models/dlrrec_strategies.py) name what
    they implement (they take plain arguments, not the config); each list is the key's declared
    choices."""
    from recbole_dlrrec.models.dlrrec_strategies import NEGATIVES, OBJECTIVES, REPRESENTATIONS
    from recbole_dlrrec.nn.layers import INTERACTIONS
    from recbole_dlrrec.nn.text import ADAPTERS, REDUCTION_INITS, REDUCTIONS
    from recbole_dlrrec.runtime.training import PRECISIONS
    from recbole_dlrrec.swing.graph import SWING_EDGE_CHOICES
    from recbole_dlrrec.swing.sampler import NEGATIVE_DISTS, NEGATIVE_POOLS, SAMPLE_MODES
    from recbole_dlrrec.swing.similarity import SIMILARITIES

    specs = base_key_specs()
    implemented = {
        "interaction": INTERACTIONS,
        "reduction": REDUCTIONS,
        "reduction_adapter": ADAPTERS,
        "reduction_init": REDUCTION_INITS,
        "train_precision": PRECISIONS,
        "swing_edges": SWING_EDGE_CHOICES,
        "cl_negative_pool": NEGATIVE_POOLS,
        "cl_negative_dist": NEGATIVE_DISTS,
        "swing_sample_mode": SAMPLE_MODES,
        "cl_similarity": SIMILARITIES,
        "cl_repr": REPRESENTATIONS,
        "cl_negatives": NEGATIVES,
        "contrastive": OBJECTIVES,
    }
    for key, names in implemented.items():
        assert set(specs[key].choices) == set(names), key


def test_constants_that_reuse_a_yaml_default_agree_with_it():
    """The leaderboard gives every model DLRM's embedding size."""
    from recbole_dlrrec.experiments.board_cells import SHARED_DEFAULTS

    assert SHARED_DEFAULTS["embedding_size"] == plugin_defaults("DLRM")["embedding_size"]


def test_search_spaces_read_the_declared_choices(tmp_path):
    """`key: {choice: declared}` in a space file searches the key's declared values, so a new
    interaction is searched without touching properties/tune/."""
    from recbole_dlrrec.experiments.tune_space import SpaceError, model_key_specs, parse_space

    specs = model_key_specs(PROPERTIES_DIR, plugin_config_files("DLRREC"))
    for model in ("DLRM", "DLRREC"):
        space = parse_space(os.path.join(PROPERTIES_DIR, "tune", f"{model}.yaml"), specs)
        assert space.params["interaction"].args == specs["interaction"].choices == ("dot", "dot_concat", "dcn")
    untyped = tmp_path / "space.yaml"
    untyped.write_text("top_mlp: {choice: declared}\n")
    with pytest.raises(SpaceError, match=f"{untyped}:1: top_mlp: choice: declared needs a key whose note lists"):
        parse_space(str(untyped), specs)


def test_code_below_the_models_reads_a_missing_key_from_its_declaring_file():
    """swing/ takes plain configs (dicts in its tests): a key they lack gets the value of the
    one file that declares it, not a constant of its own."""
    from recbole_dlrrec.config.stack import declared_default
    from recbole_dlrrec.swing.cache import similarity_from_config
    from recbole_dlrrec.swing.hard_negatives import hard_pool_from_config

    swing = read_yaml(os.path.join(PROPERTIES_DIR, "swing.yaml"))
    dlrrec = read_yaml(os.path.join(PROPERTIES_DIR, "model", "DLRREC.yaml"))
    assert declared_default("cl_similarity") == swing["cl_similarity"] == similarity_from_config({})
    assert declared_default("cl_hard_pool") == dlrrec["cl_hard_pool"] == hard_pool_from_config({})
    with pytest.raises(KeyError, match="learning_rate"):
        declared_default("learning_rate")  # RecBole's own key
