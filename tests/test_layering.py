"""The project's floors, read from the source: every import statement of every module (at module level and inside
functions) of the project's packages, resolved to files. No two files import each other, directly or around a
cycle; runlib imports no other project package; backbone imports only runlib and no detection or segmentation
framework; only detection/ imports detectron2, only segmentation/ imports mmseg and mmcv, and mmengine beyond its
config files (``mmengine.config``, ``mmengine.fileio``: the format of the pretraining configs and grid files).

A file's ``if __name__ == "__main__":`` block is left out: it runs only when the file is the program (``python -m
pretrain.train``), as the module ``__main__``, which no module imports back."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("runlib", "backbone", "pretrain", "detection", "segmentation", "mae_transfer")
FRAMEWORKS = {"detectron2": "detection", "mmseg": "segmentation", "mmcv": "segmentation", "mmengine": "segmentation"}
CONFIG_FILES = ("mmengine.config", "mmengine.fileio")  # mmengine's config-file reader, for every package


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators))


def imported_names(path: Path) -> set[str]:
    """The absolute dotted names every import statement in the file names (``from a import b`` gives ``a.b`` when
    that is a module, else ``a``), relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    tree = ast.parse(path.read_text(), str(path))
    tree.body = [node for node in tree.body if not is_main_guard(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from a import b`` where ``a.b`` is a module reads nothing from ``a`` (its package is imported first
            # in any case); any other ``b`` is read from ``a`` itself
            names |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return names


def project_file(name: str) -> str | None:
    """The project module a dotted name lands in (its longest prefix that is a module), None outside the project."""
    parts = name.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in MODULES), None)


GRAPH = {name: {m for n in imported_names(path) if (m := project_file(n)) and m != name}
         for name, path in MODULES.items()}
THIRD_PARTY = {name: {n for n in imported_names(path) if project_file(n) is None} for name, path in MODULES.items()}


def package_edges(name: str) -> set[str]:
    return {target.split(".")[0] for target in GRAPH[name]} - {name.split(".")[0]}


def a_cycle() -> list[str] | None:
    """One import cycle among the files, as the modules around it, or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    return next((found for node in sorted(GRAPH) if node not in state and (found := visit(node))), None)


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_the_graph_sees_imports_inside_functions():
    # backbone.hub imports huggingface_hub only inside functions
    assert "huggingface_hub" in top_level(THIRD_PARTY["backbone.hub"])
    assert {"runlib", "backbone", "pretrain", "detection", "segmentation"} <= {m.split(".")[0] for m in MODULES}


def test_no_import_cycle_between_files():
    assert a_cycle() is None, " -> ".join(a_cycle())


@pytest.mark.parametrize("package, allowed", [("runlib", set()), ("backbone", {"runlib"})])
def test_the_bottom_floors_import_only_what_is_below_them(package, allowed):
    above = {name: package_edges(name) - allowed for name in GRAPH if name.split(".")[0] == package}
    assert {name: edges for name, edges in above.items() if edges} == {}


@pytest.mark.parametrize("framework, home", sorted(FRAMEWORKS.items()))
def test_each_framework_is_imported_only_by_its_package(framework, home):
    outside = {name: sorted(n for n in modules if n.split(".")[0] == framework and not n.startswith(CONFIG_FILES))
               for name, modules in THIRD_PARTY.items() if name.split(".")[0] != home}
    assert {name: modules for name, modules in outside.items() if modules} == {}
