"""recbole_dlrrec.atomic: temp file beside the target, umask permissions, os.replace, clean failure."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from recbole_dlrrec import atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o640
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_matches_os_umask(umask_027):
    assert atomic.current_umask() == 0o027
    assert atomic.default_file_mode() == 0o640


def test_write_text_content_and_umask_mode(tmp_path, umask_027):
    target = tmp_path / "sub" / "out.txt"  # the parent folder is created
    assert atomic.write_text(str(target), "héllo\r\nworld\n") == str(target)
    assert target.read_bytes() == "héllo\r\nworld\n".encode("utf-8")  # no newline translation
    assert _mode(target) == umask_027
    assert os.listdir(target.parent) == ["out.txt"]


def test_write_bytes_replaces_old_file(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")
    atomic.write_bytes(str(target), b"\x00new")
    assert target.read_bytes() == b"\x00new"
    assert os.listdir(tmp_path) == ["blob.bin"]


def test_write_json_keeps_the_callers_format(tmp_path):
    target = tmp_path / "r.json"
    payload = {"b": 1, "a": {"ü": [1, 2]}}
    atomic.write_json(str(target), payload, indent=2, sort_keys=True, ensure_ascii=False)
    assert (
        target.read_text(encoding="utf-8") == json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def test_exception_keeps_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_path(str(target)) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)
            assert os.path.basename(tmp).startswith(".keep.txt.")
            with open(tmp, "w") as handle:
                handle.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_keyboard_interrupt_before_any_write_leaves_nothing(tmp_path):
    target = tmp_path / "new.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(str(target)):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["scores.npy", "vectors.npz", "chart.png", "noext"])
def test_temp_name_keeps_the_target_suffix(tmp_path, name):
    with atomic.atomic_path(str(tmp_path / name)) as tmp:
        assert os.path.basename(tmp).startswith("." + name + ".tmp-")
        assert tmp.endswith(os.path.splitext(name)[1])  # "" for "noext": any ending
    with atomic.atomic_path(str(tmp_path / name), suffix=".part") as tmp:
        assert tmp.endswith(".part")


def test_np_save_by_name_lands_exactly_at_the_target(tmp_path, umask_027):
    target = tmp_path / "scores.npy"
    with atomic.atomic_path(str(target)) as tmp:
        np.save(tmp, np.arange(4))  # np.save appends ".npy" to a name lacking it
    assert os.listdir(tmp_path) == ["scores.npy"]
    np.testing.assert_array_equal(np.load(target), np.arange(4))
    assert _mode(target) == umask_027


def test_np_savez_by_name_lands_exactly_at_the_target(tmp_path):
    target = tmp_path / "v.npz"
    with atomic.atomic_path(str(target)) as tmp:
        np.savez(tmp, a=np.ones(2))
    assert os.listdir(tmp_path) == ["v.npz"]
    with np.load(target) as stored:
        np.testing.assert_array_equal(stored["a"], np.ones(2))


def test_savefig_png_lands_at_the_target(tmp_path):
    from recbole_dlrrec.experiments import plots

    figure = plots._figure(2, 2)
    figure.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    target = tmp_path / "chart.png"
    assert plots._save(figure, str(target)) == str(target)
    assert os.listdir(tmp_path) == ["chart.png"]
    assert target.read_bytes().startswith(b"\x89PNG")


def test_callers_use_umask_mode(tmp_path, umask_027):
    from recbole_dlrrec.data.text_vectors import save_text_vectors
    from recbole_dlrrec.experiments import cell_rows
    from recbole_dlrrec.runtime import quick_start

    npy = tmp_path / "cell.npy"
    cell_rows.save(str(npy), cell_rows.CellRows(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    np.testing.assert_array_equal(np.load(npy), np.eye(2))
    result = tmp_path / "result.json"
    quick_start.atomic_write_json(str(result), {"b": 1, "a": 2})
    assert result.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    vectors = tmp_path / "d.itemvec.npz"
    save_text_vectors(str(vectors), ["x", "y"], np.ones((2, 3)))
    for path in (npy, result, vectors):
        assert _mode(path) == umask_027
    assert sorted(os.listdir(tmp_path)) == ["cell.npy", "d.itemvec.npz", "result.json"]


def test_a_private_mode_holds_from_the_first_byte(tmp_path):
    target = tmp_path / "secret"
    old = os.umask(0)
    try:
        with atomic.atomic_path(str(target), mode=0o600) as tmp:
            assert _mode(tmp) == 0o600  # the temporary file is private too, while it is written
            with open(tmp, "w") as handle:
                handle.write("s")
    finally:
        os.umask(old)
    assert _mode(target) == 0o600 and target.read_text() == "s"


def test_replace_false_keeps_an_existing_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "token"
    atomic.write_bytes(str(target), b"new", replace=False)  # no file yet: written
    assert target.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        atomic.write_bytes(str(target), b"other", replace=False)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["token"]
