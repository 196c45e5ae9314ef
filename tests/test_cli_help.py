"""`uplr --help` and every subcommand's help: a description, help on every option, no reST markup."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from uplr.cli import build_parser

REST = re.compile(r"``|:(class|func|mod|meth|data|attr):`")


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"uplr {' '.join((*path, name))} has no one-line help in its parent's list"
                yield from _parsers(sub, (*path, name))


def test_every_command_has_a_description_and_every_option_help():
    seen = []
    for path, parser in _parsers(build_parser()):
        where = "uplr " + " ".join(path)
        assert parser.description and len(parser.description) > 10, f"{where}: no description"
        assert not REST.search(parser.description), f"{where}: reST markup in {parser.description!r}"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{where}: {name} has no help"
            assert not REST.search(action.help), f"{where}: {name}: reST markup in its help"
        seen.append(path)
    # the walk reached the nested `data check` and every stage command
    assert {("train",), ("evaluate",), ("data", "check"), ("tables",)} <= set(seen)


def test_top_level_help_is_plain_text():
    r = subprocess.run([sys.executable, "-m", "uplr.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert not REST.search(r.stdout), r.stdout
    assert "Reproduction suite for UPLR" in r.stdout
    train = subprocess.run([sys.executable, "-m", "uplr.cli", "train", "--help"], capture_output=True, text=True)
    squashed = " ".join(train.stdout.split())
    assert "--seed SEED random seed of the run" in squashed
    assert "-v, --verbose log debug messages" in squashed
