"""Help and documentation of the whole command line: every command's help ends with examples, and every `seg`
line of the README names a command and flags that exist."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from segcli.cli.app import app

README = Path(__file__).resolve().parents[2] / "README.md"


# typer runs on its own copy of click (typer >= 0.29) or the click package: commands are duck-typed here.
def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def _commands(group: Any, ctx: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if _is_group(command):
            yield from _commands(command, command.context_class(command, parent=ctx, info_name=name), (*path, name))
        elif command is not None:
            yield (*path, name)


def _root() -> tuple[Any, Any]:
    root = typer.main.get_command(app)
    return root, root.context_class(root, info_name="seg")


COMMANDS = sorted(_commands(*_root()))


def test_every_command_is_listed() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"train", "eval", "infer", "prepare folder", "prepare shapes", "presets list", "benchmark"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_ends_with_examples(command: tuple[str, ...]) -> None:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = res.output
    assert "Examples:" in text, f"seg {' '.join(command)} --help has no examples"
    after = text[text.rindex("Examples:") :]
    lines = [ln.strip(" │") for ln in after.splitlines()]
    shown = [ln for ln in lines if ln.startswith(f"seg {' '.join(command)}")]
    assert len(shown) >= 2, f"seg {' '.join(command)}: fewer than 2 examples: {lines}"


def _readme_seg_lines() -> list[str]:
    """Every `seg ...` command line in the README's fenced shell blocks (comments and prompts removed)."""
    lines, fenced = [], False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = line.strip() in ("```bash", "```text") if not fenced else False
            continue
        text = line.strip().removeprefix("$ ")
        if fenced and text.startswith("seg "):
            text = text.split("  #")[0].split(" #")[0].split(" > ")[0].split(" | ")[0]
            lines.append(text.strip().removesuffix("\\").strip())  # a continued line: its first part
    return lines


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The click command a README line calls and the words after its name."""
    command, ctx = _root()
    i = 0
    while _is_group(command):
        sub = command.get_command(ctx, words[i])
        assert sub is not None, f"no command `seg {' '.join(words[: i + 1])}`"
        ctx, command, i = sub.context_class(sub, parent=ctx, info_name=words[i]), sub, i + 1
    return command, words[i:]


def test_readme_commands_name_existing_commands_and_flags() -> None:
    seg_lines = _readme_seg_lines()
    assert any(line.startswith("seg train finetune --data") for line in seg_lines)  # the own-data path
    for line in seg_lines:
        command, rest = _resolve(shlex.split(line)[1:])
        flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for word in rest:
            flag = word.split("=", 1)[0]
            if re.fullmatch(r"--?[a-zA-Z][\w-]*", flag):
                assert flag in flags, f"README: `{line}`: seg {command.name} has no {flag}"


def test_readme_own_data_path_is_six_commands_from_prepare_to_infer() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Your own images and masks") :]
    block = section[section.index("```bash") : section.index("```", section.index("```bash") + 3)]
    steps = [ln.split()[1] for ln in block.splitlines() if ln.startswith("seg ")]
    assert steps == ["prepare", "check", "presets", "train", "eval", "infer"]
