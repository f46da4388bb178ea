"""Confining user-influenced paths to configured root folders.

A path that a user can influence (a feature list chosen in the app, a feature file named inside
that list, a models folder entry, an export name) must stay inside its root: `..` components,
absolute paths elsewhere and symbolic links that lead out of the root are refused with
`PathEscapeError`, a `ValueError` whose message names the path but never the root's contents.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


class PathEscapeError(UserError):
    """A path that resolves outside the folder it is confined to."""


def confine(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """`path` resolved (symlinks followed) inside `root`; relative paths are taken from `root`.

    Raises `PathEscapeError` when the resolved path is not `root` itself or below it. The path
    need not exist (a file about to be written is checked the same way).
    """
    root_resolved = Path(root).resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root_resolved / candidate
    resolved = candidate.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise PathEscapeError(f"{os.fspath(path)!r} is outside the allowed folder")
    return resolved


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when `confine(path, root)` would succeed."""
    try:
        confine(path, root)
    except PathEscapeError:
        return False
    return True

