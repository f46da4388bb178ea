"""AnomalyCLIP (Zanella et al., CVIU 2024) exactly as its official code computes it.

    from vadclip import anomalyclip
    model = anomalyclip.load_official_checkpoint("last.ckpt", preset="xd", centroid="ncentroid.pt")
    out = anomalyclip.score_frames(model, features)        # [N, 512] per-frame CLIP features
    m = anomalyclip.frame_metrics(scores, class_probs, frame_labels, normal_id)
"""
from .centroid import load_centroid, normal_centroid
from .checkpoint import (is_anomalyclip_checkpoint, is_official_checkpoint, load_checkpoint,
                         load_official_checkpoint, read_lightning_checkpoint, save_checkpoint)
from .config import PRESETS, AnomalyCLIPConfig, Recipe, get_preset
from .metrics import frame_metrics
from .model import AnomalyCLIP, AnomalyCLIPOutput
from .scoring import FrameScores, score_frames

__all__ = [
    "load_centroid", "normal_centroid", "is_anomalyclip_checkpoint", "is_official_checkpoint", "load_checkpoint",
    "load_official_checkpoint", "read_lightning_checkpoint", "save_checkpoint", "PRESETS",
    "AnomalyCLIPConfig", "Recipe", "get_preset", "frame_metrics", "AnomalyCLIP", "AnomalyCLIPOutput",
    "FrameScores", "score_frames",
]

# Training (vadclip.anomalyclip.train; `train` is the function, as in vadclip's own namespace).
from .train import TrainConfig, TrainError, TrainResult, train  # noqa: E402

__all__ += ["TrainConfig", "TrainError", "TrainResult", "train"]

# The detector (vadclip.anomalyclip.detector) imports vadclip.factory, which imports this package
# for the preset names: it is loaded on first use here, and by vadclip.factory itself.
__all__ += ["AnomalyCLIPDetector"]


def __getattr__(name: str):
    if name == "AnomalyCLIPDetector":
        from .detector import AnomalyCLIPDetector
        return AnomalyCLIPDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
