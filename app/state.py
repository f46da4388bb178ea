"""Per-browser-session state, kept in a `gr.State(Session)` (never in module globals)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vadclip.results import VideoScores
from vadclip.video import VideoInfo


@dataclass
class Session:
    """What one browser tab has analysed: the video, its features and its current scores.

    Keeping the features here makes a new vocabulary (adapter only) or new thresholds (segments
    only) instant.
    """

    video_path: str | None = None
    info: VideoInfo | None = None
    content_hash: str | None = None
    features: np.ndarray | None = None
    features_key: tuple | None = None        # (content hash, CLIP backbone id, samples per snippet)
    model_key: tuple | None = None           # (dropdown value, preset) of the current scores
    scores: VideoScores | None = None
    review_ids: list[int] = field(default_factory=list)   # review item id of each segment
    selected: int | None = None              # segment shown in the preview
    thumbnails: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (start, end frame) -> JPEG
    uploaded_models: list[str] = field(default_factory=list)

