"""The typed boundary: the extension's stub declares what the extension exports, and mypy
finds no error in the installed package (python/looplm and convert/, as shipped)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import looplm
from looplm import _core

STUB = Path(looplm.__file__).parent / "_core.pyi"


def _stub_names() -> tuple[set[str], dict[str, set[str]]]:
    tree = ast.parse(STUB.read_text())
    top: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top.add(node.name)
            members[node.name] = {
                n.name if isinstance(n, ast.FunctionDef) else n.target.id  # type: ignore[union-attr]
                for n in node.body
                if isinstance(n, ast.FunctionDef) or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
            }
        elif isinstance(node, ast.FunctionDef):
            top.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    return top, members


def _public(names: list[str]) -> set[str]:
    return {n for n in names if not n.startswith("_") or n in ("__version__", "__init__")}


def test_stub_declares_every_export():
    top, members = _stub_names()
    exported = _public(dir(_core))
    top = _public(sorted(top))  # private test hooks may be declared too
    assert exported == top, f"missing in _core.pyi: {exported - top}; not in _core: {top - exported}"
    for cls, declared in members.items():
        if cls == "GGUFError":
            continue
        klass = getattr(_core, cls)
        real = _public(list(vars(klass)))
        if not (klass.__init__.__doc__ or "").startswith("__init__("):  # no constructor bound
            real.discard("__init__")
        declared = {d for d in declared if d != "__eq__"}
        real.discard("__eq__")
        assert real == declared, f"{cls}: missing in the stub {real - declared}; not in _core {declared - real}"


def test_mypy_finds_no_error(tmp_path):
    """mypy over a copy of the installed package (the sources' layout differs: convert/ ships
    as looplm.convert), with the project's settings."""
    pkg = Path(looplm.__file__).parent
    project = Path(__file__).parents[1] / "pyproject.toml"  # its [tool.mypy] settings
    config = ["--config-file", str(project)] if project.exists() else []
    shutil.copytree(pkg, tmp_path / "looplm", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / ".mypy_cache"), *config, "-p", "looplm"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
