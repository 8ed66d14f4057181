"""properties_dir(): the package's own copy (wheel), else the checkout's, else the env override."""

from __future__ import annotations

import os

import pytest

from recbole_dlrrec.config import paths

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_checkout_uses_the_top_level_properties(monkeypatch):
    monkeypatch.delenv(paths.PROPERTIES_ENV, raising=False)
    assert paths.properties_dir() == os.path.join(ROOT, "properties")


def test_installed_copy_inside_the_package_wins(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.PROPERTIES_ENV, raising=False)
    package = tmp_path / "site-packages" / "recbole_dlrrec"
    for folder in (package / "properties", tmp_path / "site-packages" / "properties"):
        folder.mkdir(parents=True)
        (folder / "overall.yaml").write_text("epochs: 1  # (int) x\n")
    monkeypatch.setattr(paths, "_PACKAGE_DIR", str(package))
    assert paths.properties_dir() == str(package / "properties")


def test_env_override_and_a_broken_install(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.PROPERTIES_ENV, str(tmp_path / "mine"))
    assert paths.properties_dir() == str(tmp_path / "mine")
    monkeypatch.delenv(paths.PROPERTIES_ENV)
    monkeypatch.setattr(paths, "_PACKAGE_DIR", str(tmp_path / "empty" / "recbole_dlrrec"))
    with pytest.raises(FileNotFoundError, match="overall.yaml"):
        paths.properties_dir()
