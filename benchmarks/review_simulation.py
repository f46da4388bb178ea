"""Reviews simulated from a synthetic benchmark's ground truth, for the review-to-training loop
(tests/test_desk_training.py, benchmarks/bench_desk.py).

Every test video of a `synth_vad.py` xd benchmark becomes a reviewed video in a real review
database (app/review_db.ReviewStore): its annotated segments are flagged and confirmed with their
class; a normal video gets one flagged span (a false alarm) that is dismissed. Its features are
what the feature cache would hold for it (`features[content_hash]`).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from vadclip.config import get_preset
from vadclip.formats import read_annotations
from vadclip.results import DetectedSegment, DetectionParams, VideoScores

SNIPPET = 16


def _scores(name: str, content_hash: str, n_snippets: int, spans: list[tuple[int, int, str]]) -> VideoScores:
    """A minimal analysis of one video flagging `spans` (frames, class name)."""
    start = np.arange(n_snippets) * SNIPPET / 25.0
    segments = [DetectedSegment(start_s=s / 25, end_s=e / 25, start_frame=s, end_frame=e, label=label,
                                confidence=0.8, peak_score=0.9, mean_score=0.8) for s, e, label in spans]
    names = ["normal", *get_preset("xd").label_map.values()][: 7]
    fine = np.full((n_snippets, len(names)), 1 / len(names), dtype=np.float32)
    return VideoScores(video=f"{name}.mp4", content_hash=content_hash, fps=25.0, n_frames=n_snippets * SNIPPET,
                       duration_s=n_snippets * SNIPPET / 25, snippet_frames=SNIPPET, samples_per_snippet=16,
                       snippet_start_s=start, snippet_end_s=start + SNIPPET / 25,
                       curves={"c": fine[:, 1:].sum(1), "a": 1 - fine[:, 0]}, fine=fine, class_names=names,
                       segments=segments, params=DetectionParams(), model="simulated", random_weights=False)


def simulate_reviews(synth_root: Path, db_url: str, reviewer: str = "simulated moderator",
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Queue and decide every test video of the synthetic xd benchmark at `synth_root` in the
    review database at `db_url`; returns {content hash: features} (the feature cache's view)."""
    from app.review_db import ReviewStore

    label_map = get_preset("xd").label_map
    annotations = read_annotations(synth_root / "annotations_multiclasses.txt", preset="xd")
    rng = np.random.default_rng(seed)
    features: dict[str, np.ndarray] = {}
    store = ReviewStore(db_url)
    try:
        with open(synth_root / "xd_test.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            name = Path(row["path"]).name.split("__")[0]
            array = np.load(synth_root / row["path"], allow_pickle=False).astype(np.float32)
            content_hash = hashlib.sha256(f"synthetic:{synth_root.name}:{name}".encode()).hexdigest()
            features[content_hash] = array
            n = len(array)
            truth = [(s.start_frame, min(s.end_frame, n * SNIPPET), label_map[s.label])
                     for s in annotations.get(name, []) if s.start_frame < n * SNIPPET]
            if truth:
                spans, action = truth, "confirmed"
            else:                                  # a false alarm on a normal video
                a = int(rng.integers(0, max(1, n - 4)))
                spans, action = [(a * SNIPPET, min(n, a + 4) * SNIPPET, "fighting")], "dismissed"
            for record in store.sync_segments(_scores(name, content_hash, n, spans)):
                store.decide(record.id, action, reviewer=reviewer)
    finally:
        store.close()
    return features
