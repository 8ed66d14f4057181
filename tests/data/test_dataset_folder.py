"""The one dataset-folder writer (recbole_dlrrec.data.dataset_folder), through the converter
and the cold-item split: only what the tool wrote is replaced, paths fail early with one line."""

from __future__ import annotations

import errno
import json
import os

import pytest

from recbole_dlrrec import atomic
from recbole_dlrrec.cli import convert as cli_convert
from recbole_dlrrec.data import dataset_folder as dsf
from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data.encoder import HashEncoder
from recbole_dlrrec.errors import InputError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REVIEWS = os.path.join(FIXTURES, "reviews_small.json")
META = os.path.join(FIXTURES, "meta_small.json")
NO_INPUT = "/nonexistent/never-read.json"  # the path checks must come before any input is read


def convert(out, name="tiny", reviews=REVIEWS, meta=META, **kwargs):
    return gl.convert(reviews, meta, name, str(out), encoder=HashEncoder(), show_progress=False, **kwargs)


def cli(capsys, *args):
    rc = cli_convert.main(["--quiet", *args])
    err = capsys.readouterr().err
    return rc, err


# -- only what the tool wrote ------------------------------------------------------------------
def test_a_folder_of_someone_elses_is_refused_and_kept(tmp_path, capsys):
    notes = tmp_path / "o" / "important" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("notes\n")
    rc, err = cli(
        capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "important", "--out", str(tmp_path / "o")
    )
    assert rc == 2 and err.count("\n") == 1 and "did not write" in err and "never-read" not in err
    assert notes.read_text() == "notes\n"
    assert sorted(os.listdir(tmp_path / "o")) == ["important"]


@pytest.mark.parametrize("kind", ["file", "symlink", "folder with a foreign REPORT.json"])
def test_anything_but_our_own_dataset_is_refused(tmp_path, kind):
    out = tmp_path / "o"
    out.mkdir()
    target = out / "tiny"
    if kind == "file":
        target.write_text("mine\n")
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.mkdir()
        (target / "REPORT.json").write_text(json.dumps({"name": "other"}))
    with pytest.raises(dsf.DatasetFolderError, match="did not write"):
        convert(out, reviews=NO_INPUT)
    assert os.path.lexists(target) and sorted(os.listdir(out)) == ["tiny"]  # nothing moved aside


def test_our_own_dataset_is_replaced(tmp_path):
    convert(tmp_path)
    report = convert(tmp_path, label_threshold=5)
    assert report["params"]["label_threshold"] == 5
    assert sorted(os.listdir(tmp_path)) == ["tiny"]
    assert dsf.read_report(str(tmp_path / "tiny"), "tiny")["params"]["label_threshold"] == 5


def test_stale_temp_folders_of_this_name_are_cleaned_and_nothing_else(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    dead = tmp_path / ".tiny.tmp-999999999-abcd1234"  # beyond any pid: the process is gone
    legacy = tmp_path / ".tiny.tmp-ab_cd123"  # an earlier version's pattern
    old = tmp_path / ".tiny.old-999999999-abcd1234"
    alive = tmp_path / f".tiny.tmp-{os.getpid()}-abcd1234"  # a run still going
    other = tmp_path / ".other.tmp-999999999-abcd1234"
    mine = tmp_path / ".tiny.tmp-notes"
    for folder in (dead, legacy, old, alive, other, mine):
        folder.mkdir()
        (folder / "x").write_text("x")
    convert(tmp_path)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(["tiny", alive.name, other.name, mine.name])


def test_cold_start_uses_the_same_marker_rule(tmp_path):
    from conftest import write_tiny_dataset

    from recbole_dlrrec.experiments.cold_start import make_cold_items_dataset

    root = write_tiny_dataset(str(tmp_path), name="tiny")
    foreign = tmp_path / "tiny-cold-d2020"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    with pytest.raises(dsf.DatasetFolderError, match="did not write"):
        make_cold_items_dataset("tiny", data_path=root, fraction=0.2, log=lambda m: None)
    assert (foreign / "notes.txt").read_text() == "mine\n"
    (foreign / "notes.txt").unlink()
    foreign.rmdir()
    make_cold_items_dataset("tiny", data_path=root, fraction=0.2, log=lambda m: None)
    report = dsf.read_report(str(foreign), "tiny-cold-d2020")
    assert report is not None and report["cold_items"] == 10
    # Its own output is replaced (force), with no temp folder left behind.
    make_cold_items_dataset("tiny", data_path=root, fraction=0.3, force=True, log=lambda m: None)
    assert dsf.read_report(str(foreign), "tiny-cold-d2020")["cold_items"] == 15
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tiny-cold-d2020")]


# -- paths fail early and as one line ------------------------------------------------------------
def test_out_that_is_a_file_or_below_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    below = f"is below {afile}, which is a file, not a folder"
    for out, message in ((afile, f"{afile} is a file, not a folder"), (afile / "sub", below)):
        rc, err = cli(capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "x", "--out", str(out))
        assert rc == 2 and err.count("\n") == 1 and message in err and "that a file" not in err, err
    assert afile.read_text() == "x"


def test_symlink_loop(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    rc, err = cli(capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "x", "--out", str(loop / "out"))
    assert rc == 2 and err.count("\n") == 1 and "symlink loop" in err


def test_a_name_too_long_for_the_file_system(tmp_path, capsys):
    rc, err = cli(capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "n" * 300, "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "name limit" in err
    assert os.listdir(tmp_path) == []


def test_read_only_out(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
    else:  # root writes anywhere: the OS refusal is simulated where the folder is made

        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(out))

        monkeypatch.setattr(dsf.tempfile, "mkdtemp", refuse)
    try:
        rc, err = cli(capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "x", "--out", str(out))
    finally:
        out.chmod(0o755)
    assert rc == 2 and err.count("\n") == 1 and "Permission denied" in err and "never-read" not in err


def test_disk_full_while_writing_is_one_line_and_keeps_the_old_dataset(tmp_path, monkeypatch):
    convert(tmp_path)
    before = (tmp_path / "tiny" / "tiny.train.inter").read_bytes()
    real = atomic.write_text

    def full(path, text):
        if path.endswith(".item"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(path, text)

    monkeypatch.setattr(atomic, "write_text", full)
    with pytest.raises(dsf.DatasetFolderError, match="No space left on device") as caught:
        convert(tmp_path, split="random")
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["tiny"]
    assert (tmp_path / "tiny" / "tiny.train.inter").read_bytes() == before


# -- files inside our own dataset folder (issue 25 item 4) -------------------------------------
def test_a_file_of_yours_inside_our_dataset_is_refused_unless_force(tmp_path, capsys):
    convert(tmp_path)
    written = dsf.read_report(str(tmp_path / "tiny"), "tiny")["files"]
    assert written == sorted(os.listdir(tmp_path / "tiny")) and "REPORT.json" in written
    notes = tmp_path / "tiny" / "notes.txt"
    notes.write_text("mine\n")
    (tmp_path / "tiny" / "plots").mkdir()
    rc, err = cli(capsys, "--reviews", NO_INPUT, "--meta", NO_INPUT, "--name", "tiny", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "never-read" not in err  # refused before any input
    assert "2 file(s) this tool did not write: notes.txt, plots/" in err and "--force" in err
    assert notes.read_text() == "mine\n"
    # The SWING cache training writes into the folder is the tool's: it goes with the dataset.
    notes.unlink()
    (tmp_path / "tiny" / "plots").rmdir()
    (tmp_path / "tiny" / "swing_cache").mkdir()
    (tmp_path / "tiny" / "swing_cache" / "swing_0123456789abcdef.npz").write_bytes(b"x")
    convert(tmp_path, label_threshold=5)
    assert not (tmp_path / "tiny" / "swing_cache").exists()
    notes.write_text("mine\n")
    rc, err = cli(
        capsys,
        "--reviews",
        REVIEWS,
        "--meta",
        META,
        "--name",
        "tiny",
        "--out",
        str(tmp_path),
        "--encoder_cache",
        str(tmp_path / "c.sqlite"),
        "--force",
        "--encoder_model",
        NO_INPUT,
    )
    assert rc == 2 and "text model directory not found" in err  # --force passed the folder check
    report = convert(tmp_path, force=True)
    assert not notes.exists() and report["files"] == sorted(os.listdir(tmp_path / "tiny"))


def test_a_dataset_written_before_the_file_list_is_judged_by_its_names(tmp_path):
    convert(tmp_path)
    marker = tmp_path / "tiny" / "REPORT.json"
    old = json.loads(marker.read_text())
    del old["files"]
    marker.write_text(json.dumps(old))
    convert(tmp_path, label_threshold=5)  # every name is one the converter writes: replaced
    marker.write_text(json.dumps(old))
    (tmp_path / "tiny" / "tiny.notes.txt").write_text("mine\n")
    with pytest.raises(dsf.DatasetFolderError, match=r"1 file\(s\) this tool did not write: tiny\.notes\.txt"):
        convert(tmp_path, reviews=NO_INPUT)
    assert (tmp_path / "tiny" / "tiny.notes.txt").exists()


def test_cold_start_keeps_a_file_of_yours_too(tmp_path):
    from conftest import write_tiny_dataset

    from recbole_dlrrec.experiments.cold_start import make_cold_items_dataset

    root = write_tiny_dataset(str(tmp_path), name="tiny")
    make_cold_items_dataset("tiny", data_path=root, fraction=0.2, log=lambda m: None)
    notes = tmp_path / "tiny-cold-d2020" / "notes.txt"
    notes.write_text("mine\n")
    with pytest.raises(dsf.DatasetFolderError, match="notes.txt"):
        make_cold_items_dataset("tiny", data_path=root, fraction=0.3, force=True, log=lambda m: None)
    assert notes.read_text() == "mine\n"
    assert dsf.read_report(str(tmp_path / "tiny-cold-d2020"), "tiny-cold-d2020")["cold_items"] == 10
