"""The package's import rules (docs/architecture.md): each package imports only the ones below it, and the
CLI reaches train, infer and report through their public names. Read from the source, so a new import against
the rules fails here with the file and line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "segcli"
DOC = SRC.parent / "docs" / "architecture.md"

FOUNDATION = "(foundation)"  # the top-level modules: errors, registry, io_utils, extras, options, metrics, lazy
# What each package may import besides itself and the foundation (the layers of docs/architecture.md).
ALLOWED: dict[str, set[str]] = {
    FOUNDATION: set(),
    "models": set(),
    "losses": set(),
    "viz": set(),
    "config": {"models", "losses"},
    "data": {"config"},
    "core": {"config", "data", "models", "losses"},
    "convert": {"config", "data", "models", "losses", "core"},
    "infer": {"config", "data", "models", "losses", "core", "viz"},
    "report": {"config", "data", "models", "losses", "core", "viz", "infer"},
    "train": {"config", "data", "models", "losses", "core", "viz", "infer", "report", "convert"},
    "cli": {"config", "data", "models", "losses", "core", "viz", "infer", "report", "train", "convert"},
}
PUBLIC_ONLY = {"train", "infer", "report"}  # the CLI imports these packages' public names, not their modules


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or not (SRC / parts[1]).is_dir():
        return FOUNDATION
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every segcli import in the file, lazy ones inside functions included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segcli":
            if node.module == "segcli":
                out += [(node.lineno, f"segcli.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "segcli"]
    return out


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


def violations() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        here = _package(_module_of(path))
        for line, target in _imports(path):
            there = _package(target)
            if there in (here, FOUNDATION) or here == FOUNDATION and there == "cli" and path.name == "__main__.py":
                continue
            if path == SRC / "__init__.py":  # the Python API's names re-exported, imported on first use
                continue
            where = f"{path.relative_to(SRC.parent)}:{line}"
            if there not in ALLOWED.get(here, set()):
                found.append(f"{where}: {here} imports {target} ({there} is not below {here})")
            elif here == "cli" and there in PUBLIC_ONLY and target != f"segcli.{there}":
                found.append(f"{where}: cli imports {target}; use the public names of segcli.{there}")
    return found


def test_every_package_is_in_the_rules() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(ALLOWED) - {FOUNDATION}, "add the new package to ALLOWED and docs/architecture.md"


def test_no_import_against_the_layers() -> None:
    assert violations() == []


def test_the_rules_detect_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: a models module importing the trainer is reported."""
    bad = SRC / "models" / "_arch_probe_tmp.py"
    bad.write_text("from segcli.train.trainer import train\n", encoding="utf-8")
    try:
        assert any("_arch_probe_tmp.py:1: models imports segcli.train.trainer" in v for v in violations())
    finally:
        bad.unlink()


def test_no_import_cycle_between_modules() -> None:
    """Module-level imports only (lazy ones inside functions cannot loop at import time)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segcli"):
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("segcli")}
        graph[_module_of(path)] = deps
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(d) :], d]) if d in stack else d)
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_doc_states_the_same_rules() -> None:
    """docs/architecture.md's table lists each package with the packages it may import, as ALLOWED does."""
    rows = re.findall(r"^\| `([a-z_]+)/` \| ([^|]*) \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    doc = {name: set(re.findall(r"`([a-z_]+)`", deps)) for name, deps in rows}
    assert doc == {k: v for k, v in ALLOWED.items() if k != FOUNDATION}
