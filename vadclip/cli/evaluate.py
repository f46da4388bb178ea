"""`vadclip eval`: official metrics of a checkpoint on a test feature list."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import PRESETS
from ..evaluate import evaluate, format_table, load_eval_set
from ..factory import load_vadclip_model
from ..utils import atomic_write, resolve_device


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on a test feature list",
                              description="Official AUC / AP / AnoAUC (both branches) and detection mAP.")
    p.add_argument("--checkpoint", required=True,
                   help="official .pth, our .safetensors, a run folder, or hf://OWNER/REPO/FILE[@REV]")
    p.add_argument("--preset", default="xd", choices=sorted(PRESETS))
    p.add_argument("--test-list", required=True, help="CSV path,label (paths relative to the CSV)")
    p.add_argument("--annotations", required=True, action="append",
                   help="official annotation file (repeatable; XD: annotations_multiclasses.txt)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    eval_set = load_eval_set(args.test_list, args.annotations, preset=args.preset)
    model = load_vadclip_model(args.checkpoint, preset=args.preset, device=resolve_device(args.device))
    result = evaluate(model, eval_set)
    for w in eval_set.warnings:
        print("note:", w)
    print(f"{result.n_videos} videos, checkpoint {args.checkpoint}, preset {args.preset}")
    print(format_table(result))
    if args.json:
        with atomic_write(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result.as_dict(), indent=2))
        print(f"metrics written to {args.json}")
    return 0
