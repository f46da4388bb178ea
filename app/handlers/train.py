"""The Train tab's handlers: feature lists under the data root, start / cancel / watch one
background training run (`app.training.Trainer`) of VadCLIP (`start_training`) or AnomalyCLIP
(`start_anomalyclip_training`), optionally once per seed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vadclip import anomalyclip
from vadclip.config import PRESETS, TrainRecipe, get_preset
from vadclip.errors import OptionError, UserError
from vadclip.seeds import parse_seeds
from vadclip.train import TrainConfig

from ..models import ZERO_SHOT, ModelChoice
from ..training import (TrainingJob, list_files, list_folders, resolve_folder_in_root, resolve_in_root,
                        new_run_folder)
from .context import AppContext

FRESH_ADAPTER = (ZERO_SHOT, "fresh adapter on VADCLIP_CLIP")   # "start from" value and label
METHODS = {"VadCLIP": "vadclip", "AnomalyCLIP": "anomalyclip"}  # the tab's label -> method


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


def check_seeds(seeds: str | None) -> tuple[int, ...] | None:
    """The seeds box: "" / None = one run; "0,1,2" or "0-4" = one run per seed. OptionError if malformed."""
    if seeds is None or not str(seeds).strip():
        return None
    try:
        return parse_seeds(str(seeds))
    except ValueError as err:
        raise OptionError(f"seeds: {err}") from None


def _check_schedule(epochs, lr, batch_size, even_batch: bool = False) -> None:
    for name, value, low in (("epochs", epochs, 1), ("batch size", batch_size, 2 if even_batch else 1)):
        if value is None or int(value) < low:
            raise OptionError(f"{name} must be at least {low}")
    if even_batch and int(batch_size) % 2:
        raise OptionError("the batch size must be even (half abnormal, half normal clips)")
    if lr is None or not 0 < float(lr) < 1:
        raise OptionError("the learning rate must be between 0 and 1")


def start_training(ctx: AppContext, train_list: str | None, test_list: str | None,
                   annotations: str | None, preset: str, init_key: str | None, epochs: int,
                   lr: float, batch_size: int, max_steps: int | None = None,
                   eval_every_steps: int | None = None, seed: int | None = None,
                   features_root: str | None = None, seeds: str | None = None) -> TrainingJob:
    """Start a VadCLIP training run in the background; its folder goes into the models folder.

    `init_key` is a model choice to start from (ZERO_SHOT / None: a fresh adapter on the app's
    CLIP). `max_steps` 0 / None: no limit. `features_root`: a folder under the data root where
    listed files that do not exist are found by name (lists as downloaded). `seeds` ("0,1,2"):
    one run per seed in ``<run>/seed_<s>`` and a summary."""
    root = ctx.config.training_root
    train_path = resolve_in_root(train_list, root, "training feature list")
    test_path = resolve_in_root(test_list or None, root, "test feature list", required=False)
    ann_path = resolve_in_root(annotations or None, root, "annotation file", required=test_path is not None)
    features_path = resolve_folder_in_root(features_root or None, root, "features root", required=False)
    recipe(preset)                                   # UserError for an unknown preset
    _check_schedule(epochs, lr, batch_size)
    run_seeds = check_seeds(seeds)
    config = TrainConfig(
        preset=preset, train_list=str(train_path), test_list=str(test_path) if test_path else None,
        annotations=str(ann_path) if ann_path else None,
        out_dir=str(new_run_folder(ctx.config.models_dir, preset)), clip=ctx.config.clip,
        init=init_key if init_key and init_key != ZERO_SHOT else None,
        epochs=int(epochs), lr=float(lr), batch_size=int(batch_size),
        seed=int(seed) if seed is not None else None, device=ctx.device, data_root=str(root),
        num_workers=0, max_steps=int(max_steps) if max_steps else None,
        eval_every_steps=int(eval_every_steps) if eval_every_steps is not None else None,
        features_root=str(features_path) if features_path else None,
    )
    return ctx.trainer.start(config, seeds=run_seeds)


# --------------------------------------------------------------------------- AnomalyCLIP

@dataclass(frozen=True)
class AnomalyCLIPFiles:
    """What the Train tab offers for AnomalyCLIP: list / annotation files (*.txt) and folders under
    the data root (relative paths), and the likely choice of each ("" = none)."""

    texts: list[str]
    folders: list[str]
    normal: str
    abnormal: str
    test: str
    annotation: str
    features_root: str


def anomalyclip_presets() -> list[str]:
    return list(anomalyclip.PRESETS)


def anomalyclip_recipe(preset: str) -> anomalyclip.Recipe:
    """The AnomalyCLIP preset's official recipe (the tab's defaults); OptionError for an unknown preset."""
    return anomalyclip.get_preset(preset)[1]


def default_anomalyclip_files(texts: list[str], folders: list[str]) -> tuple[str, str, str, str, str]:
    """Likely (normal list, abnormal list, test list, annotation, features root) by the official
    names (Anomaly_Train_Normal.txt, ..., a folder named "features"); "" = none."""
    def pick(*words: str, avoid: tuple[str, ...] = ()) -> str:
        return next((t for t in texts if all(w in Path(t).name.lower() for w in words)
                     and not any(a in Path(t).name.lower() for a in avoid)), "")

    normal = pick("train", "normal", avoid=("abnormal",))
    features = next((f for f in folders if Path(f).name.lower() == "features"), "")
    return (normal, pick("train", "abnormal"), pick("test", avoid=("annotation",)), pick("annotation"), features)


def anomalyclip_file_choices(ctx: AppContext) -> AnomalyCLIPFiles:
    root = ctx.config.training_root
    texts, folders = list_files(root, (".txt",)), list_folders(root)
    return AnomalyCLIPFiles(texts, folders, *default_anomalyclip_files(texts, folders))


def start_anomalyclip_training(ctx: AppContext, train_normal: str | None, train_abnormal: str | None,
                               test_list: str | None, annotations: str | None, features_root: str | None,
                               preset: str, epochs: int, lr: float, batch_size: int,
                               warmup_epochs: int | None = None, seed: int | None = None,
                               seeds: str | None = None) -> TrainingJob:
    """Start an AnomalyCLIP training run (official recipe, the preset's values where not given) on
    the app's CLIP; every file and folder is under the data root; the run goes into the models folder."""
    root = ctx.config.training_root
    normal = resolve_in_root(train_normal, root, "normal training list")
    abnormal = resolve_in_root(train_abnormal, root, "abnormal training list")
    test = resolve_in_root(test_list or None, root, "test list", required=False)
    ann = resolve_in_root(annotations or None, root, "temporal annotation", required=test is not None)
    features = resolve_folder_in_root(features_root, root, "features root")
    anomalyclip_recipe(preset)                      # OptionError for an unknown preset
    _check_schedule(epochs, lr, batch_size, even_batch=True)
    if warmup_epochs is not None and not 0 <= int(warmup_epochs) < int(epochs):
        raise OptionError("warm-up epochs must be at least 0 and fewer than the epochs")
    run_seeds = check_seeds(seeds)
    config = anomalyclip.TrainConfig(
        preset=preset, train_normal=str(normal), train_abnormal=str(abnormal),
        test_list=str(test) if test else None, annotations=str(ann) if ann else None, features_root=str(features),
        clip=ctx.config.clip, out_dir=str(new_run_folder(ctx.config.models_dir, preset, method="anomalyclip")),
        epochs=int(epochs), lr=float(lr), batch_size=int(batch_size),
        warmup_epochs=int(warmup_epochs) if warmup_epochs is not None else None,
        seed=int(seed) if seed is not None else None, device=ctx.device)
    return ctx.trainer.start(config, seeds=run_seeds)


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
