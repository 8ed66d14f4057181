"""Config files are held to the rules of flags: an unknown key in a user's or a dataset's file is
refused in one line naming the file and the key (with the closest known keys), the few keys a
file may set without a declaration are an explicit list, and a YAML document whose aliases
expand without bound (a "billion laughs") or into themselves is refused before any value is
built. A folder given as a config file is named as a folder."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from recbole_dlrrec.config.keys import UNDECLARED_KEYS, ConfigKeyError
from recbole_dlrrec.config.stack import MAX_EXPANDED_VALUES, ConfigFileError, ConfigStack, read_yaml
from recbole_dlrrec.errors import InputError

# Nine levels of nine aliases: 9^9 (about 387 million) strings once expanded, 600 bytes of text.
BILLION_LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi")
)


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- unknown keys in files -------------------------------------------------------------------
def test_a_typo_in_a_user_file_is_refused_naming_file_key_and_the_close_key(tmp_path):
    typo = _write(tmp_path, "mine.yaml", "epochs: 2\nlearnin_rate: 0.5\n")
    with pytest.raises(ConfigKeyError) as caught:
        ConfigStack("DLRM", "ml-100k", [typo]).check()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"unknown config key 'learnin_rate' in {typo}.")
    assert "Did you mean learning_rate" in message


def test_a_typo_in_a_dataset_file_is_refused_naming_it(tiny_data_path, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(os.path.join(tiny_data_path, "tiny"), data / "tiny")
    dataset_yaml = data / "tiny" / "tiny.yaml"
    dataset_yaml.write_text(dataset_yaml.read_text() + "reduction_dimm: 8\n")
    with pytest.raises(
        ConfigKeyError, match=f"unknown config key 'reduction_dimm' in {dataset_yaml}. Did you mean reduction_dim"
    ):
        ConfigStack("DLRREC", "tiny", (), {"data_path": str(data)}).check()


def test_flags_keep_their_message(tmp_path):
    with pytest.raises(ConfigKeyError, match=r"^unknown config key 'learnin_rate'\. Did you mean learning_rate"):
        ConfigStack("DLRM", "ml-100k", (), {"learnin_rate": 0.5}).check()


def test_the_undeclared_keys_a_file_may_set_are_accepted_and_typed(tmp_path):
    """The converter's item_image_vec and RecBole's keys that its own files never declare (e.g.
    AutoInt's has_residual) pass; item_image_vec is still checked against its declared type."""
    assert {"item_image_vec", "has_residual", "tail_ratio"} <= set(UNDECLARED_KEYS)
    ok = _write(tmp_path, "ok.yaml", "item_image_vec: itemimgvec\nhas_residual: true\ntail_ratio: 0.2\n")
    ConfigStack("AutoInt", "ml-100k", [ok]).check()
    bad = _write(tmp_path, "bad.yaml", "item_image_vec: [1, 2]\n")
    with pytest.raises(ConfigKeyError, match=f"config key 'item_image_vec' takes str .*set by {bad}"):
        ConfigStack("DLRM", "ml-100k", [bad]).check()


def test_recbole_keys_of_other_models_stay_accepted_in_files(tmp_path):
    """RecBole's own keys (any of its property files, its models' included) are declared keys."""
    keys = _write(tmp_path, "recbole.yaml", "learning_rate: 0.01\neval_batch_size: 512\nmlp_hidden_size: [64]\n")
    ConfigStack("DeepFM", "ml-100k", [keys]).check()


def test_the_run_command_refuses_the_typo_in_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from recbole_dlrrec.cli.train import main
    from recbole_dlrrec.runtime import quick_start

    monkeypatch.setattr(quick_start, "prepare_dataset", lambda *a, **k: pytest.fail("data was prepared"))
    typo = _write(tmp_path, "mine.yaml", "learnin_rate: 0.5\n")
    assert main(["--model=DLRM", "--dataset=ml-100k", f"--config_files={typo}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"unknown config key 'learnin_rate' in {typo}" in lines[0], lines


# -- billion laughs ----------------------------------------------------------------------------
def test_a_billion_laughs_file_is_refused_quickly(tmp_path):
    path = _write(tmp_path, "lol.yaml", BILLION_LAUGHS)
    start = time.perf_counter()
    with pytest.raises(ConfigFileError) as caught:
        read_yaml(path)
    assert time.perf_counter() - start < 5
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"config file {path}, line ")
    assert f"more than {MAX_EXPANDED_VALUES:,} values" in message and "billion laughs" in message


def test_an_alias_inside_its_own_value_is_refused(tmp_path):
    path = _write(tmp_path, "loop.yaml", "a: &a [1, *a]\n")
    with pytest.raises(ConfigFileError, match=f"config file {path}, line 1: refused: an alias refers to a value that"):
        read_yaml(path)


def test_plain_aliases_still_read(tmp_path):
    text = "base: &base {w1: 0.1, w2: 0.2}\ncopy: *base\nsizes: &s [64, 32]\nother: *s\n"
    path = _write(tmp_path, "anchors.yaml", text)
    assert read_yaml(path) == {
        "base": {"w1": 0.1, "w2": 0.2},
        "copy": {"w1": 0.1, "w2": 0.2},
        "sizes": [64, 32],
        "other": [64, 32],
    }


def test_the_run_command_ends_a_billion_laughs_file_in_one_line_exit_2(tmp_path, capsys):
    from recbole_dlrrec.cli.train import main

    path = _write(tmp_path, "lol.yaml", BILLION_LAUGHS)
    assert main(["--model=DLRM", "--dataset=ml-100k", f"--config_files={path}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and "billion laughs" in lines[0], lines


def test_a_search_space_file_gets_the_same_cap(tmp_path):
    """The tuning spaces are read with the same loader (experiments/tune_space.py)."""
    from recbole_dlrrec.experiments.tune_space import SpaceError, _read_space_file

    path = _write(tmp_path, "space.yaml", BILLION_LAUGHS)
    with pytest.raises(SpaceError, match=f"{path}:[0-9]+: .*billion laughs"):
        _read_space_file(path)


# -- a folder as a config file -------------------------------------------------------------------
def test_a_folder_given_as_a_config_file_is_named_a_folder(tmp_path):
    with pytest.raises(InputError, match=f"^config file {tmp_path} is a directory, not a YAML file$"):
        read_yaml(str(tmp_path))
    with pytest.raises(InputError, match="config file not found"):
        read_yaml(str(tmp_path / "missing.yaml"))
