"""`vadclip extract`: CLIP snippet (VadCLIP) or per-frame (AnomalyCLIP) features of videos in
the official .npy + CSV format."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..clip_backbone import DEFAULT_CLIP
from ..errors import UserError
from ..extract import LIST_NAME, extract
from ..constants import SNIPPET_FRAMES
from ..features import PRECISIONS, SAMPLES_PER_SNIPPET, ExtractSettings, FeatureCache


def register(subparsers) -> None:
    defaults = ExtractSettings()
    p = subparsers.add_parser(
        "extract", help="extract CLIP snippet features of videos (official .npy + CSV format)",
        description="Extract CLIP snippet features (one per 16 frames) of every video in INPUT "
                    "into DIR as <name>.npy (or <name>__0..9.npy with --ten-crop) plus a "
                    "path,label CSV. --per-frame: one row per frame instead ([F, 512], "
                    "AnomalyCLIP's features). Resumable; runs sharded under torchrun.")
    p.add_argument("input", metavar="INPUT",
                   help="a folder (searched recursively) or a text file: one video per line, "
                        "optionally 'path,label'")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--clip", default=DEFAULT_CLIP, metavar="SRC",
                   help="CLIP: 'openai' (default), 'random', a checkpoint file, or NAME:TAG")
    p.add_argument("--samples-per-snippet", type=int, default=defaults.samples_per_snippet,
                   choices=SAMPLES_PER_SNIPPET, metavar="N",
                   help="frames encoded per 16-frame snippet: 16 (official), 8, 4, 2, 1")
    p.add_argument("--per-frame", action="store_true",
                   help="one feature row per frame (every frame encoded, AnomalyCLIP's layout) "
                        "instead of one per 16-frame snippet")
    p.add_argument("--ten-crop", action="store_true",
                   help="10 crops per frame -> <name>__0..9.npy (__0 = centre crop)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"images per CLIP batch (default {defaults.batch_size})")
    p.add_argument("--precision", default=defaults.precision, choices=PRECISIONS,
                   help="auto = fp16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--label", default=None,
                   help="label for videos without one in the list (default: from the XD name or "
                        "UCF class folder, else Normal)")
    p.add_argument("--list", default=LIST_NAME, dest="list_name", metavar="NAME",
                   help=f"name of the CSV list written in DIR (default {LIST_NAME})")
    p.add_argument("--cache", default=None, metavar="CACHE_DIR",
                   help="also keep features in this feature cache (keyed by video content)")
    p.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"],
                   help="video decoder (auto: decord when it reads the file, else PyAV; PyAV "
                        "uses less memory and is faster with --samples-per-snippet < 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if Path(args.list_name).name != args.list_name or not args.list_name:
        raise UserError(f"--list must be a file name, got {args.list_name!r}")
    settings = ExtractSettings(samples_per_snippet=args.samples_per_snippet, ten_crop=args.ten_crop,
                               batch_size=args.batch_size, precision=args.precision,
                               frames_per_row=1 if args.per_frame else SNIPPET_FRAMES)
    cache = FeatureCache(args.cache) if args.cache else None
    summary = extract(args.input, args.out, clip=args.clip, settings=settings, device=args.device,
                      label=args.label, list_name=args.list_name, cache=cache,
                      progress=not args.no_progress, backend=args.backend)
    if summary.list_path is not None or summary.failed:
        print(summary.describe(), file=sys.stderr if summary.failed else sys.stdout)
    return 0 if summary.ok else 1
