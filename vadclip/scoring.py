"""Scoring a video file end to end: probe, snippet features (cached), scores, segments.

`score_video` is what the app and `python -m vadclip score` call. It works in three stages,
reported through `on_progress(stage, fraction)`:

- ``"probe"``: read the header and frame timing, hash the file (the feature cache key);
- ``"encode"``: decode the frames of each 16-frame snippet and encode them with CLIP (skipped,
  reported as done at once, when the features are in the cache);
- ``"score"``: run the scorer (a VadCLIP model or CLIP zero-shot) and cut segments.

The per-snippet CLIP features do not depend on the vocabulary, so `scores_from_features` re-scores
cached features with new class names without decoding anything, and `redetect` re-cuts segments
with new `DetectionParams` without running a model at all.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .clip_backbone import RANDOM_WEIGHTS_WARNING, ClipInfo
from .config import get_preset
from .features import ExtractSettings, FeatureCache, backbone_id, cached_video_features
from .inference import FeatureScores, score_features
from .model import VadCLIP
from .prompt import validate_class_names
from .results import DetectionParams, VideoScores
from .segments import detect_segments
from .text_cache import TextFeatureCache
from .video import SNIPPET_FRAMES, VideoError, content_hash, probe
from .zeroshot import DEFAULT_PROMPT_TEMPLATE, ZeroShotScorer, zero_shot_prompts

PROGRESS_STAGES = ("probe", "encode", "score")
ProgressFn = Callable[[str, float], None]


@dataclass
class FeatureScorer:
    """Anything that turns [N, D] CLIP snippet features and class names into `FeatureScores`.

    `clip_model` / `clip_info` are the CLIP whose `encode_image` makes the features;
    `check_vocabulary(class_names)` raises ValueError for a vocabulary the scorer cannot use
    (checked before any video is decoded); `default_class_names` is used when none are given.
    """

    clip_model: nn.Module
    clip_info: ClipInfo
    score: Callable[[np.ndarray, list[str]], FeatureScores]
    description: str
    default_class_names: list[str] | None = None
    check_vocabulary: Callable[[list[str]], object] | None = None

    @classmethod
    def from_vadclip(cls, model: VadCLIP) -> "FeatureScorer":
        """A trained VadCLIP model (both branches); defaults to its preset vocabulary.

        Text features are kept per class name (`TextFeatureCache`), so re-scoring with an edited
        vocabulary only encodes the new names; the model must not be trained further meanwhile.
        """
        text_features = TextFeatureCache(model.encode_text)

        def score(features: np.ndarray, names: list[str]) -> FeatureScores:
            return score_features(model, features, list(names), text_features=text_features(names))

        return cls(
            clip_model=model.clipmodel, clip_info=model.clip_info,
            score=score,
            description=f"VadCLIP (preset {model.config.preset}, {model.clip_info.label})",
            default_class_names=list(model.config.class_names),
            check_vocabulary=model.prompt_tokens,
        )

    @classmethod
    def zero_shot(cls, clip_model: nn.Module, clip_info: ClipInfo, tokenizer,
                  prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                  default_class_names: list[str] | None = None) -> "FeatureScorer":
        """Plain CLIP zero-shot scoring (see vadclip.zeroshot); no trained model needed.

        `default_class_names` defaults to the xd preset's vocabulary.
        """
        scorer = ZeroShotScorer(clip_model, clip_info, tokenizer, prompt_template)
        if default_class_names is None:
            default_class_names = list(get_preset("xd").model.class_names)
        description = scorer.description
        if clip_info.random_weights:
            description += f" [{RANDOM_WEIGHTS_WARNING}]"
        return cls(
            clip_model=clip_model, clip_info=clip_info, score=scorer, description=description,
            default_class_names=default_class_names,
            check_vocabulary=lambda names: zero_shot_prompts(tokenizer, names, prompt_template),
        )

    def vocabulary(self, class_names: list[str] | None) -> list[str]:
        """The class names to score with (`default_class_names` if None), checked."""
        if class_names is None:
            if self.default_class_names is None:
                raise ValueError("no class names given and the scorer has no default vocabulary")
            class_names = self.default_class_names
        names = validate_class_names(class_names)
        if self.check_vocabulary is not None:
            self.check_vocabulary(names)
        return names


def as_scorer(model: VadCLIP | FeatureScorer) -> FeatureScorer:
    """A `FeatureScorer` for a VadCLIP model, or the scorer itself."""
    if isinstance(model, FeatureScorer):
        return model
    if isinstance(model, VadCLIP):
        return FeatureScorer.from_vadclip(model)
    raise TypeError(f"expected a VadCLIP model or a FeatureScorer, got {type(model).__name__}")


def snippet_times(n_snippets: int, fps: float,
                  snippet_frames: int = SNIPPET_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times in seconds ([N] each) of snippets of `snippet_frames` frames."""
    if n_snippets < 0:
        raise ValueError(f"n_snippets must be >= 0, got {n_snippets}")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    k = np.arange(n_snippets + 1, dtype=np.float64) * snippet_frames / fps
    return k[:-1], k[1:]


def scores_from_features(features: np.ndarray, scorer: VadCLIP | FeatureScorer,
                         class_names: list[str] | None, *, video: str, content_hash: str, fps: float,
                         n_frames: int, samples_per_snippet: int,
                         params: DetectionParams = DetectionParams(),
                         extras: dict | None = None) -> VideoScores:
    """Score one video's [N, D] snippet features (N = n_frames // 16) and cut segments.

    No video is read: this re-scores cached features with another vocabulary.
    """
    scorer = as_scorer(scorer)
    names = scorer.vocabulary(class_names)
    n = int(np.asarray(features).shape[0])
    if n_frames < SNIPPET_FRAMES:
        raise ValueError(f"{video}: needs at least {SNIPPET_FRAMES} frames (one snippet), it has {n_frames}")
    if n != n_frames // SNIPPET_FRAMES:
        raise ValueError(f"{video}: {n} snippet features for {n_frames} frames "
                         f"(expected {n_frames // SNIPPET_FRAMES} snippets of {SNIPPET_FRAMES} frames)")
    result = scorer.score(features, names)
    start_s, end_s = snippet_times(n, fps)
    extras = dict(extras or {})
    if result.random_weights:
        extras["warning"] = RANDOM_WEIGHTS_WARNING
    scores = VideoScores(
        video=video, content_hash=content_hash, fps=float(fps), n_frames=int(n_frames),
        duration_s=n_frames / fps, snippet_frames=SNIPPET_FRAMES,
        samples_per_snippet=int(samples_per_snippet), snippet_start_s=start_s, snippet_end_s=end_s,
        coarse_c=np.asarray(result.coarse_c, np.float32), coarse_a=np.asarray(result.coarse_a, np.float32),
        fine=np.asarray(result.fine, np.float32), class_names=list(result.class_names), segments=[],
        params=params, model=scorer.description, random_weights=bool(result.random_weights),
        extras=extras,
    )
    return redetect(scores, params)


def redetect(scores: VideoScores, params: DetectionParams) -> VideoScores:
    """The same scores with segments cut again under new detection parameters (no model call)."""
    segments = detect_segments(scores.coarse(params.branch), scores.fine, scores.class_names,
                               scores.snippet_start_s, scores.snippet_end_s, params, scores.fps,
                               scores.snippet_frames)
    return replace(scores, segments=segments, params=params)


def _clip_device(clip_model: nn.Module) -> torch.device:
    return next(clip_model.parameters()).device


def score_video(path: str | Path, model: VadCLIP | FeatureScorer, class_names: list[str] | None = None,
                *, params: DetectionParams = DetectionParams(),
                settings: ExtractSettings = ExtractSettings(), cache: FeatureCache | None = None,
                device: str | torch.device | None = None, max_duration_s: float | None = None,
                on_progress: ProgressFn | None = None, video_name: str | None = None) -> VideoScores:
    """Score a video file: the per-snippet curves, fine-grained probabilities and segments.

    `model` is a VadCLIP model or a `FeatureScorer` (e.g. `FeatureScorer.zero_shot`);
    `class_names` defaults to its vocabulary (a VadCLIP model's preset classes). Features are
    read from / written to `cache` when given (a hit skips decoding). `device` is where CLIP
    encodes frames (None: the CLIP's own device). `video_name` is the name stored in the result
    (default: the file name). Raises `VideoError` (a ValueError) for files that are not videos,
    videos longer than `max_duration_s`, or shorter than one 16-frame snippet; ValueError for a
    bad vocabulary, before anything is decoded.
    """
    progress = on_progress or (lambda stage, fraction: None)
    scorer = as_scorer(model)
    names = scorer.vocabulary(class_names)
    device = _clip_device(scorer.clip_model) if device is None else device
    timings = {}

    t0 = time.perf_counter()
    progress("probe", 0.0)
    info = probe(path)
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise VideoError(path, f"the video lasts {info.duration_s:.1f} s, longer than the limit of "
                               f"{max_duration_s:g} s")
    if info.n_frames < SNIPPET_FRAMES:
        raise VideoError(path, f"needs at least {SNIPPET_FRAMES} frames (one snippet), "
                               f"it has {info.n_frames}")
    digest = content_hash(path)
    backbone = backbone_id(scorer.clip_info, scorer.clip_model) if cache is not None else None
    progress("probe", 1.0)
    timings["probe_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("encode", 0.0)
    features, cache_hit = cached_video_features(
        scorer.clip_model, scorer.clip_info, path, settings=settings, device=device, cache=cache,
        info=info, content_hash=digest, backbone=backbone,
        on_progress=lambda done, total: progress("encode", done / max(total, 1)),
    )
    progress("encode", 1.0)
    timings["encode_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("score", 0.0)
    cache_key = None
    if cache is not None:      # lets the app re-score from `cache.get(key)` without decoding
        cache_key = FeatureCache.key(digest, backbone, settings)
    extras = {
        "cache_hit": cache_hit, "cache_key": cache_key,
        "extract_settings": asdict(settings), "video_backend": info.backend,
        "width": info.width, "height": info.height, "codec": info.codec,
    }
    snippet_features = features.features
    if snippet_features.ndim == 3:           # ten-crop [10, N, D]: score the centre crop, as the
        snippet_features = snippet_features[0]   # official test lists use one crop per video
    scores = scores_from_features(
        snippet_features, scorer, names, video=video_name or Path(path).name, content_hash=digest,
        fps=info.fps, n_frames=info.n_frames, samples_per_snippet=settings.samples_per_snippet,
        params=params, extras=extras,
    )
    scores.extras["timings"] = {**timings, "score_s": time.perf_counter() - t0}
    progress("score", 1.0)
    return scores


# ---------------------------------------------------------------------------------------------
# CLI: python -m vadclip score VIDEO ...


def format_summary(scores: VideoScores) -> str:
    """A short human-readable summary of a result and its segment table."""
    lines = []
    if scores.random_weights:
        bar = "!" * 78
        lines += [bar, f"!!! {RANDOM_WEIGHTS_WARNING}", bar]
    p = scores.params
    timings = scores.extras.get("timings", {})
    lines += [
        f"video: {scores.video}  {scores.n_frames} frames at {scores.fps:.3f} fps, "
        f"{scores.duration_s:.2f} s, {scores.n_snippets} snippets of {scores.snippet_frames} frames "
        f"({scores.samples_per_snippet} encoded per snippet)",
        f"model: {scores.model}",
        f"classes: {', '.join(scores.class_names)}",
        f"detection: branch {p.branch}, threshold {p.threshold:g}, min gap {p.min_gap_s:g} s, "
        f"min duration {p.min_duration_s:g} s",
    ]
    if "cache_hit" in scores.extras:
        how = "from the cache" if scores.extras["cache_hit"] else "extracted"
        lines.append(f"features: {how} ({timings.get('encode_s', 0.0):.1f} s), "
                     f"scoring {timings.get('score_s', 0.0):.2f} s")
    coarse = scores.coarse(p.branch)
    lines.append(f"score ({p.branch} branch): max {coarse.max():.3f}, mean {coarse.mean():.3f}")
    if not scores.segments:
        lines.append("no anomalous segments")
        return "\n".join(lines)
    lines.append(f"{len(scores.segments)} anomalous segment(s):")
    lines.append(f"{'#':>3}  {'start s':>8}  {'end s':>8}  {'frames':>13}  {'label':<16} "
                 f"{'conf':>5}  {'peak':>5}  {'mean':>5}")
    for i, s in enumerate(scores.segments, 1):
        lines.append(f"{i:>3}  {s.start_s:>8.2f}  {s.end_s:>8.2f}  {f'{s.start_frame}-{s.end_frame}':>13}  "
                     f"{s.label[:16]:<16} {s.confidence:>5.2f}  {s.peak_score:>5.2f}  {s.mean_score:>5.2f}")
    return "\n".join(lines)


def read_class_names(classes: str | None, classes_file: str | None) -> list[str] | None:
    """Class names from a comma-separated string or a file with one name per line."""
    if classes is not None and classes_file is not None:
        raise ValueError("give either --classes or --classes-file, not both")
    if classes is not None:
        return [c.strip() for c in classes.split(",")]
    if classes_file is not None:
        try:
            text = Path(classes_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the class file {classes_file}: {e}") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score a video file and list its anomalous segments",
        description="Score a video with a VadCLIP checkpoint (or CLIP zero-shot): per-snippet "
                    "anomaly curves, class probabilities and detected segments.")
    p.add_argument("video", help="video file (mp4, mkv, avi, mov, webm, ...)")
    p.add_argument("--checkpoint", help="official .pth, our .safetensors, or a training run folder")
    p.add_argument("--preset", default="xd", choices=["xd", "ucf"],
                   help="preset of an official checkpoint, and the default vocabulary (default xd)")
    p.add_argument("--zero-shot", action="store_true",
                   help="CLIP zero-shot scoring instead of a trained model (uses the checkpoint's "
                        "CLIP when --checkpoint is given, else --clip)")
    p.add_argument("--clip", default=None,
                   help="CLIP for --zero-shot without a checkpoint: openai (default), random, a file, NAME:TAG")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--classes", help='comma-separated vocabulary, normal class first: "normal,fighting,..."')
    vocab.add_argument("--classes-file", help="vocabulary file, one class name per line, normal first")
    p.add_argument("--threshold", type=float, default=DetectionParams.threshold,
                   help="flag snippets whose coarse score is >= this (default 0.5)")
    p.add_argument("--branch", default=DetectionParams.branch, choices=["c", "a"],
                   help="coarse curve to threshold: c (C-branch, default) or a (1 - P(normal))")
    p.add_argument("--min-gap", type=float, default=DetectionParams.min_gap_s,
                   help="merge segments closer than this many seconds (default 1)")
    p.add_argument("--min-duration", type=float, default=DetectionParams.min_duration_s,
                   help="drop segments shorter than this many seconds (default 1)")
    p.add_argument("--samples-per-snippet", type=int, default=ExtractSettings.samples_per_snippet,
                   help="frames encoded per 16-frame snippet: 16 (official), 8, 4, 2 or 1 (faster)")
    p.add_argument("--cache-dir", help="feature cache folder (re-scoring the same video skips decoding)")
    p.add_argument("--max-duration", type=float, default=None, help="refuse videos longer than this (s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    p.add_argument("--json", help="write the full result as JSON to this file ('-': print it)")
    p.set_defaults(func=_cli)


def _load_scorer(args: argparse.Namespace, device: str) -> FeatureScorer:
    from .checkpoint import get_tokenizer, load_model
    from .clip_backbone import load_clip

    preset_names = list(get_preset(args.preset).model.class_names)
    if args.checkpoint and args.clip:
        raise ValueError("--clip is only for --zero-shot without --checkpoint (a checkpoint has its own CLIP)")
    if args.checkpoint:
        model = load_model(args.checkpoint, preset=args.preset, device=device)
        if not args.zero_shot:
            return FeatureScorer.from_vadclip(model)
        return FeatureScorer.zero_shot(model.clipmodel, model.clip_info, get_tokenizer(),
                                       default_class_names=preset_names)
    if args.zero_shot:
        clip_model, info = load_clip(args.clip or "openai", device=device)
        return FeatureScorer.zero_shot(clip_model, info, get_tokenizer(), default_class_names=preset_names)
    raise ValueError("give --checkpoint CKPT (a trained model) or --zero-shot")


def _cli(args: argparse.Namespace) -> int:
    from .utils import atomic_write, resolve_device

    params = DetectionParams(threshold=args.threshold, branch=args.branch, min_gap_s=args.min_gap,
                             min_duration_s=args.min_duration)
    settings = ExtractSettings(samples_per_snippet=args.samples_per_snippet)
    names = read_class_names(args.classes, args.classes_file)
    device = resolve_device(args.device)
    scorer = _load_scorer(args, device)
    cache = FeatureCache(args.cache_dir) if args.cache_dir else None
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout

    def show_progress(stage: str, fraction: float) -> None:
        if sys.stderr.isatty():
            print(f"\r{stage}: {fraction:6.1%}", end="\n" if fraction >= 1 else "", file=sys.stderr,
                  flush=True)

    scores = score_video(args.video, scorer, names, params=params, settings=settings, cache=cache,
                         device=device, max_duration_s=args.max_duration, on_progress=show_progress)
    print(format_summary(scores), file=out)
    if to_stdout:
        print(scores.to_json())
    elif args.json:
        with atomic_write(args.json) as tmp:
            Path(tmp).write_text(scores.to_json())
        print(f"scores written to {args.json}", file=out)
    return 0
