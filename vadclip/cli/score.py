"""`vadclip score VIDEO`: score a video file and list its anomalous segments.

The JSON (`--json`) is `VideoScores.to_dict` for every model: one row per `snippet_frames`
frames (VadCLIP: 16-frame snippets, rows at a stride of 16 frames; AnomalyCLIP: one row per
frame, ``snippet_frames`` 1, curve ``coarse_score``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import get_preset
from ..constants import RANDOM_WEIGHTS_WARNING
from ..detectors import Detector, ZeroShotDetector
from ..errors import OptionError, UserError
from ..factory import PRESET_CHOICES, ZERO_SHOT, load_model
from ..features import ExtractSettings, FeatureCache
from ..results import DetectionParams, VideoScores
from ..scoring import score_video_features, video_features
from ..utils import atomic_write, resolve_device


def format_summary(scores: VideoScores) -> str:
    """A short human-readable summary of a result and its segment table."""
    lines = []
    if scores.random_weights:
        bar = "!" * 78
        lines += [bar, f"!!! {RANDOM_WEIGHTS_WARNING}", bar]
    p = scores.params
    timings = scores.extras.get("timings", {})
    rows = (f"{scores.n_snippets} snippets of {scores.snippet_frames} frames "
            f"({scores.samples_per_snippet} encoded per snippet)" if scores.snippet_frames > 1
            else f"{scores.n_snippets} rows, one per frame")
    lines += [
        f"video: {scores.video}  {scores.n_frames} frames at {scores.fps:.3f} fps, "
        f"{scores.duration_s:.2f} s, {rows}",
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
        raise OptionError("give either --classes or --classes-file, not both")
    if classes is not None:
        return [c.strip() for c in classes.split(",")]
    if classes_file is not None:
        try:
            text = Path(classes_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read the class file {classes_file}: {e}") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def register(subparsers) -> None:
    defaults = DetectionParams()
    p = subparsers.add_parser(
        "score", help="score a video file and list its anomalous segments",
        description="Score a video with a trained checkpoint (VadCLIP or AnomalyCLIP) or CLIP "
                    "zero-shot: anomaly curves per snippet (VadCLIP) or per frame (AnomalyCLIP), "
                    "class probabilities and detected segments.")
    p.add_argument("video", help="video file (mp4, mkv, avi, mov, webm, ...)")
    p.add_argument("--checkpoint",
                   help="official VadCLIP .pth or AnomalyCLIP last.ckpt, our .safetensors, a run folder, "
                        "a `train --seeds` folder (the ensemble of its runs), or hf://OWNER/REPO/FILE[@REV]")
    p.add_argument("--preset", default="auto", choices=PRESET_CHOICES,
                   help="preset of an official checkpoint (auto: from its shapes; sht is AnomalyCLIP "
                        "only), and the default vocabulary of --zero-shot (auto: xd)")
    p.add_argument("--centroid", default=None, metavar="FILE",
                   help="normal centroid of an official AnomalyCLIP checkpoint (its run's ncentroid.pt, "
                        "or a [512] .npy); default: ncentroid.pt beside the checkpoint")
    p.add_argument("--zero-shot", action="store_true",
                   help="CLIP zero-shot scoring instead of a trained model (uses the checkpoint's "
                        "CLIP when --checkpoint is given, else --clip)")
    p.add_argument("--clip", default=None,
                   help="CLIP for --zero-shot without a checkpoint: openai (default), random, a file, NAME:TAG")
    vocab = p.add_mutually_exclusive_group()
    vocab.add_argument("--classes", help='comma-separated vocabulary, normal class first: "normal,fighting,..."')
    vocab.add_argument("--classes-file", help="vocabulary file, one class name per line, normal first")
    p.add_argument("--threshold", type=float, default=defaults.threshold,
                   help=f"flag snippets whose coarse score is >= this (default {defaults.threshold:g})")
    p.add_argument("--branch", default=defaults.branch,
                   help="coarse curve to threshold: VadCLIP c (C-branch, its default) or a "
                        "(1 - P(normal)); zero-shot has a only; AnomalyCLIP has score only "
                        "(default: the model's first curve)")
    p.add_argument("--min-gap", type=float, default=defaults.min_gap_s,
                   help=f"merge segments closer than this many seconds (default {defaults.min_gap_s:g})")
    p.add_argument("--min-duration", type=float, default=defaults.min_duration_s,
                   help=f"drop segments shorter than this many seconds (default {defaults.min_duration_s:g})")
    p.add_argument("--samples-per-snippet", type=int, default=ExtractSettings.samples_per_snippet,
                   help="frames encoded per 16-frame snippet: 16 (official), 8, 4, 2 or 1 (faster); "
                        "per-frame models (AnomalyCLIP) always encode every frame")
    p.add_argument("--cache-dir", help="feature cache folder (re-scoring the same video skips decoding)")
    p.add_argument("--max-duration", type=float, default=None, help="refuse videos longer than this (s)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    p.add_argument("--json", help="write the full result as JSON to this file ('-': print it)")
    p.set_defaults(run=run)


def load_detector(args: argparse.Namespace, device: str) -> Detector:
    """The detector the options ask for (a checkpoint's, or zero-shot on a CLIP)."""
    if args.checkpoint and args.clip:
        raise OptionError("--clip is only for --zero-shot without --checkpoint (a checkpoint has its own CLIP)")
    if args.centroid and not args.checkpoint:
        raise OptionError("--centroid goes with an official AnomalyCLIP --checkpoint")
    if args.checkpoint:
        loaded = load_model(args.checkpoint, preset=args.preset, device=device, centroid=args.centroid)
        if not args.zero_shot:
            return loaded.detector
        names = get_preset("xd" if args.preset == "auto" else args.preset).model.class_names
        return ZeroShotDetector(loaded.detector.clip_model, loaded.detector.clip_info,
                                default_class_names=list(names))
    if args.zero_shot:
        return load_model(ZERO_SHOT, preset=args.preset, clip=args.clip, device=device).detector
    raise OptionError("give --checkpoint CKPT (a trained model) or --zero-shot")


def run(args: argparse.Namespace) -> int:
    params = DetectionParams(threshold=args.threshold, branch=args.branch, min_gap_s=args.min_gap,
                             min_duration_s=args.min_duration)
    settings = ExtractSettings(samples_per_snippet=args.samples_per_snippet)
    names = read_class_names(args.classes, args.classes_file)
    device = resolve_device(args.device)
    detector = load_detector(args, device)
    names = detector.vocabulary(names)          # checked before any video is decoded
    cache = FeatureCache(args.cache_dir) if args.cache_dir else None
    to_stdout = args.json == "-"
    out = sys.stderr if to_stdout else sys.stdout

    def show_progress(stage: str, fraction: float) -> None:
        if sys.stderr.isatty():
            print(f"\r{stage}: {fraction:6.1%}", end="\n" if fraction >= 1 else "", file=sys.stderr,
                  flush=True)

    features = video_features(args.video, detector, settings=settings, cache=cache, device=device,
                              max_duration_s=args.max_duration, on_progress=show_progress)
    scores = score_video_features(features, detector, names, params, on_progress=show_progress)
    print(format_summary(scores), file=out)
    if to_stdout:
        print(scores.to_json())
    elif args.json:
        with atomic_write(args.json) as tmp:
            Path(tmp).write_text(scores.to_json())
        print(f"scores written to {args.json}", file=out)
    return 0
