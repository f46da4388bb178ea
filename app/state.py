"""Per-browser-session state, kept in a `gr.State(Session)` (never in module globals)."""
from __future__ import annotations

from dataclasses import dataclass, field

from vadclip.results import VideoScores
from vadclip.scoring import VideoFeatureResult


@dataclass
class Session:
    """What one browser tab has analysed: the video, its features and its current scores.

    Keeping the features here makes a new vocabulary or model on the same CLIP (detector only)
    or new thresholds (segments only) instant.
    """

    video_path: str | None = None
    features: VideoFeatureResult | None = None   # CLIP features of the video (+ its info and hash)
    model_key: tuple | None = None           # (dropdown value, preset) of the current scores
    scores: VideoScores | None = None
    review_ids: list[int] = field(default_factory=list)   # review item id of each segment
    selected: int | None = None              # segment shown in the preview
    thumbnails: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (start, end frame) -> JPEG
    uploaded_models: list[str] = field(default_factory=list)
