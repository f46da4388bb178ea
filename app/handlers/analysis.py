"""The Analyse tab's handlers: vocabulary, model choice (AnomalyCLIP centroid included), analyse /
re-score a video, compare two models on it, the segment table, its preview and quick decisions."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from vadclip.anomalyclip.centroid import load_centroid
from vadclip.detectors import Detector
from vadclip.errors import OptionError, UserError, VocabularyError
from vadclip.features import SAMPLES_PER_SNIPPET, ExtractSettings, backbone_id, same_image_tower
from vadclip.results import DetectionParams, VideoScores
from vadclip.scoring import (VideoFeatureResult, redetect, score_video_features, snippet_features,
                             video_features)
from vadclip.video import VideoError, probe

from .. import media
from ..models import (ANOMALYCLIP_OFFICIAL, CENTROID_SUFFIX, ZERO_SHOT as ZERO_SHOT_KEY, ModelChoice,
                      checkpoint_kind, needs_centroid, scan_models)
from ..review_db import ReviewRecord
from ..state import Session
from .context import AppContext
from .review import decide

Progress = Callable[[str, float], None]

SAMPLES_PER_SNIPPET_CHOICES = SAMPLES_PER_SNIPPET      # frames encoded per snippet, offered in the UI
DEFAULT_SAMPLES_PER_SNIPPET = 4            # CPU-friendly default (16 = the official features)
MODEL_DEFAULT_BRANCH = "default"           # the page's value for DetectionParams(branch=None)
SEGMENT_COLUMNS = ["#", "start (s)", "end (s)", "class", "confidence", "peak score", "review"]


# ---------------------------------------------------------------------------------------------
# vocabulary and detection settings

def parse_vocabulary(normal: str, anomalies: str) -> list[str]:
    """[normal, *anomalies] from the two vocabulary boxes (one anomaly class per line).

    Index 0 is always the normal class: an empty normal box means "normal".
    """
    normal = (normal or "").strip() or "normal"
    names = [line.strip() for line in (anomalies or "").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise UserError("the vocabulary is empty: enter at least one anomaly class (one per line)")
    duplicates = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1}
                        | {n for n in names if n.lower() == normal.lower()})
    if duplicates:
        raise UserError("duplicate class names in the vocabulary: " + ", ".join(map(repr, duplicates)))
    return [normal, *names]


def vocabulary_boxes(names: list[str]) -> tuple[str, str]:
    """The (normal, anomalies) box contents for a vocabulary."""
    return names[0], "\n".join(names[1:])


def preset_vocabulary(ctx: AppContext, name: str) -> tuple[str, str]:
    """The (normal, anomalies) box contents of the app's preset vocabulary `name`."""
    if name not in ctx.vocabularies:
        raise UserError(f"unknown vocabulary preset {name!r}; choose one of {', '.join(ctx.vocabularies)}")
    return vocabulary_boxes(ctx.vocabularies[name])


def detection_params(threshold: float, branch: str | None, min_gap_s: float,
                     min_duration_s: float) -> DetectionParams:
    """The detection settings of the page as `DetectionParams` (OptionError when out of range);
    branch `MODEL_DEFAULT_BRANCH` (or empty) is the model's default curve."""
    branch = None if branch in (None, "", MODEL_DEFAULT_BRANCH) else str(branch)
    try:
        return DetectionParams(threshold=float(threshold), branch=branch,
                               min_gap_s=float(min_gap_s), min_duration_s=float(min_duration_s))
    except (TypeError, ValueError) as e:
        raise OptionError(f"bad detection settings: {e}") from None


# ---------------------------------------------------------------------------------------------
# models

def model_choices(ctx: AppContext, session: Session) -> list[ModelChoice]:
    """Checkpoints in the models folder (incl. finished training runs), uploads, zero-shot."""
    return scan_models(ctx.config.models_dir, session.uploaded_models)


def default_model(choices: list[ModelChoice]) -> str:
    """The first checkpoint when there is one, else CLIP zero-shot."""
    return choices[0].key


def upload_model(ctx: AppContext, session: Session, path: str | None) -> str:
    """Copy an uploaded checkpoint into the models folder after checking that it loads.

    An official AnomalyCLIP ``.ckpt`` is kept without that check until its centroid is uploaded
    (`upload_centroid`; `needs_centroid` says so). Returns its key (to select it). Raises
    UserError (e.g. CheckpointError) with the reason.
    """
    if not path:
        raise UserError("choose a checkpoint file to upload (.pth, .pt, .ckpt or .safetensors)")
    source = Path(path)
    kind = checkpoint_kind(source)
    if kind is None or source.is_dir():
        raise UserError(f"{source.name}: not a checkpoint; upload an official VadCLIP .pth/.pt or AnomalyCLIP "
                        ".ckpt file, or one of our .safetensors files")
    target = ctx.config.models_dir / source.name
    n = 1
    while target.exists() or target.with_name(target.name + CENTROID_SUFFIX).exists():
        target = ctx.config.models_dir / f"{source.stem}-{n}{source.suffix}"
        n += 1
    shutil.copyfile(source, target)
    try:
        if kind != ANOMALYCLIP_OFFICIAL:
            ctx.registry.get(str(target.resolve()), "auto", ctx.device)
    except Exception:
        target.unlink(missing_ok=True)
        raise
    key = str(target.resolve())
    session.uploaded_models.append(key)
    return key


def upload_centroid(ctx: AppContext, model_key: str, path: str | None) -> Path:
    """Store an uploaded normal centroid (the run's ``ncentroid.pt``, or a [512] ``.npy``) beside
    the chosen official AnomalyCLIP checkpoint as ``<name>.ncentroid.pt``, after checking that
    the model loads with it. Returns the file written."""
    if not path:
        raise UserError("choose the centroid file to upload (the run's ncentroid.pt, or a [512] .npy)")
    checkpoint = Path(model_key)
    if model_key == ZERO_SHOT_KEY or checkpoint_kind(checkpoint) != ANOMALYCLIP_OFFICIAL:
        raise UserError("a normal centroid belongs to an official AnomalyCLIP checkpoint (.ckpt): choose one "
                        "in the model list first")
    import torch
    centroid = load_centroid(path)                          # CheckpointError for a bad file
    target = checkpoint.with_name(checkpoint.name + CENTROID_SUFFIX)
    previous = target.read_bytes() if target.is_file() else None
    torch.save(centroid, target)
    try:
        ctx.registry.get(model_key, "auto", ctx.device)
    except Exception:
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(previous)
        raise
    return target


def model_vocabulary(ctx: AppContext, model_key: str, preset: str) -> tuple[str, str] | None:
    """The (normal, anomalies) boxes of a model with a fixed vocabulary (AnomalyCLIP: its trained
    classes, normal first), or None for a free-vocabulary model or one that cannot load yet (an
    official AnomalyCLIP checkpoint waiting for its centroid)."""
    if needs_centroid(model_key):
        return None
    detector = ctx.registry.get(model_key, preset, ctx.device).detector
    return vocabulary_boxes(detector.default_class_names) if detector.fixed_vocabulary else None


def check_video_upload(path: str | None) -> None:
    """Refuse a file that is not a readable video as soon as it is uploaded."""
    if path:
        try:
            probe(path)
        except VideoError as e:
            raise UserError(f"{e} (upload a video file such as .mp4, .mov, .webm or .mkv)") from None


# ---------------------------------------------------------------------------------------------
# analysis

# library progress stage -> (what the page says, start and end of its share of the bar)
PROGRESS_STAGES = {"probe": ("reading the video", 0.02, 0.05),
                   "encode": ("encoding frames with CLIP", 0.05, 0.95),
                   "score": ("scoring", 0.95, 1.0)}


def _page_progress(report: Progress) -> Progress:
    def on_progress(stage: str, fraction: float) -> None:
        label, start, end = PROGRESS_STAGES[stage]
        report(label, start + (end - start) * fraction)
    return on_progress


def analyse(ctx: AppContext, session: Session, video: str | None, normal: str, anomalies: str,
            model_key: str, preset: str, samples_per_snippet: int, params: DetectionParams,
            on_progress: Progress | None = None) -> Session:
    """Score a video with `vadclip.scoring` (features through the app's feature cache, then the
    detector), and queue its segments for review. Returns the new session."""
    report = on_progress or (lambda stage, fraction: None)
    if not video:
        raise UserError("upload a video or pick an example first")
    names = parse_vocabulary(normal, anomalies)
    settings = ExtractSettings(samples_per_snippet=int(samples_per_snippet))
    report("loading the model", 0.0)
    loaded = ctx.registry.get(model_key, preset, ctx.device)
    names = loaded.detector.vocabulary(names)            # before anything is decoded
    progress = _page_progress(report)
    features = video_features(video, loaded.detector, settings=settings, cache=ctx.cache, device=ctx.device,
                              max_duration_s=ctx.config.max_video_s, on_progress=progress)
    scores = score_video_features(features, loaded.detector, names, params, on_progress=progress)
    same_video = session.features is not None and session.features.content_hash == features.content_hash
    new = Session(video_path=str(video), features=features, model_key=(model_key, preset),
                  thumbnails=session.thumbnails if same_video else {}, uploaded_models=session.uploaded_models)
    return _publish(ctx, new, scores)


def rescore(ctx: AppContext, session: Session, normal: str, anomalies: str, model_key: str,
            preset: str, params: DetectionParams) -> Session:
    """New vocabulary, model (same CLIP) or detection settings on the session's features: no
    decoding or frame encoding, so it is instant."""
    if session.scores is None or session.features is None:
        raise UserError("analyse a video first")
    names = parse_vocabulary(normal, anomalies)
    if names == list(session.scores.class_names) and (model_key, preset) == session.model_key:
        return _publish(ctx, session, redetect(session.scores, params))
    detector = ctx.registry.get(model_key, preset, ctx.device).detector
    if not _same_clip(detector, ctx.registry.get(*session.model_key, ctx.device).detector):
        raise UserError("this model runs on another CLIP than the analysed features: press Analyse")
    kept = replace(session.features, cache_hit=True)       # the session's copy: nothing decoded
    if detector.frames_per_row != kept.frames_per_row:
        if kept.frames_per_row != 1:
            raise UserError("this model scores every frame but the analysed features are 16-frame snippets: "
                            "press Analyse")
        kept = snippet_features(kept)          # a snippet model after a per-frame one: 16-frame means
    scores = score_video_features(kept, detector, names, params)
    return _publish(ctx, replace(session, model_key=(model_key, preset)), scores)


def _same_clip(a: Detector, b: Detector) -> bool:
    """Whether two detectors' features come from the same CLIP weights."""
    return (a.clip_model is b.clip_model
            or backbone_id(a.clip_info, a.clip_model) == backbone_id(b.clip_info, b.clip_model)
            or (a.clip_info.image_size == b.clip_info.image_size and same_image_tower(a.clip_model, b.clip_model)))


def auto_rescore(ctx: AppContext, session: Session, normal: str, anomalies: str, model_key: str,
                 preset: str, params: DetectionParams) -> Session | None:
    """`rescore` after a setting changed in the page; None when nothing is analysed yet (the
    settings then apply to the next analysis)."""
    if session.scores is None:
        return None
    return rescore(ctx, session, normal, anomalies, model_key, preset, params)


def _publish(ctx: AppContext, session: Session, scores: VideoScores) -> Session:
    """Store new scores in the session, put their segments in the review queue and alert on
    the high-scoring ones (when alerts are configured)."""
    missing = [s for s in scores.segments if (s.start_frame, s.end_frame) not in session.thumbnails]
    if missing and session.video_path and session.features is not None:
        thumbs = media.segment_thumbnails(session.video_path, session.features.info, missing)
        session.thumbnails.update({(s.start_frame, s.end_frame): thumbs[n] for n, s in enumerate(missing)})
    thumbnails = {n: session.thumbnails.get((s.start_frame, s.end_frame))
                  for n, s in enumerate(scores.segments)}
    records = ctx.store.sync_segments(scores, {n: t for n, t in thumbnails.items() if t})
    ctx.alerter.notify(scores, [r.id for r in records])      # background; never blocks or raises
    return replace(session, scores=scores, review_ids=[r.id for r in records], selected=None)


def summary_markdown(scores: VideoScores) -> str:
    """A short account of the analysis shown above the timeline."""
    n = len(scores.segments)
    flagged = sum(s.end_s - s.start_s for s in scores.segments)
    cached = " (features reused, no frame decoding)" if scores.extras.get("cache_hit") else ""
    rows = (f"{scores.n_snippets} snippets of {scores.snippet_frames} frames "
            f"({scores.samples_per_snippet} encoded per snippet)" if scores.snippet_frames > 1
            else f"{scores.n_snippets} frames scored one by one")
    branch = scores.params.branch
    curve = f"{branch.upper()} branch" if len(branch) == 1 else f"{branch!r} curve"
    return (f"**{scores.video}**: {scores.duration_s:.1f} s, {scores.fps:.2f} fps, {rows}{cached}.  \n"
            f"**{n} segment{'s' if n != 1 else ''}** flagged ({flagged:.1f} s) on the "
            f"{curve} at threshold {scores.params.threshold:.2f}. Model: {scores.model}.")


# ---------------------------------------------------------------------------------------------
# comparing two models on one video

@dataclass
class Comparison:
    """Two (or more) models' scores of one video, for one timeline."""

    scores: list[VideoScores]       # one per model, in the order asked
    notes: list[str]                # how the features were made, vocabulary fallbacks


def compare_features(ctx: AppContext, video: str, detectors: list[Detector], settings: ExtractSettings,
                     on_progress: Progress | None = None) -> tuple[list[VideoFeatureResult], list[str]]:
    """Each detector's features of `video`, computed once per CLIP sampling: detectors on the same
    CLIP (equal image-tower weights, `same_image_tower`) and row layout share one extraction; 16-frame snippets of every frame are the means of
    per-frame rows when a per-frame detector on the same CLIP needs those anyway
    (`vadclip.scoring.snippet_features`); other samplings are extracted apart (and said so)."""
    report = _page_progress(on_progress or (lambda stage, fraction: None))
    order = sorted(range(len(detectors)), key=lambda i: detectors[i].frames_per_row)   # per-frame first
    clips: list[Detector] = []                       # one detector per distinct CLIP image tower
    made: dict[tuple, VideoFeatureResult] = {}
    results: list[VideoFeatureResult | None] = [None] * len(detectors)
    notes = []
    for i in order:
        det = detectors[i]
        rows = settings.for_rows(det.frames_per_row)
        backbone = next((n for n, d in enumerate(clips) if d.clip_info.image_size == det.clip_info.image_size
                         and same_image_tower(d.clip_model, det.clip_model)), None)
        if backbone is None:
            clips.append(det)
            backbone = len(clips) - 1
        key = (backbone, rows.frames_per_row, rows.samples_per_row, rows.ten_crop)
        per_frame = made.get((backbone, 1, 1, rows.ten_crop))
        if key in made:
            results[i] = made[key]
            notes.append(f"{det.description}: the same features as a model above (same CLIP and sampling)")
        elif per_frame is not None and rows.samples_per_row == rows.frames_per_row:
            results[i] = made[key] = snippet_features(per_frame)
            notes.append(f"{det.description}: 16-frame snippet means of the per-frame features (same CLIP, "
                         "every frame encoded), no second decoding")
        else:
            if made:
                why = ("another CLIP" if all(k[0] != backbone for k in made)
                       else f"{rows.samples_per_row} of 16 frames encoded per snippet")
                notes.append(f"{det.description}: features extracted separately ({why})")
            results[i] = made[key] = video_features(video, det, settings=rows, cache=ctx.cache, device=ctx.device,
                                                    max_duration_s=ctx.config.max_video_s, on_progress=report)
    return results, notes


def compare(ctx: AppContext, video: str | None, normal: str, anomalies: str, models: list[tuple[str, str]],
            samples_per_snippet: int, params: DetectionParams, on_progress: Progress | None = None) -> Comparison:
    """Score one video with several models (`(key, preset)` each) for one timeline.

    Each model takes the page's vocabulary when it can, else its own trained classes (a model
    with a fixed vocabulary of another size); each cuts segments on its own default curve unless
    `params.branch` is one of its curves. Nothing is queued for review.
    """
    if not video:
        raise UserError("upload a video or pick an example first")
    if len(models) < 2 or len(set(models)) < len(models):
        raise UserError("choose two different models to compare")
    page = parse_vocabulary(normal, anomalies)
    loaded = [ctx.registry.get(key, preset, ctx.device) for key, preset in models]
    detectors = [m.detector for m in loaded]
    names, notes = [], []
    for det in detectors:
        try:
            names.append(det.vocabulary(page))
        except VocabularyError as err:
            if not det.fixed_vocabulary:
                raise
            names.append(det.vocabulary(None))
            notes.append(f"{det.description}: scored with its own trained classes, not the page's vocabulary "
                         f"({err})")
    settings = ExtractSettings(samples_per_snippet=int(samples_per_snippet))
    features, made = compare_features(ctx, video, detectors, settings, on_progress)
    scores = []
    for det, feats, vocab in zip(detectors, features, names):
        own = params if params.branch in (None, *det.branches) else replace(params, branch=None)
        scores.append(score_video_features(feats, det, vocab, own))
    return Comparison(scores=scores, notes=made + notes)


def comparison_markdown(comparison: Comparison) -> str:
    """One line per model (segments, curve, how its features were made) under the comparison plot."""
    lines = []
    for n, s in enumerate(comparison.scores, 1):
        segs = ", ".join(f"{g.start_s:.1f}-{g.end_s:.1f} s {g.label}" for g in s.segments) or "none"
        lines.append(f"**{n}. {s.model}** ({s.n_snippets} rows of {s.snippet_frames} frame(s), curve "
                     f"{s.params.branch!r}): {len(s.segments)} segment(s): {segs}")
    lines += [f"<small>{note}</small>" for note in comparison.notes]
    return "  \n".join(lines)


# ---------------------------------------------------------------------------------------------
# the segment table: preview and decisions

def segment_rows(ctx: AppContext, session: Session) -> list[list]:
    """The segment table of the current analysis, with each segment's review status."""
    if session.scores is None:
        return []
    records = {r.id: r for r in ctx.store.items(content_hash=session.scores.content_hash)}
    rows = []
    for n, (seg, item_id) in enumerate(zip(session.scores.segments, session.review_ids)):
        record = records.get(item_id)
        status = record.status if record else "-"
        if record and record.status == "relabelled":
            status = f"relabelled: {record.new_label}"
        rows.append([n + 1, round(seg.start_s, 2), round(seg.end_s, 2), seg.label,
                     round(seg.confidence, 3), round(seg.peak_score, 3), status])
    return rows


def segment_preview(session: Session, index: int) -> tuple[list, str]:
    """Frame strip and caption of segment `index` (0-based). The segment itself is watched in the
    uploaded video's player (the page seeks it), so no clip is written."""
    scores = session.scores
    if scores is None or session.features is None or session.video_path is None:
        raise UserError("analyse a video first")
    if not 0 <= index < len(scores.segments):
        raise UserError(f"no segment #{index + 1}")
    seg = scores.segments[index]
    strip = media.segment_strip(session.video_path, session.features.info, seg)
    caption = (f"**Segment #{index + 1}: {seg.label}** ({seg.confidence:.2f}), "
               f"{seg.start_s:.1f}-{seg.end_s:.1f} s, peak score {seg.peak_score:.2f}")
    return strip, caption


def select_segment(session: Session, index: int) -> tuple[Session, tuple[list, str]]:
    """Select segment `index` (0-based) for the quick decisions; returns the session and the
    segment's `segment_preview`."""
    preview = segment_preview(session, index)
    return replace(session, selected=index), preview


def decide_selected(ctx: AppContext, session: Session, action: str, note: str = "", new_label: str = "",
                    reviewer: str = "") -> ReviewRecord:
    """Confirm / dismiss / relabel (any review action) the segment selected in the table."""
    if session.scores is None or session.selected is None:
        raise UserError("select a segment in the table first")
    return decide(ctx, session.review_ids[session.selected], action, new_label=new_label, note=note,
                  reviewer=reviewer)


def decide_segment(ctx: AppContext, session: Session, number: int | float | None, action: str,
                   note: str = "", reviewer: str = "") -> ReviewRecord:
    """Decide segment `number` (1-based, as shown in the table) of this session's analysis: the
    API's version of the Confirm / Dismiss buttons."""
    if session.scores is None or not session.review_ids:
        raise UserError("this session has no analysed segments")
    index = int(number or 0) - 1
    if not 0 <= index < len(session.review_ids):
        raise UserError(f"no segment #{index + 1}")
    return decide(ctx, session.review_ids[index], str(action), note=note, reviewer=reviewer)
