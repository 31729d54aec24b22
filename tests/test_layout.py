"""The tests' own shape: folders mirror the package, and tests hold the code to its public surface.

A test that reads or patches a private name pins how the code works today instead of what it promises: it breaks on
a harmless refactor and passes through a real regression. Test helpers may keep private names of their own
(`self._x`).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PACKAGES = {p.parent.name for p in (ROOT / "src" / "messages_bridge").glob("*/__init__.py")}
CROSS_CUTTING = {"reliability", "e2e", "bench", "fixtures"}  # suites over the whole gateway, and their data


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def _dotted_private(node: ast.Constant) -> bool:
    """A string like `"messages_bridge.cli._run"`, as `monkeypatch.setattr` takes it."""
    value = node.value
    return isinstance(value, str) and value.startswith("messages_bridge.") and any(map(_private, value.split(".")))


def _sets_private(node: ast.Call) -> bool:
    """`setattr(x, "_name", …)` or `monkeypatch.setattr(x, "_name", …)`."""
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    second = node.args[1] if len(node.args) > 1 else None
    return name == "setattr" and isinstance(second, ast.Constant) and _private(str(second.value))


def _reaches_into(tree: ast.AST) -> list[str]:
    """Private names used on anything but `self`/`cls`, imported from the package, or patched by dotted path."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("messages_bridge"):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Constant) and _dotted_private(node):
            found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Call) and _sets_private(node):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_test_folders_mirror_the_package() -> None:
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - PACKAGES - CROSS_CUTTING == set()


def test_every_folder_of_tests_is_a_package() -> None:
    folders = {p.parent for p in TESTS.rglob("test_*.py")} | {p.parent for p in TESTS.rglob("conftest.py")}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists()) == []


def test_no_test_reaches_into_private_state() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        if found := _reaches_into(ast.parse(path.read_text(encoding="utf-8"))):
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
