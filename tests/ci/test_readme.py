"""The README's commands: one way to call the CLI, and every command line it shows parses.

After `make setup` the CLI is `.venv/bin/mlship`; every command line in the README is written
that way, and each subcommand and flag it uses exists in `cli/main.py`'s parser.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CLI = ".venv/bin/mlship"
# `mlship SUB` in code: a command (prefixed) or the name of one (bare, in prose)
CALL = re.compile(r"(?P<prefix>\S*?)(?<![\w:/@.-])mlship (?P<rest>[a-z][^`\n]*)")
STOP = {"|", "||", "&&", ";", ")", "&"}


def _code() -> tuple[list[str], list[str]]:
    """The README's fenced code lines (continuations joined) and its inline code spans."""
    fenced: list[str] = []
    prose: list[str] = []
    inside = False
    for line in README.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        (fenced if inside else prose).append(line)
    joined = "\n".join(fenced).replace("\\\n", " ")
    spans = re.findall(r"`([^`\n]+)`", "\n".join(prose))
    return joined.splitlines(), spans


FENCED, SPANS = _code()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _command_lines() -> list[str]:
    """Everything after each `.venv/bin/mlship` in fenced lines and inline spans."""
    found = []
    for text in [*FENCED, *SPANS]:
        start = 0
        while (at := text.find(CLI + " ", start)) != -1:
            found.append(text[at + len(CLI) + 1 :])
            start = at + 1
    return found


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word in STOP:
            break
        words.append(word)
    return words


def test_readme_calls_the_cli_one_way() -> None:
    assert "uv run mlship" not in README
    assert "python -m cli" not in README
    for line in FENCED:
        for call in CALL.finditer(line):
            if call["prefix"].endswith("`"):
                continue  # a command's name in a listing (the layout tree), not a call
            assert call["prefix"].endswith(".venv/bin/"), f"README code line: {line!r}"
    for span in SPANS:
        match = CALL.match(span)
        if match is not None and match["prefix"]:
            assert match["prefix"] == ".venv/bin/", f"README inline code: {span!r}"


def test_every_readme_command_line_exists_in_the_parser() -> None:
    commands = _command_lines()
    assert len(commands) >= 15, commands  # the README shows the CLI throughout
    subparsers = _subparsers()
    for command in commands:
        words = _words(command)
        assert words, command
        sub = words[0]
        assert sub in subparsers, f"{CLI} {command}: no subcommand {sub!r}"
        options = subparsers[sub]._option_string_actions
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", " ".join(words[1:])):
            assert flag in options, f"{CLI} {command}: {sub} has no option {flag}"


def test_readme_command_names_in_prose_exist() -> None:
    subparsers = _subparsers()
    for span in SPANS:
        match = CALL.match(span)
        if match is not None:
            sub = match["rest"].split()[0]
            assert sub in subparsers, f"README names `mlship {sub}`, which does not exist"


@pytest.mark.parametrize(
    "line",
    [
        ".venv/bin/mlship train --set model.type=ridge --set data.builtin=diabetes "
        "--set data.path=data/diabetes.csv --target target",
        ".venv/bin/mlship prepare --dataset penguins",
        ".venv/bin/mlship train --params examples/penguins/params.yaml",
        ".venv/bin/mlship promote 3",
    ],
)
def test_readme_shows_the_documented_commands(line: str) -> None:
    assert line in README.replace("\n", " ")
    build_parser().parse_args(shlex.split(line)[1:])  # parses as it is


def test_the_cli_the_readme_names_is_installed_by_setup() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlship"] == "cli.main:main"
    # the environment running the tests is the one `make setup` builds
    assert (Path(sys.executable).parent / "mlship").is_file()
