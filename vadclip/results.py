"""What scoring a video produces: per-snippet scores, detected segments, and how they were made.

`VideoScores` is the one object passed from `score_video` to the CLI (as JSON) and to the app.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

BRANCHES = ("c", "a")   # c: C-branch sigmoid score; a: A-branch 1 - P(normal)


@dataclass(frozen=True)
class DetectionParams:
    """How segments are cut from a coarse score curve.

    Snippets whose score on `branch` is >= `threshold` are flagged; flagged runs separated by less
    than `min_gap_s` seconds are merged; merged runs shorter than `min_duration_s` are dropped.
    Each segment is labelled with the class of highest mean fine-grained probability over it
    (normal excluded).
    """

    threshold: float = 0.5
    branch: str = "c"
    min_gap_s: float = 1.0
    min_duration_s: float = 1.0

    def __post_init__(self):
        if self.branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {self.branch!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.min_gap_s < 0 or self.min_duration_s < 0:
            raise ValueError("min_gap_s and min_duration_s must be >= 0")


@dataclass(frozen=True)
class DetectedSegment:
    start_s: float
    end_s: float
    start_frame: int          # first frame of the segment
    end_frame: int            # one past its last frame
    label: str                # class name (never the normal class)
    confidence: float         # mean fine-grained probability of `label` over the segment
    peak_score: float         # highest coarse score inside the segment
    mean_score: float         # mean coarse score inside the segment


@dataclass
class VideoScores:
    """Scores of one video. Arrays have one row per snippet of `snippet_frames` frames."""

    video: str                      # file name as uploaded
    content_hash: str
    fps: float
    n_frames: int
    duration_s: float
    snippet_frames: int             # 16, as the official features
    samples_per_snippet: int        # frames actually encoded per snippet (16 = all)
    snippet_start_s: np.ndarray     # [N]
    snippet_end_s: np.ndarray       # [N]
    coarse_c: np.ndarray            # [N]
    coarse_a: np.ndarray            # [N]
    fine: np.ndarray                # [N, C]
    class_names: list[str]
    segments: list[DetectedSegment]
    params: DetectionParams
    model: str                      # description of the model that produced the scores
    random_weights: bool = False    # True: the CLIP has random weights, scores are meaningless
    extras: dict = field(default_factory=dict)

    @property
    def n_snippets(self) -> int:
        return int(self.coarse_c.shape[0])

    def coarse(self, branch: str) -> np.ndarray:
        return self.coarse_c if branch == "c" else self.coarse_a

    def to_dict(self) -> dict:
        d = {
            "video": self.video, "content_hash": self.content_hash, "fps": self.fps,
            "n_frames": self.n_frames, "duration_s": self.duration_s,
            "snippet_frames": self.snippet_frames, "samples_per_snippet": self.samples_per_snippet,
            "model": self.model, "random_weights": self.random_weights,
            "class_names": list(self.class_names), "params": asdict(self.params),
            "snippets": {
                "start_s": self.snippet_start_s.tolist(), "end_s": self.snippet_end_s.tolist(),
                "coarse_c": self.coarse_c.tolist(), "coarse_a": self.coarse_a.tolist(),
                "fine": self.fine.tolist(),
            },
            "segments": [asdict(s) for s in self.segments],
            "extras": self.extras,
        }
        if self.random_weights:
            d["warning"] = "RANDOM CLIP WEIGHTS: scores are meaningless (test/timing mode)"
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoScores":
        s = d["snippets"]
        n_classes = len(d["class_names"])
        return cls(
            video=d["video"], content_hash=d["content_hash"], fps=float(d["fps"]),
            n_frames=int(d["n_frames"]), duration_s=float(d["duration_s"]),
            snippet_frames=int(d["snippet_frames"]), samples_per_snippet=int(d["samples_per_snippet"]),
            snippet_start_s=np.asarray(s["start_s"], dtype=np.float64),
            snippet_end_s=np.asarray(s["end_s"], dtype=np.float64),
            coarse_c=np.asarray(s["coarse_c"], dtype=np.float32),
            coarse_a=np.asarray(s["coarse_a"], dtype=np.float32),
            fine=np.asarray(s["fine"], dtype=np.float32).reshape(-1, n_classes),
            class_names=list(d["class_names"]),
            segments=[DetectedSegment(**x) for x in d["segments"]],
            params=DetectionParams(**d["params"]), model=d["model"],
            random_weights=bool(d.get("random_weights", False)), extras=d.get("extras", {}),
        )
