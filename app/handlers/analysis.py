"""The Analyse tab's handlers: vocabulary, model choice, analyse / re-score a video, the segment
table, its preview and quick decisions."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

from vadclip.detectors import Detector
from vadclip.errors import OptionError, UserError
from vadclip.features import SAMPLES_PER_SNIPPET, ExtractSettings, backbone_id
from vadclip.results import DetectionParams, VideoScores
from vadclip.scoring import redetect, score_video_features, video_features
from vadclip.video import VideoError, probe

from .. import media
from ..models import ModelChoice, checkpoint_kind, scan_models
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

    Returns its key (to select it). Raises UserError (e.g. CheckpointError) with the reason.
    """
    if not path:
        raise UserError("choose a checkpoint file to upload (.pth, .pt or .safetensors)")
    source = Path(path)
    if checkpoint_kind(source) is None or source.is_dir():
        raise UserError(f"{source.name}: not a checkpoint; upload an official .pth/.pt file or one "
                        "of our .safetensors files")
    target = ctx.config.models_dir / source.name
    n = 1
    while target.exists():
        target = ctx.config.models_dir / f"{source.stem}-{n}{source.suffix}"
        n += 1
    shutil.copyfile(source, target)
    try:
        ctx.registry.get(str(target.resolve()), "auto", ctx.device)
    except Exception:
        target.unlink(missing_ok=True)
        raise
    key = str(target.resolve())
    session.uploaded_models.append(key)
    return key


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
    scores = score_video_features(kept, detector, names, params)
    return _publish(ctx, replace(session, model_key=(model_key, preset)), scores)


def _same_clip(a: Detector, b: Detector) -> bool:
    """Whether two detectors' features come from the same CLIP weights."""
    return a.clip_model is b.clip_model or (backbone_id(a.clip_info, a.clip_model)
                                            == backbone_id(b.clip_info, b.clip_model))


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
    return (f"**{scores.video}**: {scores.duration_s:.1f} s, {scores.fps:.2f} fps, "
            f"{scores.n_snippets} snippets of {scores.snippet_frames} frames "
            f"({scores.samples_per_snippet} encoded per snippet){cached}.  \n"
            f"**{n} segment{'s' if n != 1 else ''}** flagged ({flagged:.1f} s) on the "
            f"{scores.params.branch.upper()} branch at threshold "
            f"{scores.params.threshold:.2f}. Model: {scores.model}.")


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
