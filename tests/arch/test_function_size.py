"""Function sizes, read from the source: no function takes more than 8 parameters (options that travel together
are one object: the prediction protocol, a command's output or export options), and the entry points of
inference and conversion stay short enough to read as a list of named steps."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "segcli"
MAX_PARAMETERS = 8
MAX_LINES = 60  # from the signature to the last line
SHORT = {  # functions held to MAX_LINES
    "infer/evaluator.py:evaluate",
    "infer/predictor.py:predict",
    "infer/exporter.py:export_model",
    "convert/core.py:convert",
}

# Functions allowed more parameters, each with its reason (two families by rule, then one by one).
#   - a `seg` command (``*_cmd`` in cli/): typer reads one parameter per command-line option;
#   - a network's constructor in models/ (keyword-only after ``num_classes``): the model registry passes the
#     preset's ``model.*`` keys to it by name, one keyword each.
ALLOWED: dict[str, int] = {}


def _functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """(``path:Qualified.name``, node, is a method) for every function in segcli/."""

    def walk(node: ast.AST, prefix: str, in_class: bool) -> Iterator[tuple[str, ast.AST, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child, in_class
                yield from walk(child, f"{prefix}{child.name}.", False)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.", True)
            else:
                yield from walk(child, prefix, in_class)

    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        for name, node, method in walk(ast.parse(path.read_text(encoding="utf-8")), "", False):
            yield f"{where}:{name}", node, method  # type: ignore[misc]


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> int:
    """What a caller can pass: every parameter, ``*args`` and ``**kwargs`` one each, a method's self/cls not."""
    a = node.args
    n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return n - 1 if method and (a.posonlyargs or a.args) else n


def _by_rule(where: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    if where.startswith("cli/") and node.name.endswith("_cmd"):
        return True
    args = node.args
    return (
        where.startswith("models/")
        and node.name == "__init__"
        and [a.arg for a in args.args] == ["self", "num_classes"]
        and bool(args.kwonlyargs)
    )


def test_no_function_takes_more_than_8_parameters() -> None:
    found = {}
    for where, node, method in _functions():
        n = parameters(node, method)
        if n > MAX_PARAMETERS and not _by_rule(where, node) and n > ALLOWED.get(where, 0):
            found[where] = n
    assert found == {}, "group the options into a small frozen dataclass (see segcli/infer/protocol.py)"


def test_the_allowed_ones_still_exist() -> None:
    """An allow-list entry whose function went away or shrank is removed, so the list stays true."""
    sizes = {where: parameters(node, method) for where, node, method in _functions()}
    stale = {where for where in ALLOWED if sizes.get(where, 0) <= MAX_PARAMETERS}
    assert stale == set()


def test_entry_points_are_short() -> None:
    lines = {where: node.end_lineno - node.lineno + 1 for where, node, _ in _functions() if where in SHORT}
    assert set(lines) == SHORT
    assert {w: n for w, n in lines.items() if n > MAX_LINES} == {}
