"""The user guide: the README stays a short quick start, and the docs site builds strictly (a broken
link or anchor fails the build), as `make docs` builds it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import List

import pytest

from recbole_dlrrec.experiments import docs_results

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
README_MAX_LINES = 200
# History, targets and work narratives belong in CHANGELOG.md, not in the user docs.
NARRATIVE = re.compile(r"\b(issue|issues) #?[0-9]+|left to run|this session", re.IGNORECASE)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _user_docs() -> List[str]:
    paths = [os.path.join(ROOT, "README.md")]
    for folder, dirs, files in os.walk(os.path.join(ROOT, "docs")):
        dirs[:] = [d for d in dirs if d != "boards"]  # generated from results/
        paths += [os.path.join(folder, f) for f in files if f.endswith(".md")]
    return paths


def test_readme_is_a_short_quick_start():
    text = _read(os.path.join(ROOT, "README.md"))
    assert len(text.splitlines()) <= README_MAX_LINES
    quick_start = text.split("\n## ", 2)[1]
    assert quick_start.startswith("Quick start") and "make demo" in quick_start and "make test" in quick_start


@pytest.mark.parametrize("path", _user_docs(), ids=lambda p: os.path.relpath(p, ROOT))
def test_user_docs_hold_no_issue_numbers_or_work_narratives(path):
    hits = [line for line in _read(path).splitlines() if NARRATIVE.search(line)]
    assert hits == []


def _site_copy(tmp_path) -> str:
    """mkdocs.yml and docs/ (less any generated pages) copied aside, the results pages generated
    into the copy as `make docs` does, so the test never writes into the checkout."""
    site_root = tmp_path / "repo"
    site_root.mkdir()
    shutil.copy(os.path.join(ROOT, "mkdocs.yml"), site_root / "mkdocs.yml")
    shutil.copytree(
        os.path.join(ROOT, "docs"),
        site_root / "docs",
        ignore=lambda folder, names: ["boards"] if os.path.basename(folder) == "results" else [],
    )
    docs_results.build(os.path.join(ROOT, "results"), str(site_root / "docs" / "results" / "boards"))
    return str(site_root)


def _build(site_root: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"],
        cwd=site_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_docs_site_builds_strictly(tmp_path):
    site_root = _site_copy(tmp_path)
    generated = os.path.join(site_root, "docs", "results", "boards")
    for folder, _, files in os.walk(generated):
        for name in (f for f in files if f.endswith(".md")):
            hits = [line for line in _read(os.path.join(folder, name)).splitlines() if NARRATIVE.search(line)]
            assert hits == [], os.path.relpath(os.path.join(folder, name), generated)
    built = _build(site_root)
    assert built.returncode == 0, built.stderr[-3000:]
    for page in (
        "index.html",
        "promises/index.html",
        "results/index.html",
        "results/boards/ml-100k-tuned/index.html",
        "results/boards/ml-100k-tuned/leaderboard_auc.png",
    ):
        assert os.path.isfile(os.path.join(site_root, "site", page)), page


@pytest.mark.slow
def test_a_broken_anchor_fails_the_build(tmp_path):
    site_root = _site_copy(tmp_path)
    with open(os.path.join(site_root, "docs", "leakage.md"), "a", encoding="utf-8") as handle:
        handle.write("\nSee [the model](model.md#no-such-section).\n")
    built = _build(site_root)
    assert built.returncode != 0
    assert "no-such-section" in built.stderr
