"""What scoring a video produces: per-row scores, detected segments, and how they were made.

`VideoScores` is the one object passed from `score_video_features` to the CLI (as JSON) and to
the app; it holds any detector's output. Rows are consecutive groups of `snippet_frames` frames
(16 for VadCLIP's snippets, 1 for a per-frame detector); `curves` holds one coarse anomaly curve
per branch of the detector (VadCLIP: "c" and "a"; CLIP zero-shot: "a").

JSON schema (`to_dict` / `from_dict`)::

    {"video", "content_hash", "fps", "n_frames", "duration_s",
     "snippet_frames": frames per row, "samples_per_snippet": frames encoded per row,
     "model": description, "random_weights": bool, "branches": ["c", "a"],
     "class_names": [...], "params": DetectionParams as a dict,
     "snippets": {"start_s": [N], "end_s": [N], "coarse_<branch>": [N] for each branch,
                  "fine": [N][C]},
     "segments": [DetectedSegment as a dict, ...], "extras": {...},
     "warning": RANDOM_WEIGHTS_WARNING (only when random_weights)}

A VadCLIP result has the same keys as before detectors were generalised (`coarse_c`, `coarse_a`);
a file without "branches" is read as VadCLIP's ("c", "a").
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .constants import RANDOM_WEIGHTS_WARNING
from .errors import OptionError


@dataclass(frozen=True)
class DetectionParams:
    """How segments are cut from a coarse score curve.

    Rows whose score on `branch` (None: the detector's default, its first branch) is >=
    `threshold` are flagged; flagged runs separated by less than `min_gap_s` seconds are merged; merged runs shorter than `min_duration_s` are dropped.
    Each segment is labelled with the class of highest mean fine-grained probability over it
    (normal excluded).
    """

    threshold: float = 0.5
    branch: str | None = None
    min_gap_s: float = 1.0
    min_duration_s: float = 1.0

    def __post_init__(self):
        if self.branch is not None and (not isinstance(self.branch, str) or not self.branch):
            raise OptionError(f"branch must be a curve name such as 'c' or 'a', got {self.branch!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise OptionError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.min_gap_s < 0 or self.min_duration_s < 0:
            raise OptionError("min_gap_s and min_duration_s must be >= 0")


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
    """Scores of one video; arrays have one row per group of `snippet_frames` frames."""

    video: str                      # file name as uploaded
    content_hash: str
    fps: float
    n_frames: int
    duration_s: float
    snippet_frames: int             # frames per row: 16 (VadCLIP's snippets) or 1 (per frame)
    samples_per_snippet: int        # frames actually encoded per row (16 = all of a snippet)
    snippet_start_s: np.ndarray     # [N]
    snippet_end_s: np.ndarray       # [N]
    curves: dict[str, np.ndarray]   # branch -> [N] coarse anomaly score; first = default branch
    fine: np.ndarray                # [N, C] class probabilities
    class_names: list[str]
    segments: list[DetectedSegment]
    params: DetectionParams
    model: str                      # description of the detector that produced the scores
    random_weights: bool = False    # True: the CLIP has random weights, scores are meaningless
    extras: dict = field(default_factory=dict)

    @property
    def n_snippets(self) -> int:
        """Number of rows."""
        return int(self.fine.shape[0])

    @property
    def branches(self) -> tuple[str, ...]:
        return tuple(self.curves)

    def coarse(self, branch: str | None = None) -> np.ndarray:
        """The coarse curve of `branch` (None: the default branch); OptionError if absent."""
        branch = self.branches[0] if branch is None else branch
        if branch not in self.curves:
            raise OptionError(f"this model gives no {branch!r} curve; it gives "
                              f"{', '.join(repr(b) for b in self.branches)}")
        return self.curves[branch]

    @property
    def coarse_c(self) -> np.ndarray:
        """VadCLIP's C-branch curve."""
        return self.coarse("c")

    @property
    def coarse_a(self) -> np.ndarray:
        """VadCLIP's A-branch curve (zero-shot's only curve)."""
        return self.coarse("a")

    def to_dict(self) -> dict:
        """The JSON document described in the module docstring."""
        snippets = {"start_s": self.snippet_start_s.tolist(), "end_s": self.snippet_end_s.tolist()}
        snippets.update({f"coarse_{b}": c.tolist() for b, c in self.curves.items()})
        snippets["fine"] = self.fine.tolist()
        d = {
            "video": self.video, "content_hash": self.content_hash, "fps": self.fps,
            "n_frames": self.n_frames, "duration_s": self.duration_s,
            "snippet_frames": self.snippet_frames, "samples_per_snippet": self.samples_per_snippet,
            "model": self.model, "random_weights": self.random_weights,
            "branches": list(self.branches),
            "class_names": list(self.class_names), "params": asdict(self.params),
            "snippets": snippets,
            "segments": [asdict(s) for s in self.segments],
            "extras": self.extras,
        }
        if self.random_weights:
            d["warning"] = RANDOM_WEIGHTS_WARNING
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoScores":
        s = d["snippets"]
        n_classes = len(d["class_names"])
        branches = d.get("branches", ["c", "a"])
        return cls(
            video=d["video"], content_hash=d["content_hash"], fps=float(d["fps"]),
            n_frames=int(d["n_frames"]), duration_s=float(d["duration_s"]),
            snippet_frames=int(d["snippet_frames"]), samples_per_snippet=int(d["samples_per_snippet"]),
            snippet_start_s=np.asarray(s["start_s"], dtype=np.float64),
            snippet_end_s=np.asarray(s["end_s"], dtype=np.float64),
            curves={b: np.asarray(s[f"coarse_{b}"], dtype=np.float32) for b in branches},
            fine=np.asarray(s["fine"], dtype=np.float32).reshape(-1, n_classes),
            class_names=list(d["class_names"]),
            segments=[DetectedSegment(**x) for x in d["segments"]],
            params=DetectionParams(**d["params"]), model=d["model"],
            random_weights=bool(d.get("random_weights", False)), extras=d.get("extras", {}),
        )
