"""`vadclip reproduce`: the official evaluation of a released checkpoint on the authors' released
features, printed beside the numbers the paper reports (`paper_numbers`).

    vadclip reproduce --method vadclip --preset xd --checkpoint model_xd.pth --features-root XDTestClipFeatures \
        --test-list list/xd_CLIP_rgbtest.csv --annotations annotations.txt --annotations annotations_multiclasses.txt
    vadclip reproduce --method anomalyclip --preset xd --checkpoint last.ckpt --centroid ncentroid.pt \
        --features-root features --test-list Anomaly_Test.txt \
        --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt

The test-time improvements of `improvements.TestTimeOptions` (VadCLIP only) are opt-in flags, shared
with `vadclip eval` (`add_test_time_flags` / `test_time_options`); without them the path is the official one.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..improvements import RESAMPLE_METHODS, SMOOTH_KINDS, TestTimeOptions
from ..methods import METHODS
from ..paper_numbers import format_comparison, paper_numbers
from ..utils import atomic_write, resolve_device


# --------------------------------------------------------------------------- test-time options (eval, reproduce)

def add_test_time_flags(parser: argparse.ArgumentParser) -> None:
    """The opt-in test-time improvements (default off = the official test path)."""
    g = parser.add_argument_group("test-time improvements (VadCLIP; off by default = official)")
    g.add_argument("--resample", choices=RESAMPLE_METHODS,
                   help="score a video longer than the model's length as one resampled clip, mapped back "
                        "(DeSC 2026 test-time resampling; improvements.score_features_resampled)")
    g.add_argument("--resample-short", action="store_true",
                   help="with --resample, also stretch videos shorter than the model's length")
    g.add_argument("--smooth", type=int, default=1, metavar="WIDTH",
                   help="centred moving average of each video's scores over WIDTH snippets, odd "
                        "(score smoothing as in LEC-VAD / PEL4VAD; improvements.smooth_scores; 1 = off)")
    g.add_argument("--smooth-kind", choices=SMOOTH_KINDS, default="mean", help="smoothing window shape")


CHECKPOINT_HELP = ("; repeat it (or give a `--seeds` output folder) to average several checkpoints' scores "
                   "(VadCLIP checkpoint ensemble, as DeSC 2026 ensembles streams; improvements.ensemble_scores)")


def load_members(checkpoints: list[str], preset: str, device: str) -> list:
    """The VadCLIP models of a repeatable ``--checkpoint`` (`factory.load_vadclip_members`: a `--seeds`
    folder counts as its runs); says so when they form an ensemble."""
    from ..factory import load_vadclip_members

    models = load_vadclip_members(checkpoints, preset=preset, device=resolve_device(device))
    if len(models) > 1:
        print(f"checkpoint ensemble of {len(models)}: {', '.join(checkpoints)}")
    return models


def single_checkpoint(checkpoints: list[str]) -> str:
    """The one checkpoint of a method without ensembles (AnomalyCLIP); OptionError for several."""
    if len(checkpoints) != 1:
        raise OptionError(f"{len(checkpoints)} checkpoints given; ensembles are a VadCLIP option, "
                          "give AnomalyCLIP one --checkpoint")
    return checkpoints[0]


def test_time_options(args: argparse.Namespace) -> TestTimeOptions:
    """The `TestTimeOptions` of the parsed flags; OptionError for impossible values."""
    if args.resample_short and args.resample is None:
        raise OptionError("--resample-short needs --resample bins|linear")
    try:
        return TestTimeOptions(resample=args.resample, resample_short=args.resample_short,
                               smooth_width=args.smooth, smooth_kind=args.smooth_kind)
    except ValueError as err:
        raise OptionError(f"test-time options: {err}") from None


# --------------------------------------------------------------------------- the command

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="official evaluation of a released checkpoint, beside the paper's numbers",
        description="Run the official evaluation of --method on the authors' released features and test files "
                    "and print the paper's reported numbers beside ours (see the README, 'Reproduce the "
                    "papers' tables', for which official file is which).")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--preset", required=True, choices=("xd", "ucf", "sht"),
                   help="vadclip: xd, ucf; anomalyclip: xd, ucf, sht")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="vadclip: model_xd.pth / model_ucf.pth (or ours); anomalyclip: last.ckpt (or ours)"
                        + CHECKPOINT_HELP)
    p.add_argument("--features-root", required=True,
                   help="folder holding the downloaded features; listed files are found by name under it")
    p.add_argument("--test-list", required=True,
                   help="vadclip: the official test CSV (XD: list/xd_CLIP_rgbtest.csv); anomalyclip: Anomaly_Test.txt")
    p.add_argument("--annotations", required=True, action="append",
                   help="vadclip: the official annotation file(s), repeatable; anomalyclip: "
                        "Temporal_Anomaly_Annotation_for_Testing_Videos.txt")
    p.add_argument("--centroid", help="anomalyclip: the run's ncentroid.pt (default: one beside the checkpoint)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write our metrics and the paper's numbers to this JSON file")
    add_test_time_flags(p)
    p.set_defaults(run=run)


def reproduce_vadclip(args: argparse.Namespace) -> dict:
    """Official VadCLIP metrics (`evaluate.EvalResult.as_dict`), with any test-time options."""
    from ..evaluate import format_table, load_eval_set
    from ..improvements import evaluate_with_options

    if args.preset not in ("xd", "ucf"):
        raise OptionError(f"--preset {args.preset}: VadCLIP has the presets xd and ucf")
    if args.centroid:
        raise OptionError("--centroid is only for AnomalyCLIP checkpoints")
    options = test_time_options(args)
    eval_set = load_eval_set(args.test_list, args.annotations, preset=args.preset, features_root=args.features_root)
    models = load_members(args.checkpoint, args.preset, args.device)
    result = evaluate_with_options(models, eval_set, options)
    for warning in eval_set.warnings:
        print("note:", warning)
    shown = "official test path" if options.official else f"test-time options {options}"
    print(f"{result.n_videos} videos, checkpoint {' + '.join(args.checkpoint)}, preset {args.preset}, {shown}")
    print(format_table(result))
    return result.as_dict()


def reproduce_anomalyclip(args: argparse.Namespace) -> dict:
    """Official AnomalyCLIP frame metrics (AUC / AP, class-wise mAUC / mAP) on the test list
    (`vadclip eval`'s AnomalyCLIP path: `cli.evaluate.evaluate_anomalyclip`)."""
    from ..anomalyclip.detector import AnomalyCLIPDetector
    from ..factory import load_model
    from .evaluate import evaluate_anomalyclip, format_anomalyclip_table

    if not test_time_options(args).official:
        raise OptionError("--resample / --smooth are VadCLIP test-time options")
    checkpoint = single_checkpoint(args.checkpoint)
    if len(args.annotations) != 1:
        raise OptionError("give one --annotations file (Temporal_Anomaly_Annotation_for_Testing_Videos.txt)")
    loaded = load_model(checkpoint, preset=args.preset, device=resolve_device(args.device),
                        centroid=args.centroid)
    if not isinstance(loaded.detector, AnomalyCLIPDetector):
        raise OptionError(f"{checkpoint}: a {loaded.kind} checkpoint, not an AnomalyCLIP one")
    model = loaded.detector.model
    metrics, n_videos, n_frames = evaluate_anomalyclip(model, args.test_list, args.annotations[0],
                                                       args.features_root)
    result = {"n_videos": n_videos, "n_frames": n_frames, "class_names": list(model.config.class_names),
              "random_weights": model.clip_info.random_weights, **metrics}
    print(f"{n_videos} videos, {n_frames} frames, checkpoint {checkpoint}, preset {args.preset}")
    print(format_anomalyclip_table(result))
    return result


def run(args: argparse.Namespace) -> int:
    ours = reproduce_vadclip(args) if args.method == "vadclip" else reproduce_anomalyclip(args)
    paper = paper_numbers(args.method, args.preset)
    print()
    print(format_comparison(ours, paper))
    if args.json:
        checkpoint = args.checkpoint[0] if len(args.checkpoint) == 1 else list(args.checkpoint)
        record = {"method": args.method, "preset": args.preset, "checkpoint": checkpoint, "ours": ours,
                  "paper": {k: {"label": v.label, "value": v.value, "source": v.source} for k, v in paper.items()}}
        with atomic_write(args.json) as tmp:
            Path(tmp).write_text(json.dumps(_finite(record), indent=2, allow_nan=False))
        print(f"written to {args.json}")
    return 0


def _finite(value):
    """JSON values: NaN / Inf -> None, numpy numbers -> Python numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
