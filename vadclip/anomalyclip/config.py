"""AnomalyCLIP presets (xd, ucf, sht) as data: model shape and the official training recipe.

Numbers from `../shared/spec/official-anomalyclip.md` (table "preset", and "Training"). Class
names are those of the official `data/<d>_labels.csv`, sorted as Python strings (the order the
official code indexes them in); `normal_id` is the position of the normal class.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import OptionError


@dataclass(frozen=True)
class AnomalyCLIPConfig:
    """Shape of an AnomalyCLIP model (what an official checkpoint does not name)."""

    preset: str
    class_names: tuple[str, ...]    # sorted official order; index = class id
    normal_id: int                  # index of the normal class in class_names
    emb_dim: int                    # width of the axial transformer
    depth: int                      # axial transformer depth (attention + feed-forward pairs)
    concat: bool = False            # temporal input = [logits, x - c] (sht) instead of x - c
    heads: int = 8
    num_segments: int = 32          # S: rows of a grid
    seg_length: int = 16            # L: frames per segment (columns of a grid)
    n_ctx: int = 8                  # learned context tokens per class prompt
    feature_dim: int = 512          # D: CLIP image embedding width

    def __post_init__(self):
        if not 0 <= self.normal_id < len(self.class_names):
            raise ValueError(f"normal_id {self.normal_id} outside the {len(self.class_names)} classes")
        if self.emb_dim % self.heads:
            raise ValueError(f"emb_dim {self.emb_dim} is not divisible by {self.heads} heads")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def grid_frames(self) -> int:
        """Frames in one 32 x 16 grid (512): clip length in training, padding unit at test time."""
        return self.num_segments * self.seg_length

    @property
    def temporal_input_dim(self) -> int:
        return self.feature_dim + (self.num_classes - 1) * self.concat

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AnomalyCLIPConfig":
        d = dict(d)
        d["class_names"] = tuple(d["class_names"])
        return cls(**d)


@dataclass(frozen=True)
class Recipe:
    """The official training hyper-parameters of a preset."""

    lr: float
    epochs: int
    warmup_epochs: int
    batch_size: int = 64            # 32 abnormal + 32 normal clips
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    topk: int = 3
    bottomk: int = 3
    dropout: float = 0.7            # segment dropout of the top-k and bottom-k selection
    smooth_weight: float = 8e-4
    sparse_weight: float = 8e-3
    seed: int = 1024


XD_CLASSES = ("Abuse", "Car_accident", "Explosion", "Fighting", "Normal", "Riot", "Shooting")
UCF_CLASSES = ("Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "Normal",
               "RoadAccidents", "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism")
SHT_CLASSES = ("car", "chasing", "circuit", "fall", "fighting", "hurdle", "jumping", "monocycle",
               "normal", "push", "robbery", "running", "skateboard", "step", "stoop", "throwing object",
               "vaudeville", "vehicle")

PRESETS: dict[str, tuple[AnomalyCLIPConfig, Recipe]] = {
    "xd": (AnomalyCLIPConfig("xd", XD_CLASSES, normal_id=4, emb_dim=128, depth=1),
           Recipe(lr=5e-6, epochs=50, warmup_epochs=5)),
    "ucf": (AnomalyCLIPConfig("ucf", UCF_CLASSES, normal_id=7, emb_dim=256, depth=1),
            Recipe(lr=1e-5, epochs=50, warmup_epochs=5)),
    "sht": (AnomalyCLIPConfig("sht", SHT_CLASSES, normal_id=8, emb_dim=256, depth=2, concat=True),
            Recipe(lr=5e-4, epochs=100, warmup_epochs=10)),
}


def get_preset(name: str) -> tuple[AnomalyCLIPConfig, Recipe]:
    """(model config, training recipe) of preset `name` ("xd", "ucf" or "sht")."""
    try:
        return PRESETS[name]
    except KeyError:
        raise OptionError(f"unknown AnomalyCLIP preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def model_config(name: str) -> AnomalyCLIPConfig:
    return get_preset(name)[0]


def recipe(name: str) -> Recipe:
    return get_preset(name)[1]
