"""The Ray auth token (experiments/ray_auth.py, `recbole-dlrrec ray-token`): made from nothing with
mode 0600, never over an existing one without --force, found where Ray looks, checked before a
driver prepares any data."""

from __future__ import annotations

import os
import stat

import pytest

from recbole_dlrrec.cli.main import main
from recbole_dlrrec.experiments import ray_auth


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A fresh machine: an empty HOME and none of Ray's auth variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (ray_auth.MODE_ENV, ray_auth.TOKEN_ENV, ray_auth.TOKEN_PATH_ENV):
        monkeypatch.setenv(name, "")  # recorded, so that what a test sets is undone after it
        monkeypatch.delenv(name)
    return home


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ray_token_makes_a_private_token_in_an_empty_home(empty_home, capsys):
    old = os.umask(0)  # even where every new file would be world-writable
    try:
        assert main(["ray-token"]) == 0
    finally:
        os.umask(old)
    token = empty_home / ".ray" / "auth_token"
    text = token.read_text()
    assert len(text) == 64 and int(text, 16) >= 0  # 256 bits as hex, as Ray's own generator
    assert _mode(token) == 0o600
    assert os.listdir(token.parent) == ["auth_token"]  # no temporary file left
    out = capsys.readouterr().out
    assert f"wrote a new Ray auth token to {token}" in out


def test_an_existing_token_is_kept_unless_force(empty_home, capsys):
    assert main(["ray-token"]) == 0
    token = empty_home / ".ray" / "auth_token"
    first = token.read_text()
    assert main(["ray-token"]) == 0
    assert token.read_text() == first and "kept" in capsys.readouterr().out
    assert main(["ray-token", "--force"]) == 0
    assert token.read_text() != first and _mode(token) == 0o600


def test_a_shared_token_file_is_kept_with_a_warning(empty_home, capsys):
    token = empty_home / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("a" * 64)
    os.chmod(token, 0o644)
    assert main(["ray-token"]) == 0
    assert token.read_text() == "a" * 64
    assert f"chmod 600 {token}" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["empty", "folder"])
def test_a_file_that_is_no_token_is_refused_in_one_line(empty_home, capsys, kind):
    token = empty_home / ".ray" / "auth_token"
    token.parent.mkdir()
    if kind == "empty":
        token.write_text("")
    else:
        token.mkdir()
    assert main(["ray-token"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{token}: exists but holds no Ray auth token" in err


def test_an_unwritable_place_is_one_line(empty_home, capsys):
    os.chmod(empty_home, 0o500)
    try:
        if os.access(empty_home, os.W_OK):
            pytest.skip("running as a user whom file modes do not stop")
        assert main(["ray-token"]) == 2
    finally:
        os.chmod(empty_home, 0o700)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot write the Ray auth token" in err


def test_the_token_goes_where_ray_token_path_points(empty_home, tmp_path, monkeypatch):
    named = tmp_path / "secrets" / "ray.token"
    monkeypatch.setenv(ray_auth.TOKEN_PATH_ENV, str(named))
    assert main(["ray-token"]) == 0
    assert _mode(named) == 0o600 and not (empty_home / ".ray").exists()
    assert ray_auth.token_source() == str(named)


def test_the_driver_check_follows_ray_s_order(empty_home, tmp_path, monkeypatch):
    ray_auth.check_driver_token("h:1")  # token mode off: nothing to check
    monkeypatch.setenv(ray_auth.MODE_ENV, "token")
    with pytest.raises(ray_auth.RayTokenError, match=r"--address=h:1: RAY_AUTH_MODE=token but no Ray auth token"):
        ray_auth.check_driver_token("h:1")
    monkeypatch.setenv(ray_auth.TOKEN_ENV, "secret")
    ray_auth.check_driver_token("h:1")
    assert ray_auth.token_source() == ray_auth.TOKEN_ENV
    monkeypatch.delenv(ray_auth.TOKEN_ENV)
    monkeypatch.setenv(ray_auth.TOKEN_PATH_ENV, str(tmp_path / "missing"))  # Ray would abort on it
    with pytest.raises(ray_auth.RayTokenError, match="RAY_AUTH_TOKEN_PATH=.*missing or empty"):
        ray_auth.check_driver_token("h:1")
    monkeypatch.delenv(ray_auth.TOKEN_PATH_ENV)
    assert ray_auth.make_token()
    ray_auth.check_driver_token("h:1")
    assert ray_auth.token_source() == str(empty_home / ".ray" / "auth_token")


def test_a_local_ray_gets_a_token_in_the_environment_not_in_home(empty_home, monkeypatch):
    ray_auth.give_local_ray_a_token()
    assert len(os.environ[ray_auth.TOKEN_ENV]) == 64 and not (empty_home / ".ray").exists()
    monkeypatch.delenv(ray_auth.TOKEN_ENV)
    monkeypatch.setenv(ray_auth.MODE_ENV, "disabled")  # the user's choice stands
    ray_auth.give_local_ray_a_token()
    assert ray_auth.TOKEN_ENV not in os.environ
