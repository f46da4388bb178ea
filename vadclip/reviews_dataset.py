"""Moderators' reviews as training data: reviewed videos whose features are cached become an
official-format training set and a held-out test set, and a VadCLIP checkpoint is fine-tuned on
them and evaluated before and after.

Semantics (the official training lists' ones):
- a reviewed video is one with at least one decided segment (confirmed, dismissed or relabelled);
- its video-level label is the set of its confirmed segments' final classes (a relabelled segment
  counts as confirmed with its new class; relabelled to the normal class counts as dismissed); a
  video whose flagged segments were all dismissed, and the unflagged rest, are normal;
- the reviewed spans (confirmed segments, in frames) are written as the test annotations, so the
  held-out part can be evaluated at frame level exactly like an official test list.

The review database is read through its documented table `review_items` (schema: app/review_db.py).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .config import get_preset
from .errors import UserError
from .formats import DataError

DECIDED = ("confirmed", "dismissed", "relabelled")
SNIPPET_FRAMES = 16


@dataclass(frozen=True)
class ReviewedSegment:
    """One flagged segment and its current decision."""

    content_hash: str
    video: str
    start_frame: int
    end_frame: int          # one past the last frame
    status: str             # pending, confirmed, dismissed, relabelled
    label: str              # the final class (the new one when relabelled)


def read_reviews(db_url: str) -> list[ReviewedSegment]:
    """Every segment of the review database at `db_url` (any SQLAlchemy URL) with its decision."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(db_url)
    except Exception as e:                       # bad URL or missing driver
        raise UserError(f"cannot open the review database {db_url!r}: {e}") from None
    query = text("SELECT content_hash, video, start_frame, end_frame, status, label, new_label "
                 "FROM review_items ORDER BY content_hash, start_frame, id")
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as e:
        raise UserError(f"cannot read reviews from {engine.url.render_as_string(hide_password=True)}: "
                        f"{str(e).splitlines()[0]}") from None
    finally:
        engine.dispose()
    return [ReviewedSegment(h, v, int(s), int(e), status,
                            new_label if status == "relabelled" and new_label else label)
            for h, v, s, e, status, label, new_label in rows]


def class_codes(preset: str) -> dict[str, str]:
    """Lower-cased class name or code -> the preset's label code (xd `fighting` -> `B1`)."""
    found = {}
    for code, name in get_preset(preset).label_map.items():
        found[name.lower()] = code
        found[code.lower()] = code
    return found


@dataclass
class ReviewedVideo:
    """A reviewed video: its label code(s) and its confirmed spans [(start, end, code)] in frames."""

    content_hash: str
    video: str
    codes: list[str]                     # empty: normal
    spans: list[tuple[int, int, str]]

    @property
    def abnormal(self) -> bool:
        return bool(self.codes)


def reviewed_videos(reviews: Iterable[ReviewedSegment], preset: str) -> list[ReviewedVideo]:
    """Group decided segments by video into video-level labels and spans (see the module
    docstring). DataError naming every final class the preset does not know."""
    codes = class_codes(preset)
    normal = next(iter(get_preset(preset).label_map))
    by_video: dict[str, list[ReviewedSegment]] = {}
    for r in reviews:
        by_video.setdefault(r.content_hash, []).append(r)
    videos, unknown = [], set()
    for content_hash, segs in by_video.items():
        if not any(s.status in DECIDED for s in segs):
            continue                                   # never reviewed: not part of the set
        spans = []
        for s in segs:
            if s.status not in ("confirmed", "relabelled"):
                continue
            code = codes.get(s.label.strip().lower())
            if code is None:
                unknown.add(s.label)
                continue
            if code != normal:
                spans.append((s.start_frame, s.end_frame, code))
        labels = list(dict.fromkeys(c for _, _, c in spans))
        if preset != "xd" and len(labels) > 1:       # one class per video: the longest confirmed
            length = {c: sum(e - b for b, e, k in spans if k == c) for c in labels}
            labels = [max(labels, key=lambda c: length[c])]
        videos.append(ReviewedVideo(content_hash, segs[0].video, labels, sorted(spans)))
    if unknown:
        allowed = ", ".join(get_preset(preset).label_map.values())
        raise DataError(f"confirmed classes not in the {preset} preset: {', '.join(sorted(map(repr, unknown)))}; "
                        f"relabel them to one of: {allowed}")
    return videos


@dataclass
class ReviewTrainingSet:
    """The files written by `build_review_training_set` (official formats) and what went in."""

    root: Path
    preset: str
    train_list: Path
    test_list: Path
    annotations: list[Path]
    train_videos: list[str]
    test_videos: list[str]
    skipped: list[str] = field(default_factory=list)     # reviewed, but no cached features

    def summary(self) -> str:
        return (f"{len(self.train_videos)} reviewed videos for training, {len(self.test_videos)} held out"
                + (f"; {len(self.skipped)} skipped (features not cached)" if self.skipped else ""))


def _safe_name(video: str, content_hash: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", Path(video).stem).strip("-")[:40] or "video"
    return f"{stem}-{content_hash[:10]}"


def _label(video: ReviewedVideo, preset: str) -> str:
    normal = next(iter(get_preset(preset).label_map))
    return "-".join(video.codes) if video.codes else normal


def split_holdout(videos: Sequence[ReviewedVideo], holdout: float, seed: int) -> tuple[list, list]:
    """Deterministic split, stratified by normal / abnormal: about `holdout` of each kind is held
    out, at least one of each kind when there are two or more of it."""
    if not 0 < holdout < 1:
        raise UserError(f"the held-out share must be between 0 and 1, not {holdout}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for kind in (True, False):
        group = sorted((v for v in videos if v.abnormal == kind), key=lambda v: v.content_hash)
        order = rng.permutation(len(group))
        n_test = min(max(1, round(holdout * len(group))), len(group) - 1) if len(group) >= 2 else 0
        test += [group[i] for i in order[:n_test]]
        train += [group[i] for i in order[n_test:]]
    return train, test


def build_review_training_set(reviews: Iterable[ReviewedSegment],
                              features: Callable[[str], np.ndarray | None], out_dir: str | Path,
                              preset: str = "xd", holdout: float = 0.3, seed: int = 0) -> ReviewTrainingSet:
    """Write the reviewed videos whose features `features(content_hash)` returns ([T, D] snippet
    features or [crops, T, D]) as an official training list (`train.csv`), a held-out test list
    (`test.csv`) and its annotations (xd: `annotations.txt` + `annotations_multiclasses.txt`;
    ucf: `annotations.txt`) under `out_dir`. DataError when too little was reviewed."""
    root = Path(out_dir)
    (root / "features").mkdir(parents=True, exist_ok=True)
    videos = reviewed_videos(reviews, preset)
    arrays, skipped = {}, []
    for v in videos:
        array = features(v.content_hash)
        if array is None:
            skipped.append(v.video)
        else:
            arrays[v.content_hash] = np.asarray(array, dtype=np.float32)
    usable = [v for v in videos if v.content_hash in arrays]
    n_abnormal = sum(v.abnormal for v in usable)
    if n_abnormal < 2 or len(usable) - n_abnormal < 2:
        raise DataError(f"too few reviewed videos with cached features: {n_abnormal} with confirmed "
                        f"anomalies and {len(usable) - n_abnormal} normal (at least 2 of each are needed "
                        f"to train and hold some out); {len(skipped)} reviewed videos have no cached features")
    train, test = split_holdout(usable, holdout, seed)

    def write(v: ReviewedVideo, crops: str) -> list[tuple[str, str]]:
        array = arrays[v.content_hash]
        stack = array if array.ndim == 3 else array[None]
        label = _label(v, preset)
        name = f"{_safe_name(v.video, v.content_hash)}_label_{label}"
        rows = []
        for k in range(stack.shape[0] if crops == "all" else 1):
            rel = f"features/{name}__{k}.npy"
            np.save(root / rel, stack[k], allow_pickle=False)
            rows.append((rel, label))
        return rows

    def write_list(path: Path, rows: list[tuple[str, str]]) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["path", "label"])
            out.writerows(rows)

    write_list(root / "train.csv", [row for v in train for row in write(v, "all")])
    write_list(root / "test.csv", [row for v in test for row in write(v, "first")])
    annotations = _write_annotations(root, test, arrays, preset)
    return ReviewTrainingSet(root=root, preset=preset, train_list=root / "train.csv", test_list=root / "test.csv",
                             annotations=annotations, train_videos=[v.video for v in train],
                             test_videos=[v.video for v in test], skipped=skipped)


def _write_annotations(root: Path, test: list[ReviewedVideo], arrays: dict, preset: str) -> list[Path]:
    """The held-out videos' confirmed spans (clipped to their features) in the official format."""
    binary, multi = [], []
    for v in test:
        if not v.abnormal:
            continue
        n_frames = arrays[v.content_hash].shape[-2] * SNIPPET_FRAMES
        spans = [(max(0, s), min(e, n_frames), c) for s, e, c in v.spans if min(e, n_frames) > max(0, s)]
        name = f"{_safe_name(v.video, v.content_hash)}_label_{_label(v, preset)}"
        if preset == "xd":
            binary.append(" ".join([name, *(f"{s} {e}" for s, e, _ in spans)]))
            multi.append(" ".join([name, *(f"{c} {s} {e}" for s, e, c in spans)]))
        else:                        # ucf: exactly two spans, `-1 -1` for none; later ones merged
            first = spans[0]
            second = (spans[1][0], spans[-1][1]) if len(spans) > 1 else (-1, -1)
            binary.append(f"{name} {_label(v, preset)} {first[0]} {first[1]} {second[0]} {second[1]}")
    paths = [root / "annotations.txt"]
    paths[0].write_text("\n".join(binary) + "\n", encoding="utf-8")
    if preset == "xd":
        paths.append(root / "annotations_multiclasses.txt")
        paths[1].write_text("\n".join(multi) + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------
# features of reviewed videos: the app's feature cache

def cached_features(cache_dir: str | Path, model_path: str | Path, device: str = "cpu"
                    ) -> Callable[[str], np.ndarray | None]:
    """`features(content_hash)` reading the app's feature cache for the CLIP of the checkpoint at
    `model_path`, trying the frame samplings the app offers (16 per snippet, the official
    features, first)."""
    from .factory import load_model
    from .features import SAMPLES_PER_SNIPPET, ExtractSettings, FeatureCache, backbone_id

    detector = load_model(model_path, device=device).detector
    backbone = backbone_id(detector.clip_info, detector.clip_model)
    cache = FeatureCache(cache_dir)
    samplings = sorted(SAMPLES_PER_SNIPPET, reverse=True)

    def lookup(content_hash: str) -> np.ndarray | None:
        for n in samplings:
            found = cache.get(FeatureCache.key(content_hash, backbone, ExtractSettings(samples_per_snippet=n)))
            if found is not None:
                return found
        return None
    return lookup


# ---------------------------------------------------------------------------------------------
# fine-tuning and the before / after numbers

@dataclass
class ReviewFineTune:
    """A fine-tune from reviews: the data, the run, and the held-out metrics before and after."""

    dataset: ReviewTrainingSet
    before: dict
    after: dict
    checkpoint: Path
    steps: int

    def report(self) -> str:
        rows = [f"{self.dataset.summary()}; {self.steps} steps -> {self.checkpoint}",
                f"{'held-out':<10} {'AUC (C)':>8} {'AP (C)':>8} {'AUC (A)':>8} {'AP (A)':>8}"]
        for name, m in (("before", self.before), ("after", self.after)):
            rows.append(f"{name:<10} {m['auc_c']:>8.4f} {m['ap_c']:>8.4f} {m['auc_a']:>8.4f} {m['ap_a']:>8.4f}")
        return "\n".join(rows)


def evaluate_checkpoint(path: str | Path, dataset: ReviewTrainingSet, device: str = "cpu") -> dict:
    """Frame-level metrics of the checkpoint at `path` on the held-out reviewed videos."""
    from .evaluate import evaluate, load_eval_set
    from .factory import load_vadclip_model

    eval_set = load_eval_set(dataset.test_list, [str(p) for p in dataset.annotations], preset=dataset.preset)
    model = load_vadclip_model(path, preset=dataset.preset, device=device)
    return evaluate(model, eval_set).as_dict()


def fine_tune_from_reviews(db_url: str, init: str | Path, out_dir: str | Path, cache_dir: str | Path | None = None,
                           features: Callable[[str], np.ndarray | None] | None = None, preset: str = "xd",
                           holdout: float = 0.3, seed: int = 0, device: str = "cpu",
                           on_progress: Callable[[dict], None] | None = None, **train_options) -> ReviewFineTune:
    """Build the training set from the reviews at `db_url` (features from `features`, or the app's
    feature cache at `cache_dir` for `init`'s CLIP), fine-tune `init` on it (`vadclip.train.train`
    with `init=`; `train_options` are further `TrainConfig` fields such as `epochs`, `max_steps`,
    `batch_size`, `lr`), and evaluate `init` and the fine-tuned weights (the last ones: the held-out
    videos never select a checkpoint) on the held-out part."""
    from .train import TrainConfig, train

    if features is None:
        if cache_dir is None:
            raise UserError("give the feature cache folder of the reviewed videos (the app's data/feature_cache)")
        features = cached_features(cache_dir, init, device)
    out = Path(out_dir)
    dataset = build_review_training_set(read_reviews(db_url), features, out / "reviews_data", preset,
                                        holdout, seed)
    before = evaluate_checkpoint(init, dataset, device)
    # no test list while training: the held-out videos never choose a checkpoint (the last is kept)
    config = TrainConfig(preset=preset, train_list=str(dataset.train_list), out_dir=str(out), init=str(init),
                         device=device, num_workers=0, **train_options)
    result = train(config, on_progress=on_progress)
    after = evaluate_checkpoint(result.last_path, dataset, device)
    return ReviewFineTune(dataset=dataset, before=before, after=after, checkpoint=result.last_path,
                          steps=result.steps)
