"""Layering: nn/ is torch only (no RecBole, no Config, nothing above it in the package) and
swing/ does not reach up into runtime/, experiments/ or cli/ (its __main__ excepted: it is the
program entry that runs cli/swing.py)."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recbole_dlrrec")


def imported_modules(path):
    """Every module a file imports, at the top or inside functions."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def sources(folder, skip=()):
    root = os.path.join(PACKAGE, folder)
    return [os.path.join(root, name) for name in sorted(os.listdir(root)) if name.endswith(".py") and name not in skip]


@pytest.mark.parametrize("path", sources("nn"), ids=os.path.basename)
def test_nn_imports_only_torch_and_itself(path):
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top != "recbole", f"{path} imports {module}"
        if top == "recbole_dlrrec":
            assert module.startswith("recbole_dlrrec.nn"), f"{path} imports {module}"


@pytest.mark.parametrize("path", sources("swing", skip=("__main__.py",)), ids=os.path.basename)
def test_swing_does_not_import_the_layers_above(path):
    above = ("recbole_dlrrec.runtime", "recbole_dlrrec.experiments", "recbole_dlrrec.cli", "recbole_dlrrec.models")
    for module in imported_modules(path):
        assert not module.startswith(above), f"{path} imports {module}"
