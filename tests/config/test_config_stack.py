"""The config stack: one precedence rule, type and value checks on every layer, provenance,
safe YAML, and a final config identical to RecBole's own file loading."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import yaml

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.config.registry import UnknownModelError
from recbole_dlrrec.config.stack import (
    FLAG_SOURCE,
    PROPERTIES_DIR,
    RECBOLE_DEFAULT,
    ConfigFileError,
    ConfigStack,
    StackConfig,
    parse_flags,
    read_yaml,
)
from recbole_dlrrec.errors import InputError

OVERALL = os.path.join(PROPERTIES_DIR, "overall.yaml")
SWING = os.path.join(PROPERTIES_DIR, "swing.yaml")
DLRREC_YAML = os.path.join(PROPERTIES_DIR, "model", "DLRREC.yaml")
DLRM_YAML = os.path.join(PROPERTIES_DIR, "model", "DLRM.yaml")


@pytest.fixture
def layered(tiny_data_path, tmp_path):
    """(data_path, dataset yaml, file1, file2): a copy of the tiny dataset whose own YAML also
    sets w1, and two user files."""
    data = tmp_path / "data"
    shutil.copytree(os.path.join(tiny_data_path, "tiny"), data / "tiny")
    dataset_yaml = data / "tiny" / "tiny.yaml"
    dataset_yaml.write_text(dataset_yaml.read_text() + "w1: 0.5\n")
    file1 = tmp_path / "one.yaml"
    file1.write_text("w2: 0.3\ntau: 0.2\n")
    file2 = tmp_path / "two.yaml"
    file2.write_text("tau: 0.3\ncl_num_negatives: 8\n")
    return str(data), str(dataset_yaml), str(file1), str(file2)


def test_one_precedence_rule_and_provenance(layered):
    """overall < swing < model < dataset < variant < --config_files in order < --key=value."""
    data, dataset_yaml, file1, file2 = layered
    stack = ConfigStack("dlrrec-nocl", "tiny", [file1, file2], {"data_path": data, "cl_num_negatives": 4})
    values, source = stack.merged()
    expected = {
        "stopping_step": (5, OVERALL),  # overall.yaml only
        "swing_topk": (50, SWING),  # swing.yaml only
        "fast_dataloader": (True, DLRM_YAML),  # base model file over overall.yaml (false)
        "interaction": ("dcn", DLRREC_YAML),  # model file over its base model's (dot)
        "reduction_dim": (8, dataset_yaml),  # dataset file over the model file (32)
        "w1": (0.0, "variant DLRREC-noCL"),  # variant over the dataset file (0.5)
        "w2": (0.3, file1),  # a user file over the variant (0.0)
        "tau": (0.3, file2),  # the later user file over the earlier (0.2)
        "cl_num_negatives": (4, FLAG_SOURCE),  # a flag over the files (8)
    }
    for key, (value, where) in expected.items():
        assert (values[key], source[key]) == (value, where), key
    assert "learning_rate" not in source  # RecBole's own default


def test_build_config_carries_provenance_and_the_same_values(layered):
    from recbole_dlrrec.runtime.quick_start import build_config

    data, _, file1, file2 = layered
    config = build_config("DLRREC-noCL", "tiny", [file1, file2], {"data_path": data, "cl_num_negatives": 4})
    assert config["w1"] == 0.0 and config["w2"] == 0.3 and config["tau"] == 0.3 and config["cl_num_negatives"] == 4
    assert config.provenance["w1"] == "variant DLRREC-noCL"
    assert config.provenance["learning_rate"] == RECBOLE_DEFAULT
    assert config.provenance["model"] == "model 'DLRREC-noCL'"
    copy = pickle.loads(pickle.dumps(config))  # RecBole pickles configs (saved dataloaders, Ray)
    assert copy.final_config_dict == config.final_config_dict and copy.provenance == config.provenance


def test_final_config_matches_recbole_reading_the_files_itself(layered, monkeypatch):
    """Handing RecBole the safely parsed dicts gives the final config it gave when it read the
    files itself (old path: files in order, variant + flags as config_dict): no number changes."""
    from recbole.config import Config

    from recbole_dlrrec.runtime.quick_start import build_config
    from recbole_dlrrec.runtime.training import apply_precision

    monkeypatch.setattr("sys.argv", ["prog"])  # RecBole's own Config would read pytest's arguments
    data, dataset_yaml, file1, file2 = layered
    flags = {"data_path": data, "cl_num_negatives": 4, "learning_rate": 1e-3}
    ours = build_config("DLRREC-noCL", "tiny", [file1, file2], dict(flags), prepare=False)
    stack = ConfigStack("DLRREC-noCL", "tiny", [file1, file2], flags)
    user_keys = set(read_yaml(file1)) | set(read_yaml(file2))
    variant = {k: v for k, v in stack.variant_settings.items() if k not in user_keys}
    files = stack.plugin_files() + [dataset_yaml, file1, file2]
    theirs = Config(model=stack.model_class, dataset="tiny", config_file_list=files, config_dict={**variant, **flags})
    apply_precision(theirs)  # as build_config does
    assert ours.final_config_dict == theirs.final_config_dict


def test_a_bad_type_is_refused_in_any_layer_naming_it(layered, tmp_path):
    data, dataset_yaml, file1, _ = layered
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: abc\n")
    with pytest.raises(ConfigKeyError, match=r"'epochs' takes int .*got 'abc' \(set by .*bad\.yaml\)"):
        ConfigStack(
            "DLRM", "tiny", [str(bad)], {"data_path": data, "epochs": 3}
        ).check()  # even when a flag overrides it
    with open(dataset_yaml, "a") as handle:
        handle.write("swing_topk: many\n")
    with pytest.raises(ConfigKeyError, match=r"'swing_topk' takes int .*\(set by .*tiny\.yaml\)"):
        ConfigStack("DLRM", "tiny", [], {"data_path": data}).check()


def test_value_rules_apply_to_the_final_value(layered, tmp_path):
    data, _, _, _ = layered
    zero = tmp_path / "zero.yaml"
    zero.write_text("tau: 0\n")
    with pytest.raises(ConfigKeyError, match=r"'tau' must be > 0, got 0 \(set by .*zero\.yaml\)"):
        ConfigStack("DLRREC", "tiny", [str(zero)], {"data_path": data}).check()
    ConfigStack("DLRREC", "tiny", [str(zero)], {"data_path": data, "tau": 0.1}).check()  # a flag fixes it
    with pytest.raises(ConfigKeyError, match=r"'reduction' must be one of mlp\|linear\|pca\|none, got null"):
        ConfigStack("DLRREC", "tiny", [], {"data_path": data, "reduction": None}).check()
    ConfigStack("DLRREC", "tiny", [], {"data_path": data, "cl_max_anchors": None}).check()  # (int or null)


def test_unknown_flag_key_is_refused_with_a_suggestion(layered):
    data = layered[0]
    with pytest.raises(ConfigKeyError, match="unknown config key 'learnin_rate'.*learning_rate"):
        ConfigStack("DLRM", "tiny", [], {"data_path": data, "learnin_rate": 0.1}).check()


def test_unknown_model_names_never_reach_importlib():
    for name in ("foo.bar", "../x", "a b", ""):
        with pytest.raises(UnknownModelError, match="unknown model"):
            ConfigStack(name)


def test_flags_are_parsed_for_their_key_type():
    parsed = parse_flags(
        {
            "reduction": "none",
            "item_text_vec": "none",
            "reduction_norm": "null",
            "epochs": "5",
            "w1": "1e-3",
            "fused_optimizer": "false",
            "top_mlp": "[64, 32]",
            "pos_weight": "auto",
            "train_precision": "fp32",
            "unknown_key": "null",
        }
    )
    assert parsed == {
        "reduction": "none",
        "item_text_vec": None,
        "reduction_norm": None,
        "epochs": 5,
        "w1": 1e-3,
        "fused_optimizer": False,
        "top_mlp": [64, 32],
        "pos_weight": "auto",
        "train_precision": "fp32",
        "unknown_key": None,
    }


# -- safe YAML -----------------------------------------------------------------------------
def test_python_tags_are_refused_naming_the_file(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("epochs: 3\nseed: !!python/name:os.system\n")
    with pytest.raises(ConfigFileError) as info:
        read_yaml(str(evil))
    message = str(info.value)
    assert "\n" not in message and str(evil) in message and "line 2" in message and "!!python/name:os.system" in message
    with pytest.raises(ConfigFileError):
        ConfigStack("DLRM", "tiny", [str(evil)])


def test_floats_read_as_recbole_reads_them_without_touching_the_global_loader(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("learning_rate: 1e-3\nweight_decay: 5E-4\nname: fp32\nlist: [1, 2.5]\n")
    assert read_yaml(str(path)) == {"learning_rate": 1e-3, "weight_decay": 5e-4, "name": "fp32", "list": [1, 2.5]}
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}  # plain SafeLoader keeps YAML 1.1's rule


def test_recbole_config_neither_evals_strings_nor_reads_argv(tiny_data_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog", "--epochs=7"])
    text = "__import__('os').getcwd()"
    from recbole_dlrrec.models.dlrm import DLRM

    config = StackConfig(model=DLRM, dataset="tiny", config_dict={"data_path": tiny_data_path, "checkpoint_dir": text})
    assert config["checkpoint_dir"] == text
    assert config["epochs"] != 7


def test_read_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        read_yaml(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigFileError, match="broken.yaml is not valid YAML"):
        read_yaml(str(broken))
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigFileError, match="must hold a mapping"):
        read_yaml(str(listy))
