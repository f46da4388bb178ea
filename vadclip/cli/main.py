"""The `vadclip` parser and entry point."""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from . import evaluate, extract, reproduce, score, train

# Subcommand modules, in the order --help lists them.
COMMANDS = (evaluate, extract, reproduce, score, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vadclip", description="Video anomaly detection on CLIP features.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def _version() -> str:
    from .. import __version__
    return f"vadclip {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as e:
        print(f"vadclip {args.command}: error: {e}", file=sys.stderr)
        return 2
