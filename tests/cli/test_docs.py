"""Every command is documented: in --help and in the README (STYLE.md §11)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from appliance.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*prefix, name), helps.get(name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_command_has_help_and_is_in_the_readme():
    commands = list(_commands(build_parser()))
    assert commands, "no commands found"
    for path, help_text, sub in commands:
        name = " ".join(path)
        assert help_text and help_text.strip(), f"appliance {name} has no help"
        has_children = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        if not has_children:
            assert re.search(rf"`appliance {re.escape(name)}\b", README), \
                f"appliance {name} is not documented in README.md"


def test_every_option_has_help():
    for path, _, sub in _commands(build_parser()):
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"appliance {' '.join(path)} {action.option_strings[0]}"


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```")[1]
    lines = [ln.split("#")[0].strip() for ln in first_block.splitlines()[1:] if ln.strip()]
    assert lines == ["make run", "make test"]
