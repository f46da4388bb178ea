"""`vadclip eval`: official metrics of a checkpoint on a test list.

- VadCLIP (`--method vadclip`): a ``path,label`` CSV of snippet features and the official
  annotation files; frame AUC / AP / AnoAUC of both branches and the detection mAP.
- AnomalyCLIP (`--method anomalyclip`): an official ``PATH START END LABEL`` test list of
  per-frame features (``<features root>/<PATH>.npy``) and its temporal annotation
  (``NAME CLASS s1 e1 ...``); the official frame metrics (`anomalyclip.frame_metrics`: AUC-ROC,
  AUC-PR, per-class AUROC / AUPR and their means over the abnormal classes, the Youden threshold,
  top-1 / top-5 accuracy per class) over every frame of the list.

`--method auto` (default) picks AnomalyCLIP for an AnomalyCLIP checkpoint (official ``.ckpt`` or
ours), else VadCLIP.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

from ..constants import RANDOM_WEIGHTS_WARNING
from ..errors import OptionError
from ..evaluate import format_table, load_eval_set
from ..factory import HF_PREFIX, PRESET_CHOICES, checkpoint_kind, hf_download, load_model
from ..formats import DataError
from ..improvements import evaluate_with_options
from .reproduce import CHECKPOINT_HELP, add_test_time_flags, load_members, single_checkpoint, test_time_options
from ..utils import atomic_write, resolve_device

METHODS = ("auto", "vadclip", "anomalyclip")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on a test list (VadCLIP or AnomalyCLIP metrics)",
        description="VadCLIP: official AUC / AP / AnoAUC (both branches) and detection mAP. "
                    "AnomalyCLIP: the official frame metrics (AUC-ROC, AUC-PR, per-class AUROC / AUPR, "
                    "top-1 / top-5 accuracy).")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="official VadCLIP .pth or AnomalyCLIP last.ckpt, our .safetensors, a run folder, "
                        "or hf://OWNER/REPO/FILE[@REV]" + CHECKPOINT_HELP)
    p.add_argument("--method", default="auto", choices=METHODS,
                   help="auto (default): anomalyclip for an AnomalyCLIP checkpoint, else vadclip")
    p.add_argument("--preset", default=None, choices=PRESET_CHOICES,
                   help="VadCLIP: the test list's preset (default xd); AnomalyCLIP: the checkpoint's "
                        "(default auto: from its shapes)")
    p.add_argument("--centroid", default=None, metavar="FILE",
                   help="AnomalyCLIP: normal centroid of an official checkpoint (ncentroid.pt or a [512] "
                        ".npy; default: ncentroid.pt beside the checkpoint)")
    p.add_argument("--test-list", required=True,
                   help="VadCLIP: CSV path,label (paths relative to the CSV); AnomalyCLIP: the official "
                        "'PATH START END LABEL' list (e.g. Anomaly_Test.txt)")
    p.add_argument("--annotations", required=True, action="append",
                   help="official annotation file (VadCLIP: repeatable, XD: annotations_multiclasses.txt; "
                        "AnomalyCLIP: the one temporal annotation 'NAME CLASS s1 e1 ...')")
    p.add_argument("--features-root", default=None, metavar="DIR",
                   help="AnomalyCLIP: folder of <PATH>.npy per-frame features (default: the test list's "
                        "folder); VadCLIP: listed files that do not exist are found by name under it")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    add_test_time_flags(p)
    p.set_defaults(run=run)


def checkpoint_method(checkpoint: str) -> str:
    """"anomalyclip" for an AnomalyCLIP checkpoint (official or ours), else "vadclip"."""
    path = hf_download(checkpoint) if checkpoint.startswith(HF_PREFIX) else Path(checkpoint)
    kind = checkpoint_kind(path) if path.exists() else None
    return "anomalyclip" if kind is not None and kind.startswith("anomalyclip") else "vadclip"


def run(args: argparse.Namespace) -> int:
    method = checkpoint_method(args.checkpoint[0]) if args.method == "auto" else args.method
    if method == "anomalyclip":
        if not test_time_options(args).official:
            raise OptionError("--resample / --smooth are VadCLIP test-time options")
        result = run_anomalyclip(args)
    else:
        if args.centroid:
            raise OptionError("--centroid is only for AnomalyCLIP checkpoints")
        result = run_vadclip(args)
    if args.json:
        with atomic_write(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2))
        print(f"metrics written to {args.json}")
    return 0


def run_vadclip(args: argparse.Namespace) -> dict:
    preset = args.preset or "xd"
    if preset == "auto" or preset == "sht":
        raise OptionError(f"VadCLIP evaluation needs the test list's preset (xd or ucf), got {preset!r}")
    eval_set = load_eval_set(args.test_list, args.annotations, preset=preset, features_root=args.features_root)
    options = test_time_options(args)
    models = load_members(args.checkpoint, preset, args.device)
    result = evaluate_with_options(models, eval_set, options)     # one model, default options: the official `evaluate`
    for w in eval_set.warnings:
        print("note:", w)
    print(f"{result.n_videos} videos, checkpoint {' + '.join(args.checkpoint)}, preset {preset}")
    print(format_table(result))
    return result.as_dict()


def run_anomalyclip(args: argparse.Namespace) -> dict:
    from ..anomalyclip.detector import AnomalyCLIPDetector

    if len(args.annotations) != 1:
        raise OptionError("AnomalyCLIP evaluation reads one temporal annotation file (--annotations once)")
    checkpoint = single_checkpoint(args.checkpoint)
    loaded = load_model(checkpoint, preset=args.preset or "auto", device=resolve_device(args.device),
                        centroid=args.centroid)
    if not isinstance(loaded.detector, AnomalyCLIPDetector):
        raise OptionError(f"{checkpoint}: a {loaded.kind} checkpoint, not an AnomalyCLIP one "
                          "(use --method vadclip)")
    model = loaded.detector.model
    root = args.features_root or os.path.dirname(os.path.abspath(args.test_list))
    metrics, n_videos, n_frames = evaluate_anomalyclip(model, args.test_list, args.annotations[0], root)
    result = {"method": "anomalyclip", "checkpoint": checkpoint, "preset": model.config.preset,
              "n_videos": n_videos, "n_frames": n_frames, "class_names": list(model.config.class_names),
              "random_weights": model.clip_info.random_weights, **metrics}
    print(f"{n_videos} videos, {n_frames} frames, checkpoint {checkpoint}, AnomalyCLIP preset "
          f"{model.config.preset}")
    print(format_anomalyclip_table(result))
    return result


def evaluate_anomalyclip(model, test_list: str | os.PathLike, annotation: str | os.PathLike,
                         features_root: str | os.PathLike) -> tuple[dict, int, int]:
    """(official frame metrics as JSON values (NaN -> None), videos, frames) of an AnomalyCLIP
    model on an official test list. Every problem of the inputs is one `DataError`, raised
    before any scoring."""
    from ..anomalyclip.lists import (feature_rows, frame_labels, missing_annotations, read_temporal_annotations,
                                     read_video_list)
    from ..anomalyclip.train import TrainData, evaluate as evaluate_frames

    cfg = model.config
    records = read_video_list(test_list, features_root, cfg.num_classes, cfg.normal_id, kind="test")
    rows = feature_rows(records, cfg.feature_dim)
    annotations = read_temporal_annotations(annotation)
    problems = missing_annotations(records, annotations, cfg.normal_id)
    if problems:
        raise DataError(f"annotation {annotation}: {len(problems)} problem(s)", problems)
    labels = [frame_labels(r, annotations.get(r.name, ()), n, cfg.normal_id) for r, n in zip(records, rows)]
    every = np.concatenate(labels)
    if (every == cfg.normal_id).all() or (every != cfg.normal_id).all():
        kind = "normal" if (every == cfg.normal_id).all() else "abnormal"
        raise DataError(f"test list {test_list}: every frame is {kind}; AUC-ROC and AUC-PR need both normal "
                        "and abnormal frames")
    empty = np.zeros(0, dtype=np.int64)
    data = TrainData(abnormal=[], normal=[], abnormal_rows=empty, normal_rows=empty, test=records,
                     test_labels=labels)
    return evaluate_frames(model, data), len(records), int(len(every))


def format_anomalyclip_table(result: dict) -> str:
    """The AnomalyCLIP metrics as text: the overall numbers, then one row per class (percentages)."""
    def pct(v) -> str:
        return "    n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:7.2f}"

    lines = []
    if result.get("random_weights"):
        lines.append(f"WARNING: {RANDOM_WEIGHTS_WARNING}")
    lines += [
        f"{'AUC-ROC (%)':<32}{pct(result['auc_roc'])}",
        f"{'AUC-PR (%)':<32}{pct(result['auc_pr'])}",
        f"{'mean MC AUROC, abnormal (%)':<32}{pct(result['mean_mc_auroc'])}",
        f"{'mean MC AUPR, abnormal (%)':<32}{pct(result['mean_mc_aupr'])}",
        f"{'optimal threshold (Youden)':<32}{result['optimal_threshold']:7.4f}",
        "",
        f"{'class (%)':<18} {'AUROC':>7} {'AUPR':>7} {'top-1':>7} {'top-5':>7}",
    ]
    for k, name in enumerate(result["class_names"]):
        lines.append(f"{name[:18]:<18} {pct(result['mc_auroc'][k])} {pct(result['mc_aupr'][k])} "
                     f"{pct(result['top1_accuracy'][k])} {pct(result['top5_accuracy'][k])}")
    lines.append("(per-class n/a: no frame of that class in the test list; AUROC 0 likewise counts as absent "
                 "in the means, as officially)")
    return "\n".join(lines)
