"""vadclip: VadCLIP weakly supervised video anomaly detection, faithful to the official code."""
from .checkpoint import (build_model, load_checkpoint, load_model, load_official_checkpoint,
                         save_checkpoint)
from .clip_backbone import ClipInfo, load_clip
from .config import PRESETS, ModelConfig, get_preset
from .inference import FeatureScores, score_features
from .model import VadCLIP, VadCLIPOutput
from .train import TrainConfig, TrainResult, train
from .scoring import FeatureScorer, score_video
from .segments import detect_segments
from . import losses, metrics

__version__ = "0.1.0"

__all__ = [
    "build_model", "load_checkpoint", "load_model", "load_official_checkpoint", "save_checkpoint",
    "ClipInfo", "load_clip", "PRESETS", "ModelConfig", "get_preset", "FeatureScores",
    "score_features", "VadCLIP", "VadCLIPOutput", "TrainConfig", "TrainResult", "train",
    "FeatureScorer", "score_video", "detect_segments", "losses", "metrics",
]
