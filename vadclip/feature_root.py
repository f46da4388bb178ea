"""Feature lists as downloaded: finding listed feature files under a local features root.

The official lists name files by their authors' absolute paths
(``/home/xbgydx/Desktop/XDTestClipFeatures/<video>__0.npy``). With ``--features-root DIR`` a listed
path that does not exist is looked up by its file name under DIR, which is indexed recursively
once, the first time a lookup needs it:

    root = FeatureRoot("/data/xd_features")
    report = resolve_listed_paths(rows, root, base=csv_folder)          # VadCLIP CSV paths
    report = resolve_listed_paths(rows, root, base=root.path, suffix=".npy")   # AnomalyCLIP lists
    if report.problems:
        raise DataError(*report.error_parts())        # first 10 problems, the count, the likely fix
    paths = report.paths

A name found several times under DIR is resolved by the listed path's trailing folders (the one
candidate that shares most of them); when that does not decide, it is reported as ambiguous.
Nothing here is global: the index lives on the `FeatureRoot` object, so build one per command.
A server that confines paths (the app) passes ``allow_absolute=False`` (a listed absolute path is
never opened, only its file name searched) and still confines the paths it gets back
(`paths.confine`), since a file under DIR may be a link to elsewhere.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath, PureWindowsPath

MAX_SHOWN = 10          # problems listed before "... and N more"


class Found(str, Enum):
    """How a listed path was resolved."""

    AS_LISTED = "as listed"
    BY_NAME = "by file name"
    AMBIGUOUS = "ambiguous"
    MISSING = "missing"


def listed_parts(text: str) -> tuple[str, ...]:
    """Path components of a listed path written with `/` or `\\` (lists made on Windows)."""
    if "\\" in text and "/" not in text:
        return tuple(p.rstrip("\\") for p in PureWindowsPath(text).parts if p not in ("\\", "/"))
    return tuple(p for p in PurePosixPath(text).parts if p != "/")


def _walk_files(root: Path, suffix: str) -> Iterator[Path]:
    """Every file under `root` ending in `suffix`, following folder links once (no cycles)."""
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            continue          # unreadable folder: its files are simply not found
        for entry in entries:
            try:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.name.endswith(suffix) and entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue


@dataclass(frozen=True)
class FeatureIndex:
    """File name -> every path under `root` with that name (files ending in `suffix` only)."""

    root: Path
    suffix: str
    by_name: dict[str, tuple[Path, ...]]

    @classmethod
    def build(cls, root: str | os.PathLike, suffix: str = ".npy") -> "FeatureIndex":
        """Walk `root` recursively once."""
        root = Path(root)
        names: dict[str, list[Path]] = {}
        for path in _walk_files(root, suffix):
            names.setdefault(path.name, []).append(path)
        return cls(root=root, suffix=suffix, by_name={k: tuple(sorted(v)) for k, v in names.items()})

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_name.values())

    def candidates(self, name: str) -> tuple[Path, ...]:
        return self.by_name.get(name, ())


class FeatureRoot:
    """A local folder holding downloaded features; indexes itself on first use (once)."""

    def __init__(self, path: str | os.PathLike, suffix: str = ".npy"):
        self.path = Path(path).expanduser()
        self.suffix = suffix
        self._index: FeatureIndex | None = None
        if not self.path.is_dir():
            raise ValueError(f"features root {os.fspath(path)}: not a folder")

    def __repr__(self) -> str:
        return f"FeatureRoot({str(self.path)!r}, indexed={self.indexed})"

    @property
    def index(self) -> FeatureIndex:
        if self._index is None:
            self._index = FeatureIndex.build(self.path, self.suffix)
        return self._index

    @property
    def indexed(self) -> bool:
        """True once the folder has been walked."""
        return self._index is not None


@dataclass(frozen=True)
class Resolution:
    """One listed path and what it resolved to (`path` is None unless found)."""

    listed: str
    found: Found
    path: Path | None = None
    candidates: tuple[Path, ...] = ()
    where: str = ""             # e.g. "row 12", to locate the problem in the list

    @property
    def ok(self) -> bool:
        return self.path is not None

    def problem(self) -> str | None:
        """One line describing why the path could not be used, or None."""
        at = f"{self.where}: " if self.where else ""
        if self.found is Found.MISSING:
            return f"{at}{self.listed}: not found"
        if self.found is Found.AMBIGUOUS:
            shown = ", ".join(str(c) for c in self.candidates[:3])
            more = f" and {len(self.candidates) - 3} more" if len(self.candidates) > 3 else ""
            return f"{at}{self.listed}: {len(self.candidates)} files of that name under the features root ({shown}{more})"
        return None


def _with_suffix(text: str, suffix: str) -> str:
    return text if not suffix or text.endswith(suffix) else text + suffix


def _best_by_folders(parts: tuple[str, ...], candidates: tuple[Path, ...]) -> Path | None:
    """The one candidate sharing the most trailing folder names with the listed path, if unique."""
    def shared(candidate: Path) -> int:
        n = 0
        for listed, have in zip(reversed(parts[:-1]), reversed(candidate.parent.parts)):
            if listed != have:
                break
            n += 1
        return n

    scores = [shared(c) for c in candidates]
    best = max(scores)
    return candidates[scores.index(best)] if best > 0 and scores.count(best) == 1 else None


def resolve_listed_path(listed: str, root: FeatureRoot | None = None, base: str | os.PathLike | None = None,
                        suffix: str = "", where: str = "", allow_absolute: bool = True) -> Resolution:
    """Resolve one listed path: as listed (relative to `base`) if that file exists, else by name under `root`.

    `suffix` is appended when missing (AnomalyCLIP lists name ``<PATH>`` for ``<root>/<PATH>.npy``).
    With `allow_absolute=False` (a server confining paths) an absolute listed path is never looked
    at; only its file name is searched under `root`.
    """
    text = _with_suffix(listed.strip(), suffix)
    direct = Path(text) if not allow_absolute else Path(text).expanduser()
    absolute = direct.is_absolute() or bool(PureWindowsPath(text).drive)
    if not direct.is_absolute() and base is not None:
        direct = Path(base) / direct
    if (allow_absolute or not absolute) and direct.is_file():
        return Resolution(listed, Found.AS_LISTED, direct, where=where)
    if root is None:
        return Resolution(listed, Found.MISSING, where=where)
    parts = listed_parts(text)
    candidates = root.index.candidates(parts[-1]) if parts else ()
    if len(candidates) == 1:
        return Resolution(listed, Found.BY_NAME, candidates[0], candidates, where)
    if not candidates:
        return Resolution(listed, Found.MISSING, where=where)
    best = _best_by_folders(parts, candidates)
    if best is not None:
        return Resolution(listed, Found.BY_NAME, best, candidates, where)
    return Resolution(listed, Found.AMBIGUOUS, None, candidates, where)


@dataclass
class ResolutionReport:
    """Every listed path's resolution, with the summary a reader raises when some failed."""

    resolutions: list[Resolution]
    root: FeatureRoot | None = None

    @property
    def paths(self) -> list[Path | None]:
        return [r.path for r in self.resolutions]

    @property
    def problems(self) -> list[str]:
        return [p for r in self.resolutions if (p := r.problem()) is not None]

    def count(self, found: Found) -> int:
        return sum(r.found is found for r in self.resolutions)

    def likely_fix(self) -> str | None:
        """One sentence: what the user most probably has to do (None when nothing failed)."""
        return likely_fix(self.resolutions, self.root)

    def error_parts(self, what: str = "feature list") -> tuple[str, list[str]]:
        """(summary line, problem lines): the first `MAX_SHOWN` problems, a count of the rest, the fix.

        Shaped for ``DataError(summary, problems)`` and the app's error box alike.
        """
        problems = self.problems
        missing, ambiguous = self.count(Found.MISSING), self.count(Found.AMBIGUOUS)
        counts = [f"{n} listed file{'s' if n != 1 else ''} {label}" for n, label in
                  ((missing, "not found"), (ambiguous, "ambiguous")) if n]
        summary = f"{what}: " + "; ".join(counts) + f" (of {len(self.resolutions)})"
        lines = problems[:MAX_SHOWN]
        if len(problems) > MAX_SHOWN:
            lines.append(f"... and {len(problems) - MAX_SHOWN} more")
        fix = self.likely_fix()
        if fix:
            lines.append(f"likely fix: {fix}")
        return summary, lines

    def summary_text(self, what: str = "feature list") -> str:
        """`error_parts` as one printable block ("" when every path resolved)."""
        if not self.problems:
            return ""
        summary, lines = self.error_parts(what)
        return "\n".join([summary, *(f"  - {line}" for line in lines)])


def looks_foreign(listed: str) -> bool:
    """An absolute path whose folder does not exist on this machine (another machine's path)."""
    if os.name != "nt" and PureWindowsPath(listed).drive:
        return True                                        # C:\... read on a POSIX machine
    path = Path(listed)
    return path.is_absolute() and not path.parent.is_dir()


def _common_foreign_folder(listed: Sequence[str]) -> str | None:
    """The deepest folder shared by the foreign paths (for the message), if any."""
    parents = [str(PurePosixPath(*listed_parts(p)[:-1])) for p in listed]
    if not parents:
        return None
    common = os.path.commonpath(["/" + p.lstrip("/") for p in parents]) if all(parents) else ""
    return common if common not in ("", "/") else None


def likely_fix(resolutions: Sequence[Resolution], root: FeatureRoot | None) -> str | None:
    """The likely fix for the failed resolutions (see `ResolutionReport.error_parts`)."""
    missing = [r for r in resolutions if r.found is Found.MISSING]
    ambiguous = [r for r in resolutions if r.found is Found.AMBIGUOUS]
    fixes = []
    if missing:
        n = len(missing)
        files = f"{n} listed file{'s' if n != 1 else ''}"
        foreign = [r.listed for r in missing if looks_foreign(r.listed)]
        if root is None and foreign and len(foreign) * 2 >= n:
            folder = _common_foreign_folder(foreign)
            where = f" (folder {folder} does not exist here)" if folder else ""
            fixes.append(f"{files} not found; they look like another machine's paths{where}: pass "
                         f"--features-root DIR, the folder holding the downloaded features; each file is "
                         f"then found by its name under DIR")
        elif root is None:
            fixes.append(f"{files} not found: check the paths (relative paths are read from the list's "
                         f"folder), or pass --features-root DIR to find the files by name under DIR")
        else:
            fixes.append(f"{files} not found, not even by name under {root.path} (searched recursively): "
                         f"is that the folder holding these features, and is the download complete?")
    if ambiguous:
        n = len(ambiguous)
        fixes.append(f"{n} file name{'s' if n != 1 else ''} occur{'s' if n == 1 else ''} more than once "
                     f"under {root.path if root else 'the features root'}: pass a narrower --features-root "
                     f"(e.g. the test features' folder), or list those files by their full paths")
    return "; ".join(fixes) or None


def resolve_listed_paths(listed: Sequence[str], root: FeatureRoot | str | os.PathLike | None = None,
                         base: str | os.PathLike | None = None, suffix: str = "",
                         wheres: Sequence[str] | None = None, allow_absolute: bool = True) -> ResolutionReport:
    """Resolve every listed path (see `resolve_listed_path`); the root is indexed at most once.

    `wheres` labels each path in problem lines (a CSV reader passes ``"row <line number>"``); by default
    "entry <i+1>" (the i-th listed path).
    """
    if root is not None and not isinstance(root, FeatureRoot):
        root = FeatureRoot(root)
    labels = wheres if wheres is not None else [f"entry {i + 1}" for i in range(len(listed))]
    if len(labels) != len(listed):
        raise ValueError(f"{len(listed)} paths but {len(labels)} row labels")
    resolutions = [resolve_listed_path(p, root, base, suffix, w, allow_absolute) for p, w in zip(listed, labels)]
    return ResolutionReport(resolutions, root)
