"""The Train tab's handlers: feature lists under the data root, start / cancel / watch one
background training run (`app.training.Trainer`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vadclip.config import PRESETS, TrainRecipe, get_preset
from vadclip.errors import OptionError, UserError
from vadclip.train import TrainConfig

from ..models import ZERO_SHOT, ModelChoice
from ..training import TrainingJob, list_files, resolve_in_root, run_folder_name
from .context import AppContext

FRESH_ADAPTER = (ZERO_SHOT, "fresh adapter on VADCLIP_CLIP")   # "start from" value and label


@dataclass(frozen=True)
class TrainingFiles:
    """What the Train tab offers: feature lists and annotation files under the data root (paths
    relative to it), and the likely choice of each ("" = none)."""

    lists: list[str]
    annotations: list[str]
    train: str | None
    test: str
    annotation: str


@dataclass(frozen=True)
class TrainingView:
    """The Train tab's view of the current (or last) run."""

    status: str                    # one line of markdown
    started: bool                  # False: no training since the app started
    running: bool
    events: list[dict]             # progress events of `vadclip.train.train` (for the curves)
    log: str
    checkpoint: str | None         # the finished run's checkpoint file, for download


def default_preset() -> str:
    return next(iter(PRESETS))


def recipe(preset: str) -> TrainRecipe:
    """The preset's official training recipe (the Train tab's defaults); OptionError for an
    unknown preset."""
    return get_preset(preset).train


def init_choices(choices: list[ModelChoice]) -> list[ModelChoice]:
    """Training's "start from": a fresh adapter, or any checkpoint (zero-shot is not one)."""
    fresh = ModelChoice(FRESH_ADAPTER[0], FRESH_ADAPTER[1], "fresh")
    return [fresh] + [c for c in choices if c.key != ZERO_SHOT]


def training_files(ctx: AppContext) -> tuple[list[str], list[str]]:
    """(feature lists *.csv, annotation files *.txt) under the data root, relative paths."""
    root = ctx.config.training_root
    return list_files(root, (".csv",)), list_files(root, (".txt",))


def default_training_files(lists: list[str], annotations: list[str]) -> tuple[str | None, str, str]:
    """Likely (training list, test list, annotations): names with "train" / "test" preferred,
    the multi-class XD annotation file avoided ("" = none)."""
    train = next((p for p in lists if "train" in Path(p).name.lower()), lists[0] if lists else None)
    test = next((p for p in lists if "test" in Path(p).name.lower() and p != train), "")
    plain = [a for a in annotations if "multiclass" not in Path(a).name.lower()]
    return train, test, (plain or annotations or [""])[0]


def training_file_choices(ctx: AppContext) -> TrainingFiles:
    """The files the Train tab offers, with their defaults."""
    lists, annotations = training_files(ctx)
    return TrainingFiles(lists, annotations, *default_training_files(lists, annotations))


def start_training(ctx: AppContext, train_list: str | None, test_list: str | None,
                   annotations: str | None, preset: str, init_key: str | None, epochs: int,
                   lr: float, batch_size: int, max_steps: int | None = None,
                   eval_every_steps: int | None = None, seed: int | None = None) -> TrainingJob:
    """Start a training run in the background; its folder goes into the models folder.

    `init_key` is a model choice to start from (ZERO_SHOT / None: a fresh adapter on the app's
    CLIP). `max_steps` 0 / None: no limit."""
    root = ctx.config.training_root
    train_path = resolve_in_root(train_list, root, "training feature list")
    test_path = resolve_in_root(test_list or None, root, "test feature list", required=False)
    ann_path = resolve_in_root(annotations or None, root, "annotation file", required=test_path is not None)
    recipe(preset)                                   # UserError for an unknown preset
    for name, value, low in (("epochs", epochs, 1), ("batch size", batch_size, 1)):
        if value is None or int(value) < low:
            raise OptionError(f"{name} must be at least {low}")
    if lr is None or not 0 < float(lr) < 1:
        raise OptionError("the learning rate must be between 0 and 1")
    config = TrainConfig(
        preset=preset, train_list=str(train_path), test_list=str(test_path) if test_path else None,
        annotations=str(ann_path) if ann_path else None,
        out_dir=str(ctx.config.models_dir / run_folder_name(preset)), clip=ctx.config.clip,
        init=init_key if init_key and init_key != ZERO_SHOT else None,
        epochs=int(epochs), lr=float(lr), batch_size=int(batch_size),
        seed=int(seed) if seed is not None else None, device=ctx.device, data_root=str(root),
        num_workers=0, max_steps=int(max_steps) if max_steps else None,
        eval_every_steps=int(eval_every_steps) if eval_every_steps is not None else None,
    )
    return ctx.trainer.start(config)


def cancel_training(ctx: AppContext) -> str:
    """Ask the running training to stop at its next step; UserError when none is running."""
    if not ctx.trainer.cancel():
        raise UserError("no training is running")
    return "Stopping at the next step…"


def training_view(ctx: AppContext) -> TrainingView:
    """Status line, progress and finished checkpoint of the current (or last) run."""
    snap = ctx.trainer.snapshot()
    if snap is None:
        return TrainingView("No training yet.", False, False, [], "", None)
    status = f"**{snap.state}** · {snap.elapsed_s:.0f} s · run folder `{snap.out_dir.name}`"
    checkpoint = None
    if not snap.running and snap.checkpoint is not None and snap.checkpoint.is_file():
        checkpoint = str(snap.checkpoint)
    return TrainingView(status, True, snap.running, snap.events, snap.log, checkpoint)
