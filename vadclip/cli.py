"""`python -m vadclip SUBCOMMAND ...`: one command line over the library.

Each subcommand lives in the module that holds its library function and registers itself with a
`register(subparsers)` function that sets `func` (args -> exit code). Errors meant for the user
(bad files, bad options) are printed as one line, without a traceback, with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define subcommands, in the order they are listed by --help.
COMMAND_MODULES = ("vadclip.evaluate", "vadclip.extract", "vadclip.scoring", "vadclip.train",)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vadclip", description="VadCLIP video anomaly detection.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from . import __version__
    return f"vadclip {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"vadclip {args.command}: error: {e}", file=sys.stderr)
        return 2
