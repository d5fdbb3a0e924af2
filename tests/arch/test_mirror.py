"""tests/ mirrors segcli/: every module with logic has a test file of its name at the mirrored path.

``segcli/a/b.py`` → ``tests/a/test_b.py``; a package's ``__init__.py`` with logic → ``tests/<package path>/
test_<package>.py`` (``segcli/viz/__init__.py`` → ``tests/viz/test_viz.py``); a top-level module
``segcli/errors.py`` → ``tests/test_errors.py``. "Logic" is a function or class other than a lazy module's
``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "segcli"
TESTS = SRC.parent / "tests"


def has_logic(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(n, defs) and n.name not in ("__getattr__", "__dir__") for n in ast.walk(tree))


def mirrored(path: Path) -> Path:
    rel = path.relative_to(SRC)
    if path.name == "__init__.py":
        return TESTS / rel.parent / f"test_{rel.parent.name}.py"
    return TESTS / rel.parent / f"test_{path.stem}.py"


def missing() -> list[str]:
    modules = [p for p in sorted(SRC.rglob("*.py")) if p.name != "__main__.py" and has_logic(p)]
    return [
        f"{m.relative_to(SRC.parent)} -> {mirrored(m).relative_to(SRC.parent)}"
        for m in modules
        if not mirrored(m).is_file()
    ]


def test_every_module_with_logic_has_its_mirrored_test_file() -> None:
    assert missing() == []


def _mirrors(test: str, expected: set[str]) -> bool:
    """``test`` is a mirrored file, or one aspect of one (``tests/train/test_trainer_resume.py`` tests
    ``segcli/train/trainer.py``'s resume, next to ``tests/train/test_trainer.py``)."""
    folder, _, name = test.rpartition("/")
    return test in expected or any(
        e.rpartition("/")[0] == folder and name.startswith(e.rpartition("/")[2].removesuffix(".py") + "_")
        for e in expected
    )


def test_every_test_file_mirrors_a_module_or_is_a_named_exception() -> None:
    """A test file whose module went away (or was renamed) is noticed; cross-cutting tests are listed here."""
    cross_cutting = {
        "tests/arch/test_architecture.py",  # the import rules of the whole package
        "tests/arch/test_mirror.py",  # this file
        "tests/arch/test_function_size.py",  # parameter and length limits over the whole package
        "tests/test_python_docs.py",  # docs/python.md's examples, run as written
    }
    expected = {
        mirrored(p).relative_to(SRC.parent).as_posix()
        for p in SRC.rglob("*.py")
        if p.name != "__main__.py" and has_logic(p)
    }
    strays = [
        p.relative_to(SRC.parent).as_posix()
        for p in sorted(TESTS.rglob("test_*.py"))
        if p.relative_to(SRC.parent).as_posix() not in cross_cutting
        and not _mirrors(p.relative_to(SRC.parent).as_posix(), expected)
    ]
    assert strays == []
