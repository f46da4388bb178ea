"""`vadclip extract`: CLIP features of many videos, in the official on-disk formats: 16-frame
snippet features (VadCLIP) or, with `ExtractSettings(frames_per_row=1)` (``--per-frame``), one
row per frame (AnomalyCLIP: every frame, ``[F, 512]`` float32, not normalised; list it as
``PATH 0 F-1 LABEL`` in an AnomalyCLIP video list, PATH = the name without ``.npy``).

Input: a folder (videos found recursively by extension) or a text file with one video per line,
``path`` or ``path,label`` (relative paths resolve against the file's folder; blank lines, lines
starting with ``#`` and a ``path,label`` header are skipped).

Output in the output folder:
- ``<name>.npy`` float32 ``[N, D]`` per video, or ``<name>__0.npy`` .. ``<name>__9.npy`` with
  ten-crop (``__0`` = centre crop; order in `vadclip.features`). ``<name>`` is the video's path
  relative to the input folder (the list's common folder) without its extension, so sub-folders
  are mirrored (UCF's class folders stay class folders) and equal file names in different folders
  never collide. Two videos differing only by extension get the extension in the name
  (``a_mp4``, ``a_avi``).
- ``features.csv`` (``--list``): the official ``path,label`` list, one row per feature file,
  paths relative to the output folder, for every video whose features are complete.
- ``failures.txt``: ``video<TAB>reason`` per video that failed (absent when none did).
- ``.vadclip-extract/``: one small JSON record per finished video (settings, CLIP, the video's
  size and time). A video whose record matches and whose files are all present is skipped, so an
  interrupted run resumes where it stopped; every file is written atomically.

A video that cannot be read, or has fewer than 16 frames (no snippet; per-frame: no frame), is
reported and skipped; the exit code is then 1.

Labels, first that applies: the list's label column; ``--label``; the ``_label_<codes>`` part of
an XD-Violence file name; a parent folder named after a UCF-Crime class; else ``Normal``.

Distributed: under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set) each rank extracts videos
``i`` with ``i % WORLD_SIZE == RANK`` (gloo on CPU, nccl on CUDA, one GPU per local rank); after
a barrier rank 0 writes the list and the failures file.
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import UserError
from .clip_backbone import DEFAULT_CLIP, ClipInfo, load_clip
from .config import get_preset
from .formats import xd_label_from_name
from .features import (ExtractSettings, FeatureCache, backbone_id,
                       cached_video_features)
from .utils import atomic_write, resolve_device
from .video import SNIPPET_FRAMES, probe

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".m4v", ".ts", ".3gp")
DEFAULT_LABEL = "Normal"
LIST_NAME = "features.csv"
FAILURES_NAME = "failures.txt"
RECORD_DIR = ".vadclip-extract"
RECORD_FORMAT = "vadclip-extract-v1"


@dataclass(frozen=True)
class VideoJob:
    """One video to extract: where it is, its label, and its output name (relative, posix)."""

    video: Path
    label: str
    name: str


@dataclass
class ExtractSummary:
    """What a run did (on rank 0 of a distributed run: `failed` and `list_path` cover all ranks)."""

    out_dir: Path
    extracted: list[str] = field(default_factory=list)     # output names extracted in this run
    skipped: list[str] = field(default_factory=list)       # already complete
    failed: list[tuple[str, str]] = field(default_factory=list)   # (video path, reason)
    n_snippets: int = 0                                     # rows (snippets or frames) extracted in this run
    seconds: float = 0.0
    list_path: Path | None = None
    failures_path: Path | None = None
    frames_per_row: int = SNIPPET_FRAMES                    # 16: snippet rows; 1: per-frame rows

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        text = (f"extracted {len(self.extracted)}, skipped {len(self.skipped)} (already done), "
                f"failed {len(self.failed)}; {self.n_snippets} {'snippets' if self.frames_per_row > 1 else 'frames'} "
                f"in {self.seconds:.1f} s")
        if self.list_path is not None:
            text += f"; list: {self.list_path}"
        if self.failed:
            where = f" (see {self.failures_path})" if self.failures_path else ""
            text += "\nfailed" + where + ":\n" + "\n".join(f"  {v}: {r}" for v, r in self.failed)
        return text


# ---------------------------------------------------------------------------------------------
# inputs


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files under `folder` (recursive, by extension), sorted."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_video_list(path: str | os.PathLike) -> list[tuple[Path, str | None]]:
    """``(video, label or None)`` per line of a list file (see the module docstring)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"video list {path}: cannot read it ({err})") from None
    base = path.resolve().parent
    items: list[tuple[Path, str | None]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if number == 1 and line.replace(" ", "").lower() in ("path", "path,label"):
            continue
        video, label = line, None
        if "," in line and not (base / line).is_file():
            video, label = (part.strip() for part in line.rsplit(",", 1))
            if not video:
                raise UserError(f"video list {path}, line {number}: no video path")
        items.append(((base / video).resolve(), label or None))
    if not items:
        raise UserError(f"video list {path}: no videos listed")
    return items


def plan_jobs(input_path: str | os.PathLike, label: str | None = None) -> list[VideoJob]:
    """The jobs for an INPUT folder or list file (names and labels as in the module docstring)."""
    input_path = Path(input_path)
    if input_path.is_dir():
        root = input_path.resolve()
        items = [(p.resolve(), None) for p in find_videos(input_path)]
        if not items:
            raise UserError(f"{input_path}: no video files found (looked for "
                             f"{', '.join(VIDEO_SUFFIXES)})")
    elif input_path.is_file():
        items = read_video_list(input_path)
        root = Path(os.path.commonpath([str(video.parent) for video, _ in items]))
    else:
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    return make_jobs(items, root, label)


def make_jobs(items: Sequence[tuple[Path, str | None]], root: Path, label: str | None = None
              ) -> list[VideoJob]:
    """Jobs with unique output names relative to `root` (duplicates of a video are dropped)."""
    unique = list(dict.fromkeys(Path(video) for video, _ in items))
    labels = {Path(video): lab for video, lab in reversed(items)}   # first label wins
    stems = [video.relative_to(root).with_suffix("").as_posix() for video in unique]
    taken = {stem: stems.count(stem) for stem in stems}
    jobs = []
    for video, stem in zip(unique, stems):
        name = stem if taken[stem] == 1 else f"{stem}_{video.suffix.lstrip('.').lower()}"
        jobs.append(VideoJob(video, labels[video] or label or guess_label(video), name))
    return jobs


def _as_jobs(videos, label: str | None) -> list[VideoJob]:
    if isinstance(videos, (str, os.PathLike)):
        return plan_jobs(videos, label)
    videos = list(videos)
    if all(isinstance(v, VideoJob) for v in videos):
        return videos
    paths = [Path(v).resolve() for v in videos]
    if not paths:
        raise UserError("no videos given")
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    return make_jobs([(p, None) for p in paths], root, label)


def guess_label(video: Path) -> str:
    """XD ``_label_`` codes in the name, else a UCF class parent folder, else ``Normal``."""
    xd = xd_label_from_name(video.stem)
    if xd:
        return xd
    ucf = {name.lower(): name for name in get_preset("ucf").label_map}
    return ucf.get(video.parent.name.lower(), DEFAULT_LABEL)


# ---------------------------------------------------------------------------------------------
# outputs and resumption


def output_files(name: str, ten_crop: bool) -> list[str]:
    """Feature file names (relative) of a video: ``name.npy`` or ``name__0.npy`` .. ``__9``."""
    return [f"{name}__{k}.npy" for k in range(10)] if ten_crop else [f"{name}.npy"]


def _record_path(out_dir: Path, name: str) -> Path:
    return out_dir / RECORD_DIR / f"{name}.json"


def _video_stamp(video: Path) -> dict:
    stat = video.stat()
    return {"video_size": stat.st_size, "video_mtime_ns": stat.st_mtime_ns}


def _expected_record(job: VideoJob, backbone: str, settings: ExtractSettings) -> dict:
    return {"format": RECORD_FORMAT, "backbone": backbone, "snippet_frames": settings.frames_per_row,
            "samples_per_snippet": settings.samples_per_snippet, "ten_crop": settings.ten_crop,
            **_video_stamp(job.video)}


def is_done(out_dir: Path, job: VideoJob, backbone: str, settings: ExtractSettings) -> bool:
    """True when `job`'s files are all present and its record matches these settings."""
    try:
        record = json.loads(_record_path(out_dir, job.name).read_text())
        expected = _expected_record(job, backbone, settings)
    except (OSError, ValueError):
        return False
    if any(record.get(k) != v for k, v in expected.items()):
        return False
    return all((out_dir / f).is_file() for f in output_files(job.name, settings.ten_crop))


def _remove_leftovers(out_dir: Path, job: VideoJob) -> None:
    """Temporary files of a killed run, and feature files of the other crop mode."""
    target = out_dir / job.name
    folder = target.parent
    if not folder.is_dir():
        return
    stem = target.name
    for name in [*output_files(stem, False), *output_files(stem, True)]:
        for tmp in folder.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
        (folder / name).unlink(missing_ok=True)
    _record_path(out_dir, job.name).unlink(missing_ok=True)


def _save_outputs(out_dir: Path, job: VideoJob, features: np.ndarray, record: dict,
                  settings: ExtractSettings) -> None:
    files = output_files(job.name, settings.ten_crop)
    arrays = features if settings.ten_crop else features[None]
    for file, arr in zip(files, arrays):
        with atomic_write(out_dir / file) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    with atomic_write(_record_path(out_dir, job.name)) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def write_list(out_dir: Path, jobs: Sequence[VideoJob], backbone: str, settings: ExtractSettings,
               list_name: str = LIST_NAME) -> Path:
    """The official ``path,label`` CSV of the jobs that are done (`is_done`)."""
    rows = ["path,label"]
    for job in jobs:
        if is_done(out_dir, job, backbone, settings):
            rows += [f"{_csv_cell(f)},{_csv_cell(job.label)}"
                     for f in output_files(job.name, settings.ten_crop)]
    path = out_dir / list_name
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


# ---------------------------------------------------------------------------------------------
# distributed


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.owns_group:
            torch.distributed.destroy_process_group()


def _init_distributed(device: str) -> _Dist:
    """Join the torchrun process group when RANK/WORLD_SIZE say so (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    dist = torch.distributed
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=12))
        owns = True
    return _Dist(dist.get_rank(), dist.get_world_size(), owns)


def _failures_record(out_dir: Path, rank: int) -> Path:
    return out_dir / RECORD_DIR / f"failed.rank{rank}.json"


# ---------------------------------------------------------------------------------------------
# the run


def extract(
    videos: str | os.PathLike | Sequence[str | os.PathLike | VideoJob],
    out_dir: str | os.PathLike,
    clip: str | tuple[nn.Module, ClipInfo] = DEFAULT_CLIP,
    settings: ExtractSettings = ExtractSettings(),
    device: str = "auto",
    label: str | None = None,
    list_name: str = LIST_NAME,
    cache: FeatureCache | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> ExtractSummary:
    """Extract features of every video (INPUT folder/list, or jobs) into `out_dir`.

    `videos` is an INPUT folder or list file, or a sequence of video paths or `VideoJob`s.
    `clip` is a `load_clip` source or an already loaded `(model, info)`. Finished videos are
    skipped; a video that cannot be read is recorded in the summary and the others go on.
    Under torchrun the videos are sharded over the ranks (see the module docstring). `backend`
    picks the decoder ("auto" = decord when it reads the file, else PyAV; see `vadclip.video`).
    """
    started = time.perf_counter()
    jobs = _as_jobs(videos, label)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"   # one GPU per local rank
        torch.cuda.set_device(device)
    dist = _init_distributed(device)
    try:
        clip_model, clip_info = load_clip(clip, device) if isinstance(clip, (str, os.PathLike)) else clip
        backbone = backbone_id(clip_info, clip_model)
        summary = ExtractSummary(out_dir=out_dir, frames_per_row=settings.frames_per_row)
        mine = jobs[dist.rank::dist.world]
        _run_jobs(mine, out_dir, clip_model, clip_info, backbone, settings, device, cache,
                  summary, progress, dist, backend)
        failures = _failures_record(out_dir, dist.rank)
        with atomic_write(failures) as tmp:
            tmp.write_text(json.dumps(summary.failed))
        dist.barrier()
        if dist.rank == 0:
            if dist.world > 1:
                summary.failed = [tuple(f) for r in range(dist.world)
                                  for f in json.loads(_failures_record(out_dir, r).read_text())]
            summary.list_path = write_list(out_dir, jobs, backbone, settings, list_name)
            summary.failures_path = _write_failures(out_dir, summary.failed)
        summary.seconds = time.perf_counter() - started
        return summary
    finally:
        dist.close()


def _run_jobs(jobs: Sequence[VideoJob], out_dir: Path, clip_model: nn.Module, clip_info: ClipInfo,
              backbone: str, settings: ExtractSettings, device: str, cache: FeatureCache | None,
              summary: ExtractSummary, progress: bool, dist: _Dist, backend: str = "auto") -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=0, unit="snippet" if settings.frames_per_row > 1 else "frame", disable=not progress, position=dist.rank, dynamic_ncols=True,
               desc=f"rank {dist.rank}" if dist.world > 1 else "extract", leave=True)
    try:
        for number, job in enumerate(jobs, 1):
            bar.set_postfix_str(f"video {number}/{len(jobs)}")
            if is_done(out_dir, job, backbone, settings):
                summary.skipped.append(job.name)
                continue
            _remove_leftovers(out_dir, job)
            record = _expected_record(job, backbone, settings)
            try:
                info = probe(job.video, backend=backend)
                per_row = settings.frames_per_row
                if info.n_frames < per_row:
                    raise UserError(f"{job.video.name}: only {info.n_frames} frame(s); a video "
                                     f"needs at least {per_row} (one {'snippet' if per_row > 1 else 'frame'})")
                bar.total += info.n_frames // per_row
                bar.refresh()
                last = [0]

                def advance(done: int, total: int) -> None:
                    bar.update(done - last[0])
                    last[0] = done

                result, _ = cached_video_features(clip_model, clip_info, job.video, settings,
                                                  device, cache=cache, info=info,
                                                  on_progress=advance, backbone=backbone)
                record.update(n_snippets=result.n_snippets, n_frames=info.n_frames, fps=info.fps,
                              video=str(job.video), label=job.label)
                _save_outputs(out_dir, job, result.features, record, settings)
            except (ValueError, OSError, RuntimeError, MemoryError) as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                summary.failed.append((str(job.video), reason))
                bar.write(f"vadclip extract: failed: {job.video}: {reason}", file=sys.stderr)
                continue
            summary.extracted.append(job.name)
            summary.n_snippets += result.n_snippets
    finally:
        bar.close()


def _write_failures(out_dir: Path, failed: Sequence[tuple[str, str]]) -> Path | None:
    path = out_dir / FAILURES_NAME
    if not failed:
        path.unlink(missing_ok=True)
        return None
    with atomic_write(path) as tmp:
        tmp.write_text("".join(f"{video}\t{reason}\n" for video, reason in failed), encoding="utf-8")
    return path
