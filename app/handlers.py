"""What the app does, as plain Python functions (no Gradio here: testable without a browser).

`AppContext.create(config)` builds everything one running app shares (model registry, review
store, feature cache, trainer); `app.ui.build_demo` creates one and wires these functions to the
page. Per-tab state lives in an `app.state.Session`. Problems the user can fix raise `AppError`
(or another `ValueError` such as `VideoError`, `ClipError`, `CheckpointError`) with a one-line
message that the UI shows as it is.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator


from vadclip.config import PRESETS, get_preset
from vadclip.features import SAMPLES_PER_SNIPPET, ExtractSettings, FeatureCache, backbone_id, cached_video_features
from vadclip.results import DetectionParams, VideoScores
from vadclip.scoring import redetect, scores_from_features
from vadclip.train import TrainConfig
from vadclip.utils import resolve_device
from vadclip.video import SNIPPET_FRAMES, VideoError, content_hash, probe

from . import export, media
from .config import AppConfig
from .models import ZERO_SHOT, ModelChoice, ModelRegistry, checkpoint_kind, scan_models
from .review_db import STATUSES, ReviewRecord, ReviewStore
from .state import Session
from .tempfiles import TempFiles, default_root
from .training import Trainer, TrainingJob, list_files, resolve_in_root, run_folder_name

Progress = Callable[[str, float], None]

SAMPLES_PER_SNIPPET_CHOICES = SAMPLES_PER_SNIPPET      # frames encoded per snippet, offered in the UI
DEFAULT_SAMPLES_PER_SNIPPET = 4            # CPU-friendly default (16 = the official features)
REVIEW_ACTIONS = {"confirm": "confirmed", "dismiss": "dismissed", "relabel": "relabelled",
                  "reset": "pending"}


class AppError(ValueError):
    """A problem the user can fix; its message is shown in the page as it is."""


class SessionJobs:
    """Which sessions are running a long job: one job per session at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}

    @contextlib.contextmanager
    def hold(self, session_id: str | None, what: str) -> Iterator[None]:
        """Mark `session_id` busy with `what` while the block runs; AppError if it already is."""
        if session_id is None:
            yield
            return
        with self._lock:
            if session_id in self._running:
                raise AppError(f"this session is already running {self._running[session_id]}: "
                               f"wait for it to finish before starting {what}")
            self._running[session_id] = what
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(session_id, None)

    def running(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)


@dataclass
class AppContext:
    """What one running app shares between all its browser tabs (created by `build_demo`)."""

    config: AppConfig
    device: str
    registry: ModelRegistry
    store: ReviewStore
    cache: FeatureCache
    vocabularies: dict[str, list[str]]
    trainer: Trainer
    temp: TempFiles
    jobs: SessionJobs = field(default_factory=SessionJobs)

    @classmethod
    def create(cls, config: AppConfig) -> "AppContext":
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.models_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            device=resolve_device(config.device),
            registry=ModelRegistry(config.clip),
            store=ReviewStore(config.database_url),
            cache=FeatureCache(config.cache_dir, max_bytes=config.cache_bytes),
            vocabularies=load_vocabularies(config.assets_dir / "vocabularies.json"),
            trainer=Trainer(),
            temp=_start_temp(config),
        )

    def close(self) -> None:
        self.trainer.cancel()
        self.store.close()
        self.temp.sweep()

    def end_session(self, session_id: str | None) -> None:
        """A browser session ended: delete its temporary files."""
        self.temp.remove(session_id)


def _start_temp(config: AppConfig) -> TempFiles:
    temp = TempFiles(default_root(config.data_dir), max_age_s=config.temp_max_age_min * 60)
    temp.sweep()                 # what a killed or crashed run left behind
    return temp


def load_vocabularies(path: Path) -> dict[str, list[str]]:
    """Preset vocabularies {name: [normal, anomaly classes...]} from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise AppError(f"cannot read the vocabularies file {path}: {e}") from None
    return {str(k): [str(n) for n in v] for k, v in data.items()}


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
        raise AppError("the vocabulary is empty: enter at least one anomaly class (one per line)")
    duplicates = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1}
                        | {n for n in names if n.lower() == normal.lower()})
    if duplicates:
        raise AppError("duplicate class names in the vocabulary: " + ", ".join(map(repr, duplicates)))
    return [normal, *names]


def vocabulary_boxes(names: list[str]) -> tuple[str, str]:
    """The (normal, anomalies) box contents for a vocabulary."""
    return names[0], "\n".join(names[1:])


def detection_params(threshold: float, branch: str, min_gap_s: float, min_duration_s: float) -> DetectionParams:
    try:
        return DetectionParams(threshold=float(threshold), branch=str(branch),
                               min_gap_s=float(min_gap_s), min_duration_s=float(min_duration_s))
    except (TypeError, ValueError) as e:
        raise AppError(f"bad detection settings: {e}") from None


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

    Returns its key (to select it). Raises AppError / CheckpointError with the reason.
    """
    if not path:
        raise AppError("choose a checkpoint file to upload (.pth, .pt or .safetensors)")
    source = Path(path)
    if checkpoint_kind(source) is None or source.is_dir():
        raise AppError(f"{source.name}: not a checkpoint; upload an official .pth/.pt file or one "
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


# ---------------------------------------------------------------------------------------------
# analysis

def analyse(ctx: AppContext, session: Session, video: str | None, normal: str, anomalies: str,
            model_key: str, preset: str, samples_per_snippet: int, params: DetectionParams,
            on_progress: Progress | None = None) -> Session:
    """Score a video: decode, encode frames with the model's CLIP (or reuse cached features),
    score, cut segments, and queue them for review. Returns the new session."""
    report = on_progress or (lambda stage, fraction: None)
    if not video:
        raise AppError("upload a video or pick an example first")
    path = Path(video)
    names = parse_vocabulary(normal, anomalies)
    samples = int(samples_per_snippet)
    if samples not in SAMPLES_PER_SNIPPET_CHOICES:
        raise AppError(f"frames per snippet must be one of {SAMPLES_PER_SNIPPET_CHOICES}")
    report("loading the model", 0.0)
    loaded = ctx.registry.get(model_key, preset, ctx.device)
    loaded.check_vocabulary(names)
    report("reading the video", 0.02)
    info = probe(path)
    limit = ctx.config.max_video_s
    if info.duration_s > limit:
        raise AppError(f"{path.name} is {info.duration_s:.1f} s long; this app analyses videos of "
                       f"at most {limit:g} s (VADCLIP_MAX_VIDEO_S)")
    if info.n_frames < SNIPPET_FRAMES:
        raise AppError(f"{path.name} has {info.n_frames} frames; at least {SNIPPET_FRAMES} "
                       "(one snippet) are needed")
    digest = content_hash(path)
    features_key = (digest, backbone_id(loaded.clip_info, loaded.clip_model), samples)
    cache_hit = session.features_key == features_key
    if cache_hit:
        features = session.features
    else:
        extracted, cache_hit = cached_video_features(
            loaded.clip_model, loaded.clip_info, path, ExtractSettings(samples_per_snippet=samples),
            ctx.device, ctx.cache, info=info, content_hash=digest, backbone=features_key[1],
            on_progress=lambda done, total: report("encoding frames with CLIP",
                                                   0.05 + 0.9 * done / max(total, 1)))
        features = extracted.features
    report("scoring", 0.97)
    scores = scores_from_features(
        features, loaded.scorer, names, video=path.name, content_hash=digest, fps=info.fps,
        n_frames=info.n_frames, samples_per_snippet=samples, params=params,
        extras={"features_cached": bool(cache_hit), "preset": loaded.preset})
    new = Session(video_path=str(path), info=info, content_hash=digest, features=features,
                  features_key=features_key, model_key=(model_key, preset),
                  thumbnails=session.thumbnails if session.content_hash == digest else {},
                  uploaded_models=session.uploaded_models)
    return _publish(ctx, new, scores)


def rescore(ctx: AppContext, session: Session, normal: str, anomalies: str, model_key: str,
            preset: str, params: DetectionParams) -> Session:
    """New vocabulary, model (same CLIP) or detection settings on the session's features: no
    decoding or frame encoding, so it is instant."""
    if session.scores is None or session.features is None:
        raise AppError("analyse a video first")
    names = parse_vocabulary(normal, anomalies)
    scores = session.scores
    if names == list(scores.class_names) and (model_key, preset) == session.model_key:
        return _publish(ctx, session, redetect(scores, params))
    loaded = ctx.registry.get(model_key, preset, ctx.device)
    if backbone_id(loaded.clip_info, loaded.clip_model) != session.features_key[1]:
        raise AppError("this model runs on another CLIP than the analysed features: press Analyse")
    new = scores_from_features(
        session.features, loaded.scorer, names, video=scores.video, content_hash=scores.content_hash,
        fps=scores.fps, n_frames=scores.n_frames, samples_per_snippet=scores.samples_per_snippet,
        params=params, extras={**scores.extras, "features_cached": True, "preset": loaded.preset})
    return _publish(ctx, replace(session, model_key=(model_key, preset)), new)


def _publish(ctx: AppContext, session: Session, scores: VideoScores) -> Session:
    """Store new scores in the session and put their segments in the review queue."""
    missing = [s for s in scores.segments if (s.start_frame, s.end_frame) not in session.thumbnails]
    if missing and session.video_path and session.info is not None:
        thumbs = media.segment_thumbnails(session.video_path, session.info, missing)
        session.thumbnails.update({(s.start_frame, s.end_frame): thumbs[n] for n, s in enumerate(missing)})
    thumbnails = {n: session.thumbnails.get((s.start_frame, s.end_frame))
                  for n, s in enumerate(scores.segments)}
    records = ctx.store.sync_segments(scores, {n: t for n, t in thumbnails.items() if t})
    return replace(session, scores=scores, review_ids=[r.id for r in records], selected=None)


def summary_markdown(scores: VideoScores) -> str:
    """A short account of the analysis shown above the timeline."""
    n = len(scores.segments)
    flagged = sum(s.end_s - s.start_s for s in scores.segments)
    cached = " (features reused, no frame decoding)" if scores.extras.get("features_cached") else ""
    return (f"**{scores.video}**: {scores.duration_s:.1f} s, {scores.fps:.2f} fps, "
            f"{scores.n_snippets} snippets of {scores.snippet_frames} frames "
            f"({scores.samples_per_snippet} encoded per snippet){cached}.  \n"
            f"**{n} segment{'s' if n != 1 else ''}** flagged ({flagged:.1f} s) on the "
            f"{'C' if scores.params.branch == 'c' else 'A'} branch at threshold "
            f"{scores.params.threshold:.2f}. Model: {scores.model}.")


SEGMENT_COLUMNS = ["#", "start (s)", "end (s)", "class", "confidence", "peak score", "review"]


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


def segment_preview(session: Session, index: int, out_dir: Path | None = None) -> tuple[list, Path, str]:
    """Thumbnail strip, trimmed clip (written into `out_dir`, e.g. the session's temp folder)
    and caption of segment `index` (0-based)."""
    scores = session.scores
    if scores is None or session.info is None or session.video_path is None:
        raise AppError("analyse a video first")
    if not 0 <= index < len(scores.segments):
        raise AppError(f"no segment #{index + 1}")
    seg = scores.segments[index]
    strip = media.segment_strip(session.video_path, session.info, seg)
    clip = media.write_segment_clip(session.video_path, session.info, seg, out_dir=out_dir)
    caption = (f"**Segment #{index + 1}: {seg.label}** ({seg.confidence:.2f}), "
               f"{seg.start_s:.1f}-{seg.end_s:.1f} s, peak score {seg.peak_score:.2f}")
    return strip, clip, caption


# ---------------------------------------------------------------------------------------------
# review queue

REVIEW_COLUMNS = ["id", "thumbnail", "video", "start (s)", "end (s)", "class", "confidence",
                  "status", "final class", "note"]
REVIEW_FILTERS = ("all", *STATUSES)


def review_records(ctx: AppContext, status: str = "all") -> list[ReviewRecord]:
    if status not in REVIEW_FILTERS:
        raise AppError(f"unknown review filter {status!r}")
    return ctx.store.items(status=None if status == "all" else status)


def review_rows(ctx: AppContext, status: str = "all") -> list[list]:
    """The review queue table: one row per flagged segment (thumbnail as a markdown image)."""
    return [[r.id, media.thumbnail_markdown(r.thumbnail), r.video, round(r.start_s, 2),
             round(r.end_s, 2), r.label, round(r.confidence, 3), r.status, r.final_label, r.note]
            for r in review_records(ctx, status)]


def decide(ctx: AppContext, item_id: int | None, action: str, new_label: str = "",
           note: str = "") -> ReviewRecord:
    """Confirm, dismiss, relabel (with `new_label`) or reset one review item, with a note."""
    if item_id is None:
        raise AppError("select a segment in the table first")
    if action not in REVIEW_ACTIONS:
        raise AppError(f"unknown review action {action!r}")
    return ctx.store.decide(int(item_id), REVIEW_ACTIONS[action], new_label=new_label, note=note)


def export_reviews(ctx: AppContext, fmt: str, status: str = "all",
                   session: Session | None = None, out_dir: Path | None = None) -> Path:
    """Write the review queue (optionally one status) as a CSV or JSON file for download, into
    `out_dir` (e.g. the session's temp folder; default a fresh temp folder)."""
    records = review_records(ctx, status)
    if fmt == "csv":
        return export.write_csv(records, out_dir=out_dir)
    if fmt == "json":
        return export.write_json(records, analysis=session.scores if session else None, out_dir=out_dir)
    raise AppError(f"unknown export format {fmt!r}; use csv or json")


def check_video_upload(path: str | None) -> None:
    """Refuse a file that is not a readable video as soon as it is uploaded."""
    if path:
        try:
            probe(path)
        except VideoError as e:
            raise AppError(f"{e} (upload a video file such as .mp4, .mov, .webm or .mkv)") from None


# ---------------------------------------------------------------------------------------------
# training

def recipe_defaults(preset: str) -> tuple[int, float, int]:
    """The preset's official (epochs, learning rate, batch size)."""
    recipe = get_preset(preset).train
    return recipe.epochs, recipe.lr, recipe.batch_size


def training_files(ctx: AppContext) -> tuple[list[str], list[str]]:
    """(feature lists *.csv, annotation files *.txt) under the data root, relative paths."""
    root = ctx.config.training_root
    return list_files(root, (".csv",)), list_files(root, (".txt",))


def default_training_files(lists: list[str], annotations: list[str]) -> tuple[str | None, str, str]:
    """Likely (training list, test list, annotations): names with "train" / "test" preferred,
    the multi-class XD annotation file avoided ("" = none)."""
    train = next((p for p in lists if "train" in Path(p).name.lower()), lists[0] if lists else None)
    test = next((p for p in lists if "test" in Path(p).name.lower() and p != train), "")
    plain = [a for a in annotations if "multiclass" not in Path(a).name.lower()]
    return train, test, (plain or annotations or [""])[0]


def start_training(ctx: AppContext, train_list: str | None, test_list: str | None,
                   annotations: str | None, preset: str, init_key: str | None, epochs: int,
                   lr: float, batch_size: int, max_steps: int | None = None,
                   eval_every_steps: int | None = None, seed: int | None = None) -> TrainingJob:
    """Start a training run in the background; its folder goes into the models folder.

    `init_key` is a model choice to start from (ZERO_SHOT / None: a fresh adapter on the app's
    CLIP). Unset optional values take the preset's official recipe."""
    root = ctx.config.training_root
    train_path = resolve_in_root(train_list, root, "training feature list")
    test_path = resolve_in_root(test_list, root, "test feature list", required=False)
    ann_path = resolve_in_root(annotations, root, "annotation file", required=test_path is not None)
    if preset not in PRESETS:
        raise AppError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    for name, value, low in (("epochs", epochs, 1), ("batch size", batch_size, 1)):
        if value is None or int(value) < low:
            raise AppError(f"{name} must be at least {low}")
    if lr is None or not 0 < float(lr) < 1:
        raise AppError("the learning rate must be between 0 and 1")
    init = None
    if init_key and init_key != ZERO_SHOT:
        init = init_key
    config = TrainConfig(
        preset=preset, train_list=str(train_path), test_list=str(test_path) if test_path else None,
        annotations=str(ann_path) if ann_path else None,
        out_dir=str(ctx.config.models_dir / run_folder_name(preset)), clip=ctx.config.clip,
        init=init, epochs=int(epochs), lr=float(lr), batch_size=int(batch_size),
        seed=int(seed) if seed is not None else None, device=ctx.device, data_root=str(root),
        num_workers=0, max_steps=int(max_steps) if max_steps else None,
        eval_every_steps=int(eval_every_steps) if eval_every_steps is not None else None,
    )
    return ctx.trainer.start(config)
