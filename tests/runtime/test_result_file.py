"""run_recbole.py --result_file: a path the results cannot be written to fails before any data
loads (one line, exit 2), instead of training and then losing the results."""

from __future__ import annotations

import os

import pytest

from recbole_dlrrec.cli import train as run_recbole
from recbole_dlrrec.errors import InputError, ResultFileError
from recbole_dlrrec.runtime import quick_start


@pytest.fixture
def no_data_loads(monkeypatch):
    """Fail the test if a run gets as far as loading data."""

    def refuse(config):
        raise AssertionError("data was loaded before the result file was checked")

    monkeypatch.setattr(quick_start, "load_splits", refuse)


def _bad_paths(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    return {
        "folder under a file": (str(a_file / "sub" / "result.json"), "cannot write in"),
        "path is a folder": (str(folder), "is a folder"),
        "read-only filesystem": ("/proc/recbole_dlrrec/result.json", "cannot write in"),
    }


@pytest.mark.parametrize("case", ["folder under a file", "path is a folder", "read-only filesystem"])
def test_unwritable_result_file_is_one_line_exit_2(tmp_path, tiny_data_path, capsys, no_data_loads, case):
    path, needle = _bad_paths(tmp_path)[case]
    code = run_recbole.main(
        ["--model=DLRM", "--dataset=tiny", f"--data_path={tiny_data_path}", f"--result_file={path}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: result_file ") and needle in err and path in err


def test_check_result_file(tmp_path):
    target = tmp_path / "new" / "deeper" / "result.json"
    quick_start.check_result_file(str(target))  # creatable folder: fine, and nothing left in it
    assert os.listdir(target.parent) == []
    with pytest.raises(ResultFileError) as info:
        quick_start.check_result_file(str(tmp_path))
    assert isinstance(info.value, InputError)
