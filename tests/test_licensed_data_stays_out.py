"""The licensed Google Local files (../shared/data) and row-level copies of them stay out of git:
only tables and configurations computed from them are committed."""

from __future__ import annotations

import fnmatch
import os
import subprocess

import pytest

from tests.conftest import REAL_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Per-row test labels and scores of the Google Local boards (.gitignore says why).
ROW_LEVEL = "results/google-local-*/cells/*.npy"


def _tracked() -> list:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.stdout.decode("utf-8").split("\0") if p]


def _blob_id(path: str) -> str:
    return subprocess.run(
        ["git", "hash-object", path], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.strip()


def test_no_row_level_copy_of_the_google_local_data_is_tracked():
    assert [p for p in _tracked() if fnmatch.fnmatch(p, ROW_LEVEL)] == []


def test_no_raw_google_local_file_is_tracked():
    if not os.path.isdir(REAL_DATA):
        pytest.skip(f"real Google Local data not found at {os.path.normpath(REAL_DATA)} (../shared/data)")
    raw = {_blob_id(os.path.join(REAL_DATA, name)) for name in os.listdir(REAL_DATA) if name.endswith(".gz")}
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, check=True, text=True).stdout
    tracked_blobs = {line.split()[1] for line in listed.splitlines()}
    assert raw and not raw & tracked_blobs
