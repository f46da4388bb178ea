"""The official AnomalyCLIP on-disk formats: video lists, temporal annotations, per-frame features.

- Video lists (``Anomaly_Train_Normal.txt``, ``Anomaly_Train_Abnormal.txt``, ``Anomaly_Test.txt``):
  one video per line, ``PATH START_FRAME END_FRAME LABEL`` (whitespace-separated, END inclusive,
  LABEL = index in the preset's sorted class list). A line with more fields lists several labels;
  the official training cannot batch those, so they are refused here.
- Temporal test annotation: ``NAME.ext CLASS s1 e1 [s2 e2 ...]``, inclusive frame ranges,
  ``-1 -1`` for none; the key is the stem of NAME.
- Features: one float32 ``[F, 512]`` ``.npy`` per video at ``<features_root>/<PATH>.npy``, row i =
  frame ``START_FRAME + i``.

Every reader collects all the problems of its input and raises one `vadclip.formats.DataError`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..feature_root import FeatureRoot, Found, resolve_listed_paths
from ..formats import DataError, FeatureListEntry, load_features, check_feature_files

Ranges = tuple[tuple[int, int], ...]     # inclusive (first, last) frame ranges


@dataclass(frozen=True)
class VideoRecord:
    """One line of a video list."""

    path: str            # PATH as written in the list (no ``.npy``)
    start_frame: int
    end_frame: int       # inclusive
    label: int           # class index
    feature_file: Path   # ``<features_root>/<PATH>.npy`` (resolved)

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame + 1

    @property
    def name(self) -> str:
        """The key of the video in the temporal annotation (the stem of PATH)."""
        return Path(self.path).name


def _read_lines(path: str | os.PathLike, what: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{what}: cannot read it ({err})") from None


def feature_file(features_root: str | os.PathLike, list_path: str) -> Path:
    """``<features_root>/<list_path>.npy``; refuses paths that leave `features_root`."""
    root = Path(features_root).resolve()
    if Path(list_path).is_absolute() or ".." in Path(list_path).parts:
        raise DataError(f"{list_path}: give a path relative to the features root (no absolute path, no '..')")
    resolved = (root / f"{list_path}.npy").resolve()
    if not resolved.is_relative_to(root):
        raise DataError(f"{list_path}: resolves to {resolved}, outside the features root {root}")
    return resolved


def read_video_list(path: str | os.PathLike, features_root: str | os.PathLike, num_classes: int,
                    normal_id: int, kind: str = "test") -> list[VideoRecord]:
    """Read an official ``PATH START END LABEL`` list.

    `kind` is ``"normal"`` (every label must be `normal_id`), ``"abnormal"`` (none may be) or
    ``"test"`` (any class). Every problem is reported in one `DataError`.
    """
    records, problems = parse_video_list(path, features_root, num_classes, normal_id, kind)
    if problems:
        raise DataError(f"{kind} list {path}: {len(problems)} problem(s)", problems)
    return records


def parse_video_list(path: str | os.PathLike, features_root: str | os.PathLike, num_classes: int,
                     normal_id: int, kind: str = "test") -> tuple[list[VideoRecord], list[str]]:
    """`read_video_list` without raising on bad lines: (the good lines' records, the problems).
    An unreadable file still raises `DataError`."""
    if kind not in ("normal", "abnormal", "test"):
        raise ValueError(f"kind must be 'normal', 'abnormal' or 'test', got {kind!r}")
    what = f"{kind} list {path}"
    records: list[VideoRecord] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path, what), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) < 4:
            problems.append(f"{where}: expected 'PATH START_FRAME END_FRAME LABEL', got {line.strip()!r}")
            continue
        if len(fields) > 4:
            problems.append(f"{where} ({fields[0]}): {len(fields) - 3} labels; rows with a list of labels "
                            f"cannot be batched by the official training (give one LABEL per video)")
            continue
        try:
            start, end, label = (int(f) for f in fields[1:])
        except ValueError:
            problems.append(f"{where} ({fields[0]}): START_FRAME, END_FRAME and LABEL must be integers, "
                            f"got {' '.join(fields[1:])!r}")
            continue
        line_problems = []
        if start < 0 or end < start:
            line_problems.append(f"frames {start}..{end} are not a range (need 0 <= START <= END, END inclusive)")
        if not 0 <= label < num_classes:
            line_problems.append(f"label {label} is not a class index 0..{num_classes - 1}")
        elif kind == "normal" and label != normal_id:
            line_problems.append(f"label {label} in the normal list (normal is {normal_id})")
        elif kind == "abnormal" and label == normal_id:
            line_problems.append(f"label {label} (normal) in the abnormal list")
        try:
            file = feature_file(features_root, fields[0])
        except DataError as err:
            line_problems.append(str(err))
        if fields[0] in seen:
            line_problems.append(f"listed twice (first on line {seen[fields[0]]})")
        seen.setdefault(fields[0], number)
        if line_problems:
            problems.extend(f"{where} ({fields[0]}): {p}" for p in line_problems)
        else:
            records.append(VideoRecord(fields[0], start, end, label, file))
    if not records and not problems:
        problems.append("the list has no videos")
    records, not_found = find_by_name(records, features_root)
    return records, problems + not_found


# --------------------------------------------------------------------------- lists as downloaded (issue 16)

def find_by_name(records: list[VideoRecord], features_root: str | os.PathLike) -> tuple[list[VideoRecord], list[str]]:
    """Records whose ``<features_root>/<PATH>.npy`` is missing, looked up by file name under the root
    (`vadclip.feature_root`: recursive index, ambiguous names resolved by the listed folders).

    Returns (the records, those found by name pointing at their file; the problems): a name found
    more than once is left out and reported; a name found nowhere keeps its listed path, so the
    feature-file check reports it with the others (`formats.check_feature_files`: the first 10,
    the count, the likely fix). A file found by name must lie inside the root (no link out).
    """
    missing = [i for i, r in enumerate(records) if not r.feature_file.is_file()]
    root = Path(features_root)
    if not missing or not root.is_dir():
        return records, []
    report = resolve_listed_paths([records[i].path for i in missing], FeatureRoot(root), base=root, suffix=".npy",
                                  wheres=[""] * len(missing))
    found: list[VideoRecord | None] = list(records)
    problems = []
    for i, resolution in zip(missing, report.resolutions):
        if resolution.found is Found.AMBIGUOUS:
            found[i] = None
            problems.append(resolution.problem())
        elif resolution.path is not None:
            if resolution.path.resolve().is_relative_to(root.resolve()):
                found[i] = replace(records[i], feature_file=resolution.path.resolve())
            else:
                found[i] = None
                problems.append(f"{records[i].path}: found as {resolution.path}, which resolves outside {root}")
    if problems:
        problems.append(f"likely fix: {report.likely_fix()}" if report.count(Found.AMBIGUOUS) else "")
    return [r for r in found if r is not None], [p for p in problems if p]


def read_temporal_annotations(path: str | os.PathLike) -> dict[str, Ranges]:
    """Read ``NAME.ext CLASS s1 e1 [s2 e2 ...]`` lines -> {stem of NAME: inclusive ranges}.

    ``-1 -1`` pairs mean "no anomalous frames" and are dropped. All problems in one `DataError`.
    """
    what = f"temporal annotation {path}"
    annotations: dict[str, Ranges] = {}
    problems: list[str] = []
    for number, line in enumerate(_read_lines(path, what), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number} ({fields[0]})"
        numbers = fields[2:]
        if len(fields) < 4 or len(numbers) % 2:
            problems.append(f"{where}: expected 'NAME CLASS s1 e1 [s2 e2 ...]' (pairs of frames, -1 -1 for none)")
            continue
        try:
            values = [int(v) for v in numbers]
        except ValueError:
            problems.append(f"{where}: frame numbers must be integers, got {' '.join(numbers)!r}")
            continue
        pairs = [(s, e) for s, e in zip(values[::2], values[1::2]) if (s, e) != (-1, -1)]
        bad = [f"{s} {e}" for s, e in pairs if s < 0 or e < s]
        if bad:
            problems.append(f"{where}: not inclusive frame ranges: {', '.join(bad)}")
            continue
        name = Path(fields[0]).stem
        if name in annotations:
            problems.append(f"{where}: annotated twice")
            continue
        annotations[name] = tuple(pairs)
    if not annotations and not problems:
        problems.append("the file has no annotation lines")
    if problems:
        raise DataError(f"{what}: {len(problems)} problem(s)", problems)
    return annotations


def frame_labels(record: VideoRecord, ranges: Ranges, num_rows: int, normal_id: int) -> np.ndarray:
    """Class per feature row ``[num_rows]`` (int64): the video's label inside a range, else normal.

    Row i is frame ``i + START_FRAME``; ranges are inclusive (the official test dataset's rule).
    """
    frames = np.arange(num_rows) + record.start_frame
    inside = np.zeros(num_rows, dtype=bool)
    for first, last in ranges:
        inside |= (frames >= first) & (frames <= last)
    return np.where(inside, record.label, normal_id).astype(np.int64)


def feature_rows(records: Sequence[VideoRecord], dim: int = 512) -> list[int]:
    """Check every feature file (present, readable, float ``[F, dim]``, F >= 1, finite) and return F
    per record; one `DataError` names every bad file."""
    entries = [FeatureListEntry(path=r.feature_file, label=str(r.label), name=r.path, crop=None) for r in records]
    check_feature_files(entries, dim=dim)
    return [int(np.load(r.feature_file, mmap_mode="r").shape[0]) for r in records]


def missing_annotations(records: Sequence[VideoRecord], annotations: Mapping[str, Ranges],
                        normal_id: int) -> list[str]:
    """Problems of a test list against its annotation: abnormal videos without a line or a range."""
    problems = []
    for r in records:
        if r.label == normal_id:
            continue
        if r.name not in annotations:
            problems.append(f"{r.path}: abnormal video (label {r.label}) has no line in the temporal annotation")
        elif not annotations[r.name]:
            problems.append(f"{r.path}: abnormal video (label {r.label}) has no anomalous frame range")
    return problems


def load_video_features(record: VideoRecord) -> np.ndarray:
    """The whole ``[F, D]`` float32 feature array of one video."""
    return load_features(record.feature_file)
