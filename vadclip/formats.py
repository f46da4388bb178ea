"""The official VadCLIP on-disk formats: feature lists, labels, test annotations, ground truth.

Feature lists are CSV files with the header ``path,label``, one row per feature file (the ten
crops ``<video>__0.npy`` .. ``<video>__9.npy`` of a video are ten rows). Each file holds one
CLIP feature per 16-frame snippet, ``[N, 512]``.

Labels: XD-Violence writes codes joined with ``-`` (``B1-B2-0``; ``0`` = none, ``A`` = normal),
UCF-Crime writes class folder names (``Normal``, ``Abuse``, ``RoadAccidents``, ...).

Test annotations come in three text formats, all read by `read_annotations`:

- ``xd_binary`` (XD ``annotations.txt``): ``name s1 e1 s2 e2 ...``;
- ``xd_multiclass`` (XD ``annotations_multiclasses.txt``): ``name c1 s1 e1 c2 s2 e2 ...``;
- ``ucf`` (UCF ``Temporal_Anomaly_Annotation.txt``): ``name class s1 e1 s2 e2``, ``-1`` for none.

Frames are counted from 0 and a segment covers ``[start, end)``: the official ground-truth scripts
set ``gt[start:end] = 1`` and the detection mAP uses ``range(start, end)``.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

from .constants import SNIPPET_FRAMES
from .errors import UserError
from .config import get_preset
from .feature_root import MAX_SHOWN, FeatureRoot, Found, Resolution, likely_fix, listed_parts, resolve_listed_paths

ANNOTATION_FORMATS = ("xd_binary", "xd_multiclass", "ucf")
DETECTION_NORMAL_LABEL = "A"         # label of a normal video's whole-video segment (both presets)
_NORMAL_CODES = ("A", "Normal")      # the normal class's label in xd and in ucf
_XD_NONE = "0"                       # placeholder code in xd labels ("B1-0-0")
_FEATURE_FILE = re.compile(r"^(?P<name>.+?)(?:__(?P<crop>\d+))?\.npy$")
# Some names in XD's annotation files end in ".mp4"; the official scripts match names by substring.
_VIDEO_EXTENSION = re.compile(r"\.(mp4|avi|mkv|mov|webm|mpe?g|wmv|flv|m4v)$", re.IGNORECASE)


class DataError(UserError):
    """Unusable dataset input. The message lists every problem found, one per line.

    `count` is how many problems the error stands for (default: one per line of `problems`); it is
    larger when only the first few are listed, smaller when a line is a note such as the likely fix.
    """

    def __init__(self, summary: str, problems: Sequence[str] = (), count: int | None = None):
        self.summary = summary
        self.problems = list(problems)
        self.count = len(self.problems) if count is None else count
        super().__init__("\n".join([summary, *(f"  - {p}" for p in self.problems)]))


def _raise_problems(problems: Sequence[str], what: str) -> None:
    if problems:
        raise DataError(f"{what}: {len(problems)} problem(s)", problems)


# --------------------------------------------------------------------------- feature lists

@dataclass(frozen=True)
class FeatureListEntry:
    """One feature file of a list: a video, or one crop of it."""

    path: Path          # resolved absolute path of the .npy file
    label: str          # raw label as written in the list ("B1-B2-0", "A", "Abuse", "Normal")
    name: str           # video name: the file name without the "__N" crop suffix and ".npy"
    crop: int | None    # N of a "__N.npy" file name, else None


def split_feature_file_name(file_name: str) -> tuple[str, int | None]:
    """``"v=abc__#1_label_B1-0-0__3.npy"`` -> ``("v=abc__#1_label_B1-0-0", 3)``; no suffix -> crop None."""
    match = _FEATURE_FILE.match(file_name)
    if match is None:
        raise DataError(f"{file_name!r} is not a feature file name (expected '<video>[__N].npy')")
    crop = match.group("crop")
    return match.group("name"), (int(crop) if crop is not None else None)


def _is_absolute(text: str) -> bool:
    """A POSIX or Windows absolute path (``/home/...``, ``C:\\...``)."""
    return Path(text).is_absolute() or bool(PureWindowsPath(text).drive)


def _resolve_inside(base: Path, text: str, root: Path | None) -> Path:
    """Resolve a list path against `base`; with `root`, refuse anything that could leave it."""
    path = Path(text)
    if root is not None:
        if path.is_absolute():
            raise DataError(f"{text}: absolute paths are refused; give a path relative to the list")
        if ".." in path.parts:
            raise DataError(f"{text}: '..' is refused in paths")
    resolved = (base / path).resolve()
    if root is not None and not resolved.is_relative_to(root):
        raise DataError(f"{text}: resolves to {resolved}, outside {root}")
    return resolved


def read_feature_list(csv_path: str | os.PathLike, root: str | os.PathLike | None = None,
                      preset: str | None = None, features_root: str | os.PathLike | None = None
                      ) -> list[FeatureListEntry]:
    """Read a ``path,label`` CSV; relative paths resolve against the CSV's folder.

    With `root`, every path must stay inside it (no absolute paths, no ``..``, no symlink out).
    With `preset`, every label is also parsed. With `features_root` (lists as downloaded, whose
    rows are another machine's paths), a listed file that does not exist is found by its name
    under that folder (`feature_root.resolve_listed_paths`); files found nowhere or more than once
    are reported with the first 10 problems, the count and the likely fix. All problems are
    reported in one `DataError`.
    """
    csv_path = Path(csv_path)
    what = f"feature list {csv_path}"
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{what}: cannot read it ({err})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    columns = [cell.strip().lower() for cell in header or []]
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {', '.join(missing)}; the first line must be "
                        f"the header 'path,label' (found {','.join(header or []) or 'an empty file'!r})")
    path_col, label_col = columns.index("path"), columns.index("label")
    base = csv_path.resolve().parent
    root_dir = Path(root).resolve() if root is not None else None

    entries: list[FeatureListEntry] = []
    problems: list[str] = []
    listed: list[tuple[int, str, str]] = []      # (entry index, path as listed, row) to find under features_root
    absolute: list[str] = []                     # rows refused under `root`: absolute paths, no features_root
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {reader.line_num}"
        path_text = row[path_col].strip() if path_col < len(row) else ""
        label = row[label_col].strip() if label_col < len(row) else ""
        row_problems = []
        refused = features_root is None and root_dir is not None and _is_absolute(path_text)
        if refused:
            absolute.append(f"{where}: {path_text}")       # summarised below, with the likely fix
        if not path_text:
            row_problems.append(f"{where}: empty path")
        elif not refused:
            try:
                name, crop = split_feature_file_name((listed_parts(path_text) or (path_text,))[-1])
                if features_root is None:
                    path = _resolve_inside(base, path_text, root_dir)
                else:                       # resolved below, as listed or by name
                    path = Path(path_text)
            except DataError as err:
                row_problems.append(f"{where}: {err}")
        if not label:
            row_problems.append(f"{where} ({path_text or 'no path'}): empty label")
        elif preset is not None:
            try:
                parse_codes(label, preset)
            except DataError as err:
                row_problems.append(f"{where} ({path_text}): {err}")
        if row_problems or refused:
            problems.extend(row_problems)
            continue
        if features_root is not None:
            listed.append((len(entries), path_text, where))
        entries.append(FeatureListEntry(path=path, label=label, name=name, crop=crop))
    if absolute:        # the first 10, the count and the likely fix (as `feature_root` summarises)
        n = len(absolute)
        shown = [f"{row}: absolute paths are refused; give a path relative to the list" for row in absolute[:MAX_SHOWN]]
        more = [f"... and {n - MAX_SHOWN} more absolute paths"] if n > MAX_SHOWN else []
        fix = (f"likely fix: {n} listed path{'s are' if n != 1 else ' is'} absolute (another machine's paths?): "
               f"choose a features root (--features-root DIR) inside {root_dir}, where each file is found by its name")
        raise DataError(f"{what}: {len(problems) + n} problem(s)", [*problems, *shown, *more, fix],
                        count=len(problems) + n)
    if not entries and not problems:
        problems.append("the list has no rows; add one 'path,label' row per feature file")
    if features_root is not None and listed:
        entries = _find_listed_files(entries, listed, base, features_root, root_dir, problems, what)
    _raise_problems(problems, what)
    return entries


def _find_listed_files(entries: list[FeatureListEntry], listed: list[tuple[int, str, str]], base: Path,
                       features_root: str | os.PathLike, root_dir: Path | None, problems: list[str],
                       what: str) -> list[FeatureListEntry]:
    """`entries` with the listed paths resolved as listed or by name under `features_root`
    (`feature_root.resolve_listed_paths`); what cannot be resolved raises the summary `DataError`
    (with any `problems` of the other rows). With `root_dir` (a server confining paths) absolute
    listed paths are only searched by name, and every file must lie inside `root_dir`."""
    try:
        froot = FeatureRoot(features_root)
    except ValueError as err:
        raise DataError(f"{what}: {err}") from None
    if root_dir is not None and not froot.path.resolve().is_relative_to(root_dir):
        raise DataError(f"{what}: features root {features_root} is outside {root_dir}")
    report = resolve_listed_paths([text for _, text, _ in listed], froot, base=base,
                                  wheres=[where for _, _, where in listed], allow_absolute=root_dir is None)
    if report.problems:
        summary, lines = report.error_parts(what)
        if not problems:
            raise DataError(summary, lines, count=len(report.problems))
        raise DataError(f"{what}: {len(problems)} problem(s); {summary.split(': ', 1)[-1]}", [*problems, *lines],
                        count=len(problems) + len(report.problems))
    entries = list(entries)
    for (i, text, where), found in zip(listed, report.paths):
        path = found.resolve()
        if root_dir is not None and not path.is_relative_to(root_dir):
            problems.append(f"{where}: {text}: resolves to {path}, outside {root_dir}")
        entries[i] = FeatureListEntry(path=path, label=entries[i].label, name=entries[i].name, crop=entries[i].crop)
    return entries


def group_by_video(entries: Iterable[FeatureListEntry]) -> dict[str, list[FeatureListEntry]]:
    """Entries grouped by video name, in first-seen order (the crops of a video together)."""
    groups: dict[str, list[FeatureListEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.name, []).append(entry)
    return groups


# --------------------------------------------------------------------------- labels

def parse_codes(label: str, preset: str) -> list[str]:
    """Dataset codes of a raw label: xd ``"B1-B2-0"`` -> ``["B1", "B2"]``; ucf ``"Abuse"`` -> itself."""
    label_map = get_preset(preset).label_map
    text = label.strip()
    if preset == "xd":
        codes = list(dict.fromkeys(c.strip() for c in text.split("-") if c.strip() != _XD_NONE))
        unknown = [c for c in codes if c not in label_map]
        if unknown:
            raise DataError(f"label {label!r}: unknown code(s) {', '.join(map(repr, unknown))}; "
                            f"allowed codes are {', '.join(label_map)} joined with '-' ('0' = none)")
        if not codes:
            raise DataError(f"label {label!r} names no class; use 'A' for a normal video")
        normal = next(iter(label_map))
        if normal in codes and len(codes) > 1:
            raise DataError(f"label {label!r} mixes the normal code {normal!r} with abnormal codes")
        return codes
    if text not in label_map:
        raise DataError(f"label {label!r}: unknown class; allowed are {', '.join(label_map)}")
    return [text]


def parse_label(label: str, preset: str) -> list[str]:
    """Preset class names of a raw label: xd ``"B1-B2-0"`` -> ``["fighting", "shooting"]``."""
    label_map = get_preset(preset).label_map
    return [label_map[code] for code in parse_codes(label, preset)]


def multi_hot(labels: Iterable[str], class_names: Sequence[str]) -> np.ndarray:
    """float32 ``[C]`` vector with 1 at each of `labels` (class names) in `class_names`."""
    index = {name: i for i, name in enumerate(class_names)}
    labels = list(labels)
    unknown = [name for name in labels if name not in index]
    if unknown:
        raise DataError(f"unknown class name(s) {', '.join(map(repr, unknown))}; "
                        f"the classes are {', '.join(class_names)}")
    vector = np.zeros(len(class_names), dtype=np.float32)
    vector[[index[name] for name in labels]] = 1.0
    return vector


def is_normal_label(label: str) -> bool:
    """True for a normal video's raw label in either dataset (``A``, ``A-0-0``, ``Normal``)."""
    codes = [c.strip() for c in label.strip().split("-") if c.strip() != _XD_NONE]
    return len(codes) == 1 and codes[0] in _NORMAL_CODES


def xd_label_from_name(name: str) -> str | None:
    """The label that an XD video name carries after ``_label_`` (``"..._label_B2-G-0"`` -> ``"B2-G-0"``)."""
    if "_label_" not in name:
        return None
    return name.rsplit("_label_", 1)[1].split("__")[0] or None


def detection_classlist(preset: str) -> list[str]:
    """Class list of the official detection mAP: xd codes ``A, B1, ...``; ucf names ``Normal, Abuse, ...``."""
    return list(get_preset(preset).label_map)


def _folder_key(text: str) -> str:
    return re.sub(r"[\s_-]+", "", text.lower())


def _folder_code(folder: str, preset: str) -> str | None:
    """Dataset code of a class folder named by its code or class name (any case, '_' or ' ')."""
    label_map = get_preset(preset).label_map
    normal = next(iter(label_map))
    if preset == "ucf" and "normal_videos" in folder.lower():   # Training/Testing_Normal_Videos_Anomaly
        return normal
    key = _folder_key(folder)
    for code, class_name in label_map.items():
        if key in (_folder_key(code), _folder_key(class_name)):
            return code
    return None


def scan_feature_folder(root: str | os.PathLike, preset: str) -> list[FeatureListEntry]:
    """Entries of a folder laid out as ``<root>/<ClassName>/<video>.npy``.

    A class folder is named by its code or class name (``B1`` or ``fighting``; ``Abuse``;
    UCF's ``*Normal_Videos*`` folders are normal). For xd, files directly in `root` whose names
    carry ``_label_<codes>`` (the official flat layout) are taken too. Files must stay inside root.
    """
    root_dir = Path(root).resolve()
    if not root_dir.is_dir():
        raise DataError(f"feature folder {root}: not a folder")
    label_map = get_preset(preset).label_map
    entries: list[FeatureListEntry] = []
    problems: list[str] = []

    def add(file: Path, label: str) -> None:
        resolved = file.resolve()
        if not resolved.is_relative_to(root_dir):
            problems.append(f"{file.relative_to(root_dir)}: resolves to {resolved}, outside {root_dir}")
            return
        name, crop = split_feature_file_name(file.name)
        entries.append(FeatureListEntry(path=resolved, label=label, name=name, crop=crop))

    for child in sorted(root_dir.iterdir()):
        if child.is_dir():
            code = _folder_code(child.name, preset)
            if code is None:
                problems.append(f"{child.name}/: not a class folder; name it after one of "
                                f"{', '.join(label_map)} or {', '.join(label_map.values())}")
                continue
            for file in sorted(child.glob("*.npy")):
                add(file, code)
        elif child.suffix == ".npy":
            label = xd_label_from_name(child.name[:-4]) if preset == "xd" else None
            if label is None:
                problems.append(f"{child.name}: cannot tell its class; put it in a class folder "
                                f"<root>/<ClassName>/{child.name}")
                continue
            try:
                parse_codes(label, preset)
            except DataError as err:
                problems.append(f"{child.name}: {err}")
                continue
            add(child, label)
    if not entries and not problems:
        problems.append("no .npy files found; expected <root>/<ClassName>/<video>.npy")
    _raise_problems(problems, f"feature folder {root}")
    return entries


# --------------------------------------------------------------------------- annotations

@dataclass(frozen=True)
class Segment:
    """An annotated event of a test video, in frames."""

    start_frame: int        # first frame of the event (0-based)
    end_frame: int          # one past its last frame: the event covers [start_frame, end_frame)
    label: str | None       # class code ("B1", "Abuse"); None where the file does not say

    def __post_init__(self) -> None:
        if self.start_frame < 0 or self.end_frame <= self.start_frame:
            raise DataError(f"segment [{self.start_frame}, {self.end_frame}) is empty, reversed "
                            f"or negative")


def _is_int(token: str) -> bool:
    return re.fullmatch(r"-?\d+", token) is not None


def _line_format(tokens: Sequence[str]) -> str | None:
    """Annotation format that one line's tokens fit, or None when the line cannot tell."""
    rest = tokens[1:]
    if not rest:
        return None
    if all(_is_int(t) for t in rest):
        return "xd_binary"
    if len(rest) == 5 and not _is_int(rest[0]) and all(_is_int(t) for t in rest[1:]):
        return "ucf"
    if len(rest) % 3 == 0 and not any(_is_int(t) for t in rest[::3]):
        return "xd_multiclass"
    return None


def detect_annotation_format(lines: Iterable[str]) -> str | None:
    """``"xd_binary"``, ``"xd_multiclass"`` or ``"ucf"`` from the first informative line, or None."""
    for line in lines:
        found = _line_format(line.split())
        if found is not None:
            return found
    return None


def _xd_name_code(name: str) -> str | None:
    """The single abnormal code in an XD name's ``_label_`` part, or None (none, several, unknown)."""
    label = xd_label_from_name(name)
    if label is None:
        return None
    codes = [c for c in label.split("-") if c != _XD_NONE]
    label_map = get_preset("xd").label_map
    return codes[0] if len(codes) == 1 and codes[0] in label_map and codes[0] != "A" else None


def _parse_annotation_line(tokens: list[str], fmt: str) -> list[Segment]:
    """Segments of one line (`tokens[0]` is the name); raises DataError on a malformed line."""
    name, rest = tokens[0], tokens[1:]
    if fmt == "xd_binary":
        if len(rest) % 2 or not all(_is_int(t) for t in rest):
            raise DataError("expected 'name start end [start end ...]' with integer frames")
        code = _xd_name_code(name)
        return [Segment(int(s), int(e), code) for s, e in zip(rest[::2], rest[1::2])]
    if fmt == "xd_multiclass":
        if len(rest) % 3 or not all(_is_int(t) for t in rest[1::3] + rest[2::3]):
            raise DataError("expected 'name code start end [code start end ...]' with integer frames")
        codes = get_preset("xd").label_map
        unknown = [c for c in rest[::3] if c not in codes or c == "A"]
        if unknown:
            raise DataError(f"unknown code(s) {', '.join(map(repr, unknown))}; allowed are "
                            f"{', '.join(c for c in codes if c != 'A')}")
        return [Segment(int(s), int(e), c) for c, s, e in zip(rest[::3], rest[1::3], rest[2::3])]
    # ucf: name class s1 e1 s2 e2, -1 -1 for a missing segment
    if len(rest) != 5 or not all(_is_int(t) for t in rest[1:]):
        raise DataError("expected 'name class start1 end1 start2 end2' (-1 -1 for none)")
    classes = get_preset("ucf").label_map
    cls = rest[0]
    if cls not in classes:
        raise DataError(f"unknown class {cls!r}; allowed are {', '.join(classes)}")
    pairs = [(int(rest[1]), int(rest[2])), (int(rest[3]), int(rest[4]))]
    segments = [Segment(s, e, cls) for s, e in pairs if (s, e) != (-1, -1)]
    if cls == next(iter(classes)) and segments:
        raise DataError(f"a {cls} video with anomalous segments")
    return segments


def read_annotations(path: str | os.PathLike, preset: str | None = None,
                     fmt: str | None = None) -> dict[str, list[Segment]]:
    """Test annotations by video name, segments in file order.

    `fmt` is one of `ANNOTATION_FORMATS`; by default it is detected from the content. With
    `preset`, the format must belong to that dataset. XD's ``annotations.txt`` gives no class per
    segment: a segment's label is the name's single ``_label_`` code, or None when it has several.
    UCF normal videos appear with an empty list. A video file extension after a name (some XD
    lines end in ``.mp4``) is dropped. All problems are reported in one `DataError`.
    """
    path = Path(path)
    what = f"annotations {path}"
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{what}: cannot read it ({err})") from None
    if fmt is None:
        fmt = detect_annotation_format(lines)
        if fmt is None:
            raise DataError(f"{what}: not a known annotation format (XD annotations.txt, "
                            f"annotations_multiclasses.txt or UCF Temporal_Anomaly_Annotation.txt)")
    elif fmt not in ANNOTATION_FORMATS:
        raise DataError(f"unknown annotation format {fmt!r}; choose one of {ANNOTATION_FORMATS}")
    if preset is not None and fmt.split("_")[0] != get_preset(preset).model.preset:  # "xd_binary" -> "xd"
        raise DataError(f"{what}: the file is in the {fmt} format, which does not belong to "
                        f"preset {preset!r}")

    annotations: dict[str, list[Segment]] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        tokens[0] = _VIDEO_EXTENSION.sub("", tokens[0])
        where = f"line {number} ({tokens[0]})"
        if tokens[0] in annotations:
            problems.append(f"{where}: the video appears twice")
            continue
        try:
            annotations[tokens[0]] = _parse_annotation_line(tokens, fmt)
        except DataError as err:
            problems.append(f"{where}: {err}")
    if not annotations and not problems:
        problems.append("no annotation lines")
    _raise_problems(problems, what)
    return annotations


# --------------------------------------------------------------------------- ground truth

def frame_labels(segments: Iterable[Segment], n_frames: int) -> np.ndarray:
    """uint8 ``[n_frames]``: 1 inside every ``[start, end)``, segments past the end cut off.

    Same as the official ``gt = zeros((N+1)*16); gt[s:e] = 1; gt[:-16]`` with n_frames = N*16.
    """
    labels = np.zeros(n_frames, dtype=np.uint8)
    for segment in segments:
        labels[segment.start_frame:segment.end_frame] = 1
    return labels


def _check_aligned(entries: Sequence[FeatureListEntry], n_snippets: Sequence[int]) -> None:
    if len(entries) != len(n_snippets):
        raise ValueError(f"{len(entries)} entries but {len(n_snippets)} snippet counts")


def frame_ground_truth(entries: Sequence[FeatureListEntry], annotations: Mapping[str, Sequence[Segment]],
                       n_snippets: Sequence[int]) -> np.ndarray:
    """Frame labels of all test videos concatenated (uint8, ``sum(n_snippets) * 16`` frames).

    One entry per video, aligned with `n_snippets`. Normal videos are all 0; an abnormal video
    takes its annotated segments (use XD's ``annotations.txt`` for the official frame AUC/AP).
    """
    _check_aligned(entries, n_snippets)
    parts, problems = [], []
    for entry, n in zip(entries, n_snippets):
        n_frames = int(n) * SNIPPET_FRAMES
        if is_normal_label(entry.label):
            parts.append(np.zeros(n_frames, dtype=np.uint8))
        elif entry.name in annotations:
            parts.append(frame_labels(annotations[entry.name], n_frames))
        else:
            problems.append(f"{entry.name}: abnormal video (label {entry.label!r}) with no annotation line")
    _raise_problems(problems, "frame ground truth")
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


def detection_ground_truth(entries: Sequence[FeatureListEntry], annotations: Mapping[str, Sequence[Segment]],
                           n_snippets: Sequence[int]) -> tuple[list[list[list[int]]], list[list[str]]]:
    """Per-video ground truth of the detection mAP: ``(segments [[start, end], ...], labels)``.

    One entry per video, aligned with `n_snippets`. A normal video gets one whole-video segment
    ``[0, N*16]`` labelled ``"A"`` (in both presets, as the official code does); an abnormal video
    its annotated segments with their class codes (XD needs ``annotations_multiclasses.txt``).
    """
    _check_aligned(entries, n_snippets)
    segments, labels, problems = [], [], []
    for entry, n in zip(entries, n_snippets):
        if is_normal_label(entry.label):
            segments.append([[0, int(n) * SNIPPET_FRAMES]])
            labels.append([DETECTION_NORMAL_LABEL])
            continue
        video = annotations.get(entry.name)
        if video is None:
            problems.append(f"{entry.name}: abnormal video (label {entry.label!r}) with no annotation line")
            continue
        unlabelled = sum(segment.label is None for segment in video)
        if unlabelled:
            problems.append(f"{entry.name}: {unlabelled} segment(s) without a class; use "
                            f"annotations_multiclasses.txt for XD")
            continue
        segments.append([[s.start_frame, s.end_frame] for s in video])
        labels.append([s.label for s in video])
    _raise_problems(problems, "detection ground truth")
    return segments, labels


# --------------------------------------------------------------------------- feature files

def load_features(path: str | os.PathLike) -> np.ndarray:
    """The snippet features of one ``.npy`` file as float32 ``[N, D]`` (N >= 1)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such feature file") from None
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read features ({err})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise DataError(f"{path}: not a .npy array (an .npz archive?)")
    if array.ndim != 2 or array.shape[0] == 0:
        raise DataError(f"{path}: expected features of shape [snippets, dim], got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


MISSING_FILE = "missing file"


def _feature_file_problem(path: Path, dim: int) -> str | None:
    """What is wrong with one feature file, or None."""
    if not path.is_file():
        return MISSING_FILE
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        return f"unreadable ({err})"
    if not isinstance(array, np.ndarray):
        array.close()
        return "not a .npy array (an .npz archive?)"
    if array.ndim != 2:
        return f"expected a 2-D array [snippets, {dim}], got shape {array.shape}"
    if array.shape[1] != dim:
        return f"feature size {array.shape[1]}, expected {dim} (shape {array.shape})"
    if array.shape[0] == 0:
        return "zero snippets"
    if not np.issubdtype(array.dtype, np.floating):
        return f"dtype {array.dtype}, expected floating point"
    n_bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if n_bad:
        return f"{n_bad} NaN/Inf value(s)"
    return None


def check_feature_files(entries: Sequence[FeatureListEntry], dim: int = 512,
                      annotations: Mapping[str, Sequence[Segment]] | None = None) -> None:
    """Check every feature file and, with `annotations`, that every abnormal video is annotated.

    Finds missing or unreadable files, wrong shapes or feature size, zero snippets and NaN/Inf;
    raises one `DataError` naming each video. Normal videos need no annotation.
    """
    problems: list[str] = []
    missing: list[Resolution] = []
    if not entries:
        problems.append("no feature files")
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        found = pool.map(lambda entry: _feature_file_problem(entry.path, dim), entries)
        for entry, problem in zip(entries, found):
            if problem is not None:
                crop = f" crop {entry.crop}" if entry.crop is not None else ""
                problems.append(f"{entry.name}{crop}: {problem} ({entry.path})")
                if problem == MISSING_FILE:
                    missing.append(Resolution(str(entry.path), Found.MISSING))
    if annotations is not None:
        for name, group in group_by_video(entries).items():
            label = group[0].label
            if is_normal_label(label):
                continue
            if name not in annotations:
                problems.append(f"{name}: abnormal video (label {label!r}) has no line in the annotations")
            elif not annotations[name]:
                problems.append(f"{name}: abnormal video (label {label!r}) has no annotated segment")
    if missing:         # the summary of feature_root: the first problems, the count, the likely fix
        n = len(problems)
        problems = problems[:MAX_SHOWN] + ([f"... and {n - MAX_SHOWN} more"] if n > MAX_SHOWN else [])
        problems.append(f"likely fix: {likely_fix(missing, None)}")
        raise DataError(f"features: {n} problem(s), {len(missing)} of {len(entries)} listed files not found",
                        problems, count=n)
    _raise_problems(problems, "features")
