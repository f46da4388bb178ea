"""Scoring a video file end to end, in two steps: its CLIP features, then a detector's scores.

1. `video_features(path, detector, ...)` -> `VideoFeatureResult`: probe the header and frame
   timing, apply the duration limit, hash the file (the feature cache key), then decode and
   encode the frames with the detector's CLIP, one row per `detector.frames_per_row` frames
   (16-frame snippet means for VadCLIP, one row per frame for AnomalyCLIP; skipped when the
   features are in the cache). Progress stages ``"probe"`` and ``"encode"``.
2. `score_video_features(result, detector, class_names, params)` -> `VideoScores`: run the
   detector on the rows and cut segments (stage ``"score"``). No video is read, so re-scoring
   with another vocabulary is fast.

`score_video` is the two in a row; the CLI and the app both call these functions. `redetect`
re-cuts segments under new `DetectionParams` without running a model; `scores_from_features`
scores a bare feature array (e.g. read back from the cache) with the same checks.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .constants import SNIPPET_FRAMES
from .detectors import Detector, as_detector
from .errors import UserError
from .features import ExtractSettings, FeatureCache, backbone_id, cached_video_features, snippet_means
from .model import VadCLIP
from .results import DetectionParams, VideoScores
from .segments import detect_segments
from .video import VideoError, VideoInfo, content_hash, probe

ProgressFn = Callable[[str, float], None]


def _no_progress(stage: str, fraction: float) -> None:
    pass


@dataclass
class VideoFeatureResult:
    """The CLIP features of one video and what they were made from."""

    features: np.ndarray        # [N, D] float32, one row per `frames_per_row` frames (centre crop)
    video: str                  # the name stored with the scores (default: the file name)
    content_hash: str
    info: VideoInfo
    settings: ExtractSettings
    frames_per_row: int
    cache_key: str | None = None   # where the features sit in the cache (None: no cache)
    cache_hit: bool = False
    timings: dict = field(default_factory=dict)   # probe_s, encode_s

    @property
    def n_rows(self) -> int:
        return int(self.features.shape[0])


def row_times(n_rows: int, fps: float, frames_per_row: int = SNIPPET_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times in seconds ([N] each) of rows of `frames_per_row` frames."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    k = np.arange(n_rows + 1, dtype=np.float64) * frames_per_row / fps
    return k[:-1], k[1:]


snippet_times = row_times   # the name used when every row was a 16-frame snippet


def _clip_device(clip_model: nn.Module) -> torch.device:
    return next(clip_model.parameters()).device


def video_features(path: str | Path, detector: Detector | VadCLIP, *,
                   settings: ExtractSettings = ExtractSettings(), cache: FeatureCache | None = None,
                   device: str | torch.device | None = None, max_duration_s: float | None = None,
                   on_progress: ProgressFn | None = None,
                   video_name: str | None = None) -> VideoFeatureResult:
    """The detector's CLIP features of a video file, through `cache` when given.

    `device` is where CLIP encodes frames (None: the CLIP's own device). `settings` are used
    for the detector's rows (`ExtractSettings.for_rows`: per-frame rows encode every frame,
    whatever `samples_per_snippet` says). Raises `VideoError` for a file that is not a video, one
    longer than `max_duration_s` or shorter than one row.
    """
    progress = on_progress or _no_progress
    detector = as_detector(detector)
    rows_of = detector.frames_per_row
    settings = settings.for_rows(rows_of)
    device = _clip_device(detector.clip_model) if device is None else device
    timings = {}

    t0 = time.perf_counter()
    progress("probe", 0.0)
    info = probe(path)
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise VideoError(path, f"the video lasts {info.duration_s:.1f} s, longer than the limit of "
                               f"{max_duration_s:g} s")
    if info.n_frames < rows_of:
        raise VideoError(path, f"needs at least {rows_of} frames (one {'snippet' if rows_of > 1 else 'frame'}), "
                               f"it has {info.n_frames}")
    digest = content_hash(path)
    backbone = backbone_id(detector.clip_info, detector.clip_model) if cache is not None else None
    progress("probe", 1.0)
    timings["probe_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("encode", 0.0)
    features, cache_hit = cached_video_features(
        detector.clip_model, detector.clip_info, path, settings=settings, device=device, cache=cache,
        info=info, content_hash=digest, backbone=backbone,
        on_progress=lambda done, total: progress("encode", done / max(total, 1)),
    )
    progress("encode", 1.0)
    timings["encode_s"] = time.perf_counter() - t0
    rows = features.features
    if rows.ndim == 3:           # ten-crop [10, N, D]: score the centre crop, as the official
        rows = rows[0]           # test lists use one crop per video
    return VideoFeatureResult(
        features=rows, video=video_name or Path(path).name, content_hash=digest, info=info,
        settings=settings, frames_per_row=rows_of,
        cache_key=FeatureCache.key(digest, backbone, settings) if cache is not None else None,
        cache_hit=cache_hit, timings=timings,
    )


def snippet_features(per_frame: VideoFeatureResult) -> VideoFeatureResult:
    """16-frame snippet features from per-frame ones: each snippet the mean of its 16 frames'
    rows (`features.snippet_means`), which is what snippet extraction with `samples_per_snippet`
    16 computes from the same encoded frames (equal up to float32 summation order). Lets one
    decoding serve a per-frame and a snippet detector on the same CLIP."""
    if per_frame.frames_per_row != 1:
        raise ValueError(f"expected per-frame features, got rows of {per_frame.frames_per_row} frames")
    settings = per_frame.settings.for_rows(SNIPPET_FRAMES)
    return replace(per_frame, features=snippet_means(per_frame.features), settings=settings,
                   frames_per_row=SNIPPET_FRAMES, cache_key=None,
                   timings={**per_frame.timings, "derived_from_per_frame": True})


def scores_from_features(features: np.ndarray, detector: Detector | VadCLIP,
                         class_names: list[str] | None, *, video: str, content_hash: str, fps: float,
                         n_frames: int, samples_per_snippet: int,
                         params: DetectionParams = DetectionParams(),
                         extras: dict | None = None) -> VideoScores:
    """Score one video's [N, D] feature rows (N = n_frames // frames_per_row) and cut segments.

    No video is read: this re-scores cached features with another vocabulary.
    """
    detector = as_detector(detector)
    names = detector.vocabulary(class_names)
    per_row = detector.frames_per_row
    n = int(np.asarray(features).shape[0])
    row = "snippet" if per_row > 1 else "frame"
    if n_frames < per_row:
        raise UserError(f"{video}: needs at least {per_row} frames (one {row}), it has {n_frames}")
    if n != n_frames // per_row:
        raise UserError(f"{video}: {n} {row} features for {n_frames} frames "
                        f"(expected {n_frames // per_row} {row}s of {per_row} frames)")
    result = detector.score(features, names)
    start_s, end_s = row_times(n, fps, per_row)
    scores = VideoScores(
        video=video, content_hash=content_hash, fps=float(fps), n_frames=int(n_frames),
        duration_s=n_frames / fps, snippet_frames=per_row,
        samples_per_snippet=int(samples_per_snippet), snippet_start_s=start_s, snippet_end_s=end_s,
        curves={b: np.asarray(c, np.float32) for b, c in result.curves.items()},
        fine=np.asarray(result.class_probs, np.float32), class_names=list(result.class_names),
        segments=[], params=params, model=detector.description,
        random_weights=bool(result.random_weights), extras=dict(extras or {}),
    )
    return redetect(scores, params)


def score_video_features(result: VideoFeatureResult, detector: Detector | VadCLIP,
                         class_names: list[str] | None = None,
                         params: DetectionParams = DetectionParams(), *,
                         on_progress: ProgressFn | None = None) -> VideoScores:
    """Score the features of `video_features` with `detector` and cut segments.

    `class_names` defaults to the detector's vocabulary. `extras` of the result records the
    cache (hit, key), the extraction settings, the video's backend/size/codec and the timings.
    """
    progress = on_progress or _no_progress
    t0 = time.perf_counter()
    progress("score", 0.0)
    info = result.info
    extras = {
        "cache_hit": result.cache_hit, "cache_key": result.cache_key,
        "extract_settings": asdict(result.settings), "video_backend": info.backend,
        "width": info.width, "height": info.height, "codec": info.codec,
    }
    scores = scores_from_features(
        result.features, detector, class_names, video=result.video, content_hash=result.content_hash,
        fps=info.fps, n_frames=info.n_frames, samples_per_snippet=result.settings.samples_per_row,
        params=params, extras=extras,
    )
    scores.extras["timings"] = {**result.timings, "score_s": time.perf_counter() - t0}
    progress("score", 1.0)
    return scores


def redetect(scores: VideoScores, params: DetectionParams) -> VideoScores:
    """The same scores with segments cut again under new detection parameters (no model call).

    `params.branch` None means the scores' default (first) branch; the returned scores record
    the branch actually used. OptionError for a branch the detector does not give.
    """
    coarse = scores.coarse(params.branch)
    params = replace(params, branch=params.branch or scores.branches[0])
    segments = detect_segments(coarse, scores.fine, scores.class_names,
                               scores.snippet_start_s, scores.snippet_end_s, params, scores.fps,
                               scores.snippet_frames)
    return replace(scores, segments=segments, params=params)


def score_video(path: str | Path, model: Detector | VadCLIP, class_names: list[str] | None = None,
                *, params: DetectionParams = DetectionParams(),
                settings: ExtractSettings = ExtractSettings(), cache: FeatureCache | None = None,
                device: str | torch.device | None = None, max_duration_s: float | None = None,
                on_progress: ProgressFn | None = None, video_name: str | None = None) -> VideoScores:
    """Score a video file: `video_features` then `score_video_features` (see the module docstring).

    `model` is a `Detector` (e.g. `ZeroShotDetector`) or a VadCLIP model; `class_names`
    defaults to its vocabulary. The vocabulary is checked (VocabularyError) before anything is
    decoded; a file that cannot be used raises `VideoError`. Both are `UserError`s.
    """
    detector = as_detector(model)
    names = detector.vocabulary(class_names)
    features = video_features(path, detector, settings=settings, cache=cache, device=device,
                              max_duration_s=max_duration_s, on_progress=on_progress,
                              video_name=video_name)
    return score_video_features(features, detector, names, params, on_progress=on_progress)

