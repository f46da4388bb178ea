"""vadclip: video anomaly detection on CLIP features (VadCLIP, CLIP zero-shot), faithful to the
official code. See the README's "How it fits together" for which module owns which step."""
from .checkpoint import build_model, load_checkpoint, load_official_checkpoint, save_checkpoint
from .clip_backbone import ClipInfo, load_clip
from .config import PRESETS, ModelConfig, get_preset
from .detectors import Detector, DetectorScores, VadCLIPDetector, ZeroShotDetector
from .errors import UserError
from .factory import (CheckpointKind, LoadedModel, load_model, load_vadclip_model,
                      register_checkpoint_kind)
from .inference import FeatureScores, score_features
from .model import VadCLIP, VadCLIPOutput
from .results import DetectionParams, VideoScores
from .train import TrainConfig, TrainResult
from .methods import train   # VadCLIP or AnomalyCLIP, by the config's type
from .scoring import VideoFeatureResult, redetect, score_video, score_video_features, video_features
from .segments import detect_segments
from . import losses, metrics

__version__ = "0.1.0"

__all__ = [
    "build_model", "load_checkpoint", "load_official_checkpoint", "save_checkpoint",
    "ClipInfo", "load_clip", "PRESETS", "ModelConfig", "get_preset",
    "Detector", "DetectorScores", "VadCLIPDetector", "ZeroShotDetector", "UserError",
    "CheckpointKind", "LoadedModel", "load_model", "load_vadclip_model", "register_checkpoint_kind",
    "FeatureScores", "score_features", "VadCLIP", "VadCLIPOutput", "DetectionParams", "VideoScores",
    "TrainConfig", "TrainResult", "train",
    "VideoFeatureResult", "redetect", "score_video", "score_video_features",
    "video_features", "detect_segments", "losses", "metrics",
]
