"""`vadclip SUBCOMMAND ...` / `python -m vadclip SUBCOMMAND ...`: the command line over the library.

One module per subcommand (`score`, `extract`, `train`, `eval`), each with `register(subparsers)`
(its options) and `run(args) -> exit code` (calls the library). Errors meant for the user
(`vadclip.errors.UserError`) are printed as one line, without a traceback, with exit code 2;
any other exception is a bug and keeps its traceback.
"""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
