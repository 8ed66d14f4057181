"""Imports point one way: no module of the package imports, directly or through others, a module
that imports it back. Read from the source with ast, so nothing is imported to check it.

Every import counts, the ones inside functions too: a deferred import is still a dependency (it
only hides a loop until the function runs). Imports under ``if TYPE_CHECKING:`` do not run and do
not count. ``from pkg import name`` is an import of ``pkg.name`` when that is a module, else of
``pkg`` (whose ``__init__`` defines the name).
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "recbole_dlrrec"

# Loops known and being removed, each with the work that removes it. A new loop fails the test,
# and so does an entry whose loop is gone (delete it then), so the list only shrinks.
KNOWN_LOOPS: Set[frozenset] = set()


def package_modules(root: str, package: str) -> Dict[str, str]:
    """Dotted module name -> file, for every .py file of `package` under `root`."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(root, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[: -len(".py")].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def _import_nodes(tree: ast.Module) -> List[ast.stmt]:
    """Every Import / ImportFrom of the module, except those under `if TYPE_CHECKING:`."""
    found: List[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(target: str, modules: Dict[str, str]) -> str:
    """The package module that importing `target` runs last ('' when outside the package)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def import_graph(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """Module -> the package modules it imports."""
    graph = {}
    for module, path in modules.items():
        is_package = path.endswith("__init__.py")
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
        targets: Set[str] = set()
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's own package, up level - 1 packages
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            targets |= {_resolve(name, modules) for name in names}
        graph[module] = targets - {"", module}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One loop (a path that returns to its start) per strongly connected group of modules."""
    return [_loop_through(group, graph) for group in strongly_connected(graph)]


def strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The groups of two or more modules that each reach the others through imports."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def _loop_through(group: List[str], graph: Dict[str, Set[str]]) -> List[str]:
    """A path start -> ... -> start inside `group` (breadth first, so the shortest)."""
    start, members = min(group), set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    return group


def test_the_package_has_no_import_cycle():
    modules = package_modules(ROOT, PACKAGE)
    assert f"{PACKAGE}.runtime.quick_start" in modules  # the walker sees the package
    graph = import_graph(modules)
    groups = {frozenset(group) for group in strongly_connected(graph)}
    new = [" -> ".join(_loop_through(sorted(group), graph)) for group in groups - KNOWN_LOOPS]
    assert new == []
    assert [sorted(gone) for gone in KNOWN_LOOPS - groups] == [], "loop gone: delete it from KNOWN_LOOPS"


def test_the_walker_finds_a_loop_hidden_in_a_function(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = import_graph(package_modules(str(tmp_path), "pkg"))
    assert graph["pkg.c"] == set()  # type-checking imports do not run
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
