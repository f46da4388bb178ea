"""Evaluating a model on a test feature list with the official metrics (`vadclip eval`).

`load_eval_set` reads and checks everything up front (feature files, labels, annotations), so a
problem is reported, all at once, before any work starts. `evaluate` scores every video like the
official test code (chunks of T snippets, the last zero-padded), batching the chunks of all videos
together, and computes frame AUC / AP / AnoAUC for both branches and the detection mAP.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import formats, metrics
from .config import get_preset
from .constants import RANDOM_WEIGHTS_WARNING
from .inference import chunk_features
from .model import VadCLIP



@dataclass
class EvalSet:
    """A loaded test set: one feature array per video, and its ground truth."""

    preset: str
    names: list[str]
    labels: list[str]                    # raw video labels
    features: list[np.ndarray]           # [N_i, D] per video
    frame_gt: np.ndarray                 # [sum N_i * 16] uint8
    abnormal_video: np.ndarray           # [n_videos] bool
    det_segments: list | None            # per video [[start, end], ...]; None without class labels
    det_labels: list | None
    det_classlist: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_snippets(self) -> list[int]:
        return [len(f) for f in self.features]


@dataclass
class EvalResult:
    """Metrics of one evaluation (AUC / AP in [0, 1], mAP in percent)."""

    auc_c: float
    ap_c: float
    anoauc_c: float
    auc_a: float
    ap_a: float
    anoauc_a: float
    map_percent: list[float] | None      # per IoU threshold, None if not computable
    n_videos: int
    random_weights: bool = False

    @property
    def map_avg(self) -> float | None:
        return float(np.mean(self.map_percent)) if self.map_percent is not None else None

    def as_dict(self) -> dict:
        d = {"auc_c": self.auc_c, "ap_c": self.ap_c, "anoauc_c": self.anoauc_c,
             "auc_a": self.auc_a, "ap_a": self.ap_a, "anoauc_a": self.anoauc_a}
        for t, m in zip(metrics.IOU_THRESHOLDS, self.map_percent or [None] * len(metrics.IOU_THRESHOLDS)):
            d[f"map@{t:.1f}"] = m
        d["map_avg"] = self.map_avg
        d["n_videos"] = self.n_videos
        d["random_weights"] = self.random_weights
        return d


def _one_entry_per_video(entries: list[formats.FeatureListEntry]) -> list[formats.FeatureListEntry]:
    """One feature file per video: test lists have one row per video (XD's official list uses
    `__0`, UCF's `__5`); a list with all crops is reduced to crop 0 (the centre crop in ours)."""
    chosen = []
    for group in formats.group_by_video(entries).values():
        centre = [e for e in group if e.crop in (0, None)]
        chosen.append(centre[0] if centre else sorted(group, key=lambda e: e.crop)[0])
    return chosen


def load_eval_set(test_list: str | Path, annotations: str | Path | list, preset: str = "xd",
                  dim: int = 512, root: str | Path | None = None,
                  features_root: str | Path | None = None) -> EvalSet:
    """Read a test feature list and its annotations, checking everything before loading.

    `annotations` is one file or a list of files in the official formats (for XD,
    ``annotations_multiclasses.txt`` gives both the frame ground truth and the detection mAP;
    ``annotations.txt`` alone gives no mAP). `features_root`: listed files that do not exist are
    found by name under it (`formats.read_feature_list`). Raises `formats.DataError` listing every
    problem.
    """
    get_preset(preset)
    entries = _one_entry_per_video(formats.read_feature_list(test_list, root=root, preset=preset,
                                                             features_root=features_root))
    files = annotations if isinstance(annotations, (list, tuple)) else [annotations]
    # The official frame ground truth of XD comes from annotations.txt and its detection ground
    # truth from annotations_multiclasses.txt; the two differ slightly, so each is taken from its
    # own file when both are given.
    frame_ann: dict[str, list[formats.Segment]] = {}
    labelled_ann: dict[str, list[formats.Segment]] = {}
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            fmt = formats.detect_annotation_format(fh)
        parsed = formats.read_annotations(f, preset=preset)
        if fmt == "xd_binary":
            frame_ann.update(parsed)
        else:
            labelled_ann.update(parsed)
    frame_ann = {**labelled_ann, **frame_ann}
    det_ann = {**frame_ann, **labelled_ann}
    formats.check_feature_files(entries, dim=dim, annotations=frame_ann)
    features = [formats.load_features(e.path) for e in entries]
    n = [len(f) for f in features]
    frame_gt = formats.frame_ground_truth(entries, frame_ann, n)
    if frame_gt.min() == frame_gt.max():
        kind = "abnormal" if frame_gt[0] else "normal"
        raise formats.DataError(f"test list {test_list}: every frame is {kind}; frame AUC and AP need "
                                "both normal and abnormal frames")
    warnings = []
    try:
        det_segments, det_labels = formats.detection_ground_truth(entries, det_ann, n)
    except formats.DataError as e:
        det_segments = det_labels = None
        warnings.append("detection mAP not computed: " + e.summary +
                        (" (XD needs annotations_multiclasses.txt)" if preset == "xd" else ""))
    return EvalSet(
        preset=preset, names=[e.name for e in entries], labels=[e.label for e in entries],
        features=features, frame_gt=frame_gt,
        abnormal_video=np.array([not formats.is_normal_label(e.label) for e in entries]),
        det_segments=det_segments, det_labels=det_labels,
        det_classlist=formats.detection_classlist(preset), warnings=warnings,
    )


@torch.no_grad()
def score_eval_set(model: VadCLIP, eval_set: EvalSet, class_names: list[str] | None = None,
                   chunks_per_batch: int = 64) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per-video (coarse_c [N], coarse_a [N], fine [N, C]), chunks of all videos batched together."""
    names = list(class_names or model.config.class_names)
    T = model.config.visual_length
    device = model.frame_position_embeddings.weight.device
    was_training = model.training
    model.eval()
    chunked = [chunk_features(torch.from_numpy(f), T) for f in eval_set.features]
    chunks = torch.cat([c for c, _ in chunked])
    lengths = torch.cat([l for _, l in chunked])
    t0 = model.encode_text(names)
    logits_c, logits_a = [], []
    for s in range(0, len(chunks), chunks_per_batch):
        out = model(chunks[s:s + chunks_per_batch].to(device), lengths[s:s + chunks_per_batch].to(device),
                    names, text_features=t0)
        logits_c.append(out.logits_c.squeeze(-1).float().cpu())
        logits_a.append(out.logits_a.float().cpu())
    model.train(was_training)
    logits_c, logits_a = torch.cat(logits_c), torch.cat(logits_a)
    coarse_c, coarse_a, fine = [], [], []
    start = 0
    for f, (c, _) in zip(eval_set.features, chunked):
        n = len(f)
        lc = logits_c[start:start + len(c)].reshape(-1)[:n]
        p = logits_a[start:start + len(c)].reshape(-1, len(names))[:n].softmax(dim=-1)
        start += len(c)
        coarse_c.append(torch.sigmoid(lc).numpy())
        coarse_a.append((1 - p[:, 0]).numpy())
        fine.append(p.numpy())
    return coarse_c, coarse_a, fine


@dataclass
class EvalScores:
    """Per-video snippet scores of a test set (lists in the test set's video order), whatever
    produced them: the official path (`score_eval_set_official`) or `improvements`' options."""

    coarse_c: list[np.ndarray]      # [N_i] C-branch anomaly scores
    coarse_a: list[np.ndarray]      # [N_i] A-branch anomaly scores, 1 - fine[:, normal]
    fine: list[np.ndarray]          # [N_i, C] class probabilities
    random_weights: bool = False


def score_eval_set_official(model: VadCLIP, eval_set: EvalSet) -> EvalScores:
    """The official test-time scores of every video (`score_eval_set`)."""
    coarse_c, coarse_a, fine = score_eval_set(model, eval_set)
    return EvalScores(coarse_c, coarse_a, fine, model.clip_info.random_weights)


def metrics_of_scores(eval_set: EvalSet, scores: EvalScores) -> EvalResult:
    """The official metrics of per-video scores: frame AUC / AP / AnoAUC of both branches and the
    detection mAP. The one place these metrics are computed (`evaluate` is this on the official scores)."""
    if [len(s) for s in scores.coarse_c] != eval_set.n_snippets:
        raise ValueError("scores do not match the test set's videos (count or lengths differ)")
    frames = metrics.snippets_to_frames
    gt = eval_set.frame_gt
    abnormal_frames = np.repeat(eval_set.abnormal_video, np.array(eval_set.n_snippets) * metrics.FRAMES_PER_SNIPPET)
    result = {}
    for branch, branch_scores in (("c", scores.coarse_c), ("a", scores.coarse_a)):
        s = frames(np.concatenate(branch_scores))
        result[f"auc_{branch}"] = metrics.frame_auc(s, gt)
        result[f"ap_{branch}"] = metrics.frame_ap(s, gt)
        result[f"anoauc_{branch}"] = (metrics.frame_auc(s[abnormal_frames], gt[abnormal_frames])
                                      if abnormal_frames.any() else float("nan"))
    map_percent = None
    if eval_set.det_segments is not None:
        map_percent = metrics.detection_map(scores.fine, eval_set.det_segments, eval_set.det_labels,
                                            eval_set.det_classlist, iou_thresholds=metrics.IOU_THRESHOLDS)
    return EvalResult(**result, map_percent=map_percent, n_videos=len(eval_set.names),
                      random_weights=scores.random_weights)


def evaluate(model: VadCLIP, eval_set: EvalSet, class_names: list[str] | None = None) -> EvalResult:
    """Official metrics of `model` on `eval_set` (both branches, frame level; detection mAP)."""
    coarse_c, coarse_a, fine = score_eval_set(model, eval_set, class_names)
    return metrics_of_scores(eval_set, EvalScores(coarse_c, coarse_a, fine, model.clip_info.random_weights))


def format_table(result: EvalResult) -> str:
    """The metrics as a small text table (percentages)."""
    pct = lambda v: "   n/a" if v is None or np.isnan(v) else f"{100 * v:6.2f}"
    lines = ["branch      AUC     AP  AnoAUC",
             f"C        {pct(result.auc_c)} {pct(result.ap_c)} {pct(result.anoauc_c)}",
             f"A        {pct(result.auc_a)} {pct(result.ap_a)} {pct(result.anoauc_a)}"]
    if result.map_percent is not None:
        heads = "  ".join(f"@{t:.1f}" for t in metrics.IOU_THRESHOLDS)
        vals = "  ".join(f"{m:4.2f}" for m in result.map_percent)
        lines += [f"mAP (%)  {heads}   avg", f"         {vals}   {result.map_avg:.2f}"]
    if result.random_weights:
        lines.insert(0, f"WARNING: {RANDOM_WEIGHTS_WARNING}")
    return "\n".join(lines)
