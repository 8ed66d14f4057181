"""The wheel works on its own: it ships properties/ and the `recbole-dlrrec` command, and trains
from a folder outside the checkout with nothing of the checkout in view.

The documented install (Makefile, "Installing the wheel") is one command per Python:
    pip install --no-deps -r requirements-lock-pyXY.txt -r requirements-recbole.txt recbole_dlrrec-*.whl
--no-deps for the whole command is what lets RecBole in without its ray<=2.6.3 pin, so the lock
must hold everything the wheel and RecBole need, dependencies of dependencies included: checked
here against the lock of every supported Python and, for the running one, down the whole tree.
A plain `pip install` of the wheel leaves RecBole out; the command then says so in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from typing import Dict, List

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBCOMMANDS = ("train", "leaderboard", "tune", "convert", "swing")
PYTHONS = ("3.11", "3.12", "3.13")
# RecBole 1.2.1's one requirement the documented install leaves unmet on purpose (requirements.txt).
RECBOLE_RAY_PIN = ("recbole", "ray")


def _requirement_lines(name: str) -> List[str]:
    with open(os.path.join(ROOT, name)) as handle:
        return [line.split("#")[0].strip() for line in handle if line.split("#")[0].strip()]


def _install_set(python: str) -> Dict[str, Version]:
    """What the documented command installs besides the wheel: requirements-lock-pyXY.txt and
    requirements-recbole.txt, as {canonical name: pinned version}."""
    pins = {}
    lock = f"requirements-lock-py{python.replace('.', '')}.txt"
    for line in _requirement_lines(lock) + _requirement_lines("requirements-recbole.txt"):
        name, version = line.split("==")
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _environment(python: str, extra: str = "") -> dict:
    return {"python_version": python, "python_full_version": f"{python}.0", "extra": extra}


def _unmet(requirements, pins: Dict[str, Version], python: str, walk: bool) -> List[str]:
    """The requirements (and, with `walk`, those of every installed distribution at its pinned
    version, down the tree) that the pins leave unmet, as "who -> requirement" lines."""
    unmet, seen = [], set()
    todo = [("recbole-dlrrec", Requirement(r), "") for r in requirements]
    while todo:
        who, req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(_environment(python, extra)):
            continue
        name = canonicalize_name(req.name)
        if (canonicalize_name(who), name) == RECBOLE_RAY_PIN:
            continue
        pinned = pins.get(name)
        if pinned is None or not req.specifier.contains(pinned, prereleases=True):
            unmet.append(f"{who} -> {req} (lock: {pinned})")
            continue
        for wanted in [""] + sorted(req.extras):
            if not walk or (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            try:
                installed = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue
            if Version(installed.version) == pinned:
                todo += [(name, Requirement(r), wanted) for r in installed.requires or ()]
    return unmet


def _documented_requirements() -> List[str]:
    """What the documented command asks for besides the lock: the wheel's own requirements
    (setup.py reads requirements.txt) and RecBole."""
    return _requirement_lines("requirements.txt") + _requirement_lines("requirements-recbole.txt")


@pytest.mark.parametrize("python", PYTHONS)
def test_each_lock_meets_the_wheel_and_recbole(python):
    unmet = _unmet(_documented_requirements(), _install_set(python), python, walk=False)
    assert unmet == []


def test_running_python_lock_meets_the_whole_tree():
    """Down every dependency's own requirements, as installed here (the venv is built from this
    lock), the lock leaves nothing unmet but RecBole's ray pin."""
    python = "%d.%d" % sys.version_info[:2]
    if python not in PYTHONS:
        pytest.skip(f"no lock for Python {python}")
    unmet = _unmet(_documented_requirements(), _install_set(python), python, walk=True)
    assert unmet == []
    recbole_needs = [Requirement(r) for r in metadata.distribution("recbole").requires or ()]
    assert [r.name for r in recbole_needs if canonicalize_name(r.name) == "ray"] == ["ray"]


def test_recbole_pin_is_the_requirements_file():
    from recbole_dlrrec.cli.main import RECBOLE_REQUIREMENT

    assert _requirement_lines("requirements-recbole.txt") == [RECBOLE_REQUIREMENT]


def test_missing_recbole_is_one_line_naming_the_step(monkeypatch, capsys):
    from recbole_dlrrec.cli.main import main

    monkeypatch.setitem(sys.modules, "recbole", None)  # find_spec and import then see no RecBole
    for name in SUBCOMMANDS:
        assert main([name, "--dataset=x"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "RecBole is not installed" in err[0], err
        assert err[0].endswith("pip install --no-deps recbole==1.2.1")
    assert main(["--help"]) == 0  # the command's own help needs no RecBole


def _copy_checkout(dest: str) -> None:
    """The files git would ship (tracked, plus new files .gitignore does not exclude), so the
    build sees neither datasets nor results nor the checkout's own build/ and *.egg-info."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("the checkout is not a git work tree: its files cannot be listed")
    listed = proc.stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(wheel file, venv folder, env for subprocesses): the wheel installed into a fresh venv.

    The venv borrows the DEPENDENCIES from the interpreter running the tests through a .pth
    line pointing at its site-packages (offline and fast). A directory named by a .pth line
    gets no .pth processing of its own, so the editable install's finder there
    (__editable__*recbole_dlrrec*) never runs; the venv's own site-packages, holding the
    wheel's recbole_dlrrec, comes first on sys.path.
    """
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the checkout's files")
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv = base / "src", base / "dist", base / "venv"
    _copy_checkout(str(src))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), "."],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = list(dist.glob("recbole_dlrrec-*.whl"))
    return wheel, venv, _install_wheel(wheel, venv, sysconfig.get_paths()["purelib"])


def _install_wheel(wheel, venv, dependencies: str) -> dict:
    """Install `wheel` alone into a fresh venv at `venv` whose dependencies come from the folder
    `dependencies` (a .pth line); returns the env for subprocesses."""
    # Nothing of the checkout in view, pip included: a PYTHONPATH naming the checkout (and its
    # recbole_dlrrec.egg-info, left by a build there) would have pip find the package installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "RECBOLE_DLRREC_PROPERTIES")}
    env["PYTHONNOUSERSITE"] = "1"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
        env=env,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    assert any(name.startswith("recbole_dlrrec-") for name in os.listdir(purelib)), f"{wheel} not installed in {venv}"
    # Written after the install, so pip saw no recbole-dlrrec already installed.
    with open(os.path.join(purelib, "_test_dependencies.pth"), "w") as handle:
        handle.write(dependencies + "\n")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.slow
def test_wheel_ships_properties_and_the_command(wheel_env):
    wheel, _, _ = wheel_env
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    shipped = {n[len("recbole_dlrrec/") :] for n in names if n.startswith("recbole_dlrrec/properties/")}
    in_repo = {
        os.path.relpath(os.path.join(d, f), ROOT)
        for d, _, files in os.walk(os.path.join(ROOT, "properties"))
        for f in files
        if f.endswith(".yaml")
    }
    assert shipped == in_repo and "properties/overall.yaml" in shipped
    assert "recbole-dlrrec = recbole_dlrrec.cli.main:main" in entry_points


@pytest.mark.slow
def test_installed_command_trains_outside_the_checkout(wheel_env, tmp_path):
    _, venv, env = wheel_env
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import recbole_dlrrec, recbole_dlrrec.runtime.quick_start, recbole_dlrrec.config.stack as s; "
            "print(recbole_dlrrec.__file__); print(s.PROPERTIES_DIR)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    package_file, properties = where.stdout.split()
    assert package_file.startswith(str(venv)) and not package_file.startswith(ROOT)
    assert properties == os.path.join(os.path.dirname(package_file), "properties")

    helped = subprocess.run(["recbole-dlrrec", "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and all(name in helped.stdout for name in SUBCOMMANDS), helped.stdout

    # ml-100k's text vectors are side files the plugin builds with the MiniLM encoder on first
    # use; DLRM does not read them, so small stand-ins (8-d, one per id) keep the test fast.
    from recbole_dlrrec.data.movielens import NAME, item_texts, user_texts
    from recbole_dlrrec.data.text_vectors import save_text_vectors

    side = work / "dataset" / NAME
    side.mkdir(parents=True)
    for suffix, (ids, _) in (("itemvec", item_texts()), ("uservec", user_texts())):
        save_text_vectors(str(side / f"{NAME}.{suffix}.npz"), ids, np.ones((len(ids), 8), dtype=np.float32))

    proc = subprocess.run(
        [
            "recbole-dlrrec",
            "train",
            "--model=DLRM",
            "--dataset=ml-100k",
            "--epochs=1",
            "--use_gpu=False",
            "--show_progress=False",
            "--state=WARNING",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result_file = proc.stdout.strip().splitlines()[-1]
    results = json.load(open(os.path.join(work, result_file)))
    assert results["model"] == "DLRM" and results["dataset"] == "ml-100k" and len(results["epochs"]) == 1
    assert 0.0 <= results["test_result"]["auc"] <= 1.0
    # The run read the wheel's properties (DLRM's own YAML sets fused_optimizer).
    assert results["config"]["fused_optimizer"] is True


@pytest.mark.slow
def test_plain_install_names_the_missing_recbole_step(wheel_env, tmp_path):
    """A plain `pip install` of the wheel: every requirement but RecBole (the wheel does not
    declare it). The command says which step is missing, in one line, exit 2."""
    wheel, _, _ = wheel_env
    here = sysconfig.get_paths()["purelib"]
    without_recbole = tmp_path / "dependencies"
    without_recbole.mkdir()
    for entry in os.listdir(here):
        if entry != "recbole" and not entry.startswith("recbole-"):
            os.symlink(os.path.join(here, entry), without_recbole / entry)
    env = _install_wheel(wheel, tmp_path / "venv", str(without_recbole))
    proc = subprocess.run(
        ["recbole-dlrrec", "train", "--model=DLRM", "--dataset=ml-100k"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert err[0] == (
        "error: RecBole is not installed: install it without its own dependencies "
        "(recbole-dlrrec brought the ones it uses): pip install --no-deps recbole==1.2.1"
    )
    helped = subprocess.run(
        ["recbole-dlrrec", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "train" in helped.stdout


def test_unknown_subcommand_is_one_line(capsys):
    from recbole_dlrrec.cli.main import main

    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown subcommand 'trian'" in err[0] and "train" in err[0]
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)
