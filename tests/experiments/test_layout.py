"""experiments/ stays split by job: small modules, short functions, no reach into another
module's private names, and the code digest still covers every source it names."""

from __future__ import annotations

import ast
import glob
import os

import recbole_dlrrec.experiments as experiments_package
from recbole_dlrrec.experiments import code_digest

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
EXPERIMENTS = os.path.dirname(os.path.abspath(experiments_package.__file__))
PACKAGE = os.path.dirname(EXPERIMENTS)


def _modules():
    return sorted(glob.glob(os.path.join(EXPERIMENTS, "*.py")))


def test_no_experiments_module_over_500_lines():
    sizes = {}
    for path in _modules():
        with open(path, encoding="utf-8") as handle:
            sizes[os.path.basename(path)] = sum(1 for _ in handle)
    assert len(sizes) > 5
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_experiments_function_over_60_lines():
    long = []
    for path in _modules():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{os.path.basename(path)}:{node.name} ({node.end_lineno - start + 1} lines)")
    assert long == []


def _private_reaches(path: str):
    """`from recbole_dlrrec... import _name` and `module._name` on a project module that `path` imports."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    project_imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recbole_dlrrec")
    ]
    modules = {alias.asname or alias.name for node in project_imports for alias in node.names}
    for node in project_imports:
        yield from (
            f"{node.module}.{alias.name}"
            for alias in node.names
            if alias.name.startswith("_") and not alias.name.startswith("__")
        )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            yield f"{node.value.id}.{node.attr}"


# Reaches kept on purpose, with the reason. runtime/ is part of the code digest (code_digest.RUN_CODE):
# renaming its helper to a public name would mark every committed cell and search stale.
ALLOWED_REACHES = {"recbole_dlrrec.runtime.quick_start._plain"}


def test_experiments_and_cli_use_no_private_name_of_another_module():
    paths = _modules() + sorted(glob.glob(os.path.join(PACKAGE, "cli", "*.py")))
    reaches = {os.path.relpath(p, PACKAGE): sorted(set(_private_reaches(p)) - ALLOWED_REACHES) for p in paths}
    assert {path: names for path, names in reaches.items() if names} == {}


def test_code_digest_names_only_sources_that_exist():
    """A moved or renamed file would silently drop out of the digest that cells and searches key on."""
    for entry in code_digest.RUN_CODE + code_digest.MODEL_CODE:
        assert os.path.exists(os.path.join(PACKAGE, entry)), entry
    assert not any(entry.startswith("experiments") for entry in code_digest.RUN_CODE + code_digest.MODEL_CODE)
