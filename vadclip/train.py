"""Training VadCLIP on cached snippet features with the official recipe (`vadclip train`).

    result = vadclip.train(TrainConfig(preset="xd", train_list="xd_train.csv",
                                       test_list="xd_test.csv", annotations=[...], out_dir="runs/xd"))

The recipe is the official one (spec "Losses (training)" and "Model selection"): the three losses
of `losses.total_loss`, AdamW (weight decay 0.01) over the adapter and prompts only (CLIP frozen),
MultiStepLR x0.1 stepped per epoch, seed 234; evaluation after every epoch (and every
`eval_every_steps` steps, ucf: 10), the best checkpoint by the preset's metric (xd `ap_a`, ucf
`auc_c`), and at each epoch end the best weights so far are loaded back into the model (the
optimizer state is kept). The final model is the best checkpoint.

A run folder holds:
- ``best.safetensors`` / ``last.safetensors``: our checkpoint format (metadata: epoch, step,
  metrics, select metric, best value); without a test list the last checkpoint is the best;
- ``train_state.pt``: optimizer, scheduler, RNG and data-order state (tensors and plain types, read
  with ``weights_only=True``); `resume=True` continues from it to the same final weights as an
  uninterrupted run;
- ``run.json`` (the configuration), ``metrics.jsonl`` (every step's losses and every evaluation),
  ``report.json`` (the result, written at the end).

Every input is checked before training starts, all problems reported at once (`formats.DataError`).
A folder that already holds checkpoints is never overwritten unless the run resumes from it.
"""
from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .errors import TrainError
from . import formats
from .checkpoint import BEST_FILE, LAST_FILE, build_model, load_vadclip_checkpoint, save_checkpoint
from .factory import load_vadclip_model
from .config import TrainRecipe, get_preset
from .batches import FeatureClips, batch_loader, check_batching, epoch_batches, read_train_entries
from .evaluate import EvalSet, evaluate, load_eval_set
from .losses import total_loss
from .model import VadCLIP, VadCLIPOutput
from .safe_load import load_state_dict_file
from .run_folder import saved_run_state
from .utils import atomic_write, partial_writes, resolve_device

STATE, RUN, METRICS, REPORT = "train_state.pt", "run.json", "metrics.jsonl", "report.json"
STATE_VERSION = 1
# Settings that may differ between a run and its resumption (they do not change the weights).
RESUMABLE_CHANGES = ("epochs", "max_steps", "device", "num_workers", "resume", "out_dir")


@dataclass
class TrainConfig:
    """One training run. Fields left as None take the preset's official value."""

    preset: str = "xd"
    train_list: str = ""              # official CSV `path,label`, or a class-folder layout
    test_list: str | None = None      # None: no evaluation (the last checkpoint is the best)
    annotations: str | list[str] | None = None   # official annotation file(s) of the test list
    out_dir: str = "runs/vadclip"
    clip: str = "openai"              # CLIP for the text tower (a `load_clip` source)
    init: str | None = None           # start from a checkpoint (official .pth or ours); its CLIP is used
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    milestones: tuple[int, ...] | None = None
    seed: int | None = None
    eval_every_steps: int | None = None   # 0: evaluate after each epoch only
    device: str = "auto"
    num_workers: int = 2
    resume: bool = False
    max_steps: int | None = None      # stop after this many optimizer steps (resumable)
    warmup_steps: int = 0             # linear learning-rate warm-up (not in the official recipe)
    ema_decay: float = 0.0            # > 0: evaluate and keep an exponential moving average of the weights
    data_root: str | None = None      # every feature path must resolve inside it
    amp: bool = True                  # bfloat16 autocast on CUDA (ignored on CPU)
    features_root: str | None = None  # listed files that do not exist are found by name under it
    padding_aware_attention: bool = False   # improvement (issue 16): ModelConfig.padding_aware_attention


@dataclass
class TrainResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    select_metric: str
    best_value: float | None
    best_metrics: dict
    epochs_done: int
    steps: int
    cancelled: bool
    elapsed_s: float

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def effective_recipe(config: TrainConfig) -> TrainRecipe:
    """The preset's recipe with the config's overrides; raises TrainError on impossible values."""
    r = get_preset(config.preset).train
    pick = lambda value, default: default if value is None else value
    recipe = replace(
        r, epochs=int(pick(config.epochs, r.epochs)), lr=float(pick(config.lr, r.lr)),
        batch_size=int(pick(config.batch_size, r.batch_size)),
        milestones=tuple(int(m) for m in pick(config.milestones, r.milestones)),
        seed=int(pick(config.seed, r.seed)), eval_every_steps=int(pick(config.eval_every_steps, r.eval_every_steps)),
    )
    problems = [f"{name} must be {rule}, got {value}" for name, value, ok, rule in (
        ("epochs", recipe.epochs, recipe.epochs >= 1, ">= 1"),
        ("lr", recipe.lr, recipe.lr > 0 and np.isfinite(recipe.lr), "a positive number"),
        ("batch_size", recipe.batch_size, recipe.batch_size >= 1, ">= 1"),
        ("eval_every_steps", recipe.eval_every_steps, recipe.eval_every_steps >= 0, ">= 0"),
        ("milestones", recipe.milestones, all(m >= 1 for m in recipe.milestones), "positive epochs"),
        ("max_steps", config.max_steps, config.max_steps is None or config.max_steps >= 0, ">= 0"),
        ("warmup_steps", config.warmup_steps, config.warmup_steps >= 0, ">= 0"),
        ("ema_decay", config.ema_decay, 0.0 <= config.ema_decay < 1.0, "in [0, 1)"),
        ("num_workers", config.num_workers, config.num_workers >= 0, ">= 0"),
    ) if not ok]
    if problems:
        raise TrainError("bad training options: " + "; ".join(problems))
    return recipe


# --------------------------------------------------------------------------- inputs

def load_inputs(config: TrainConfig, dim: int = 512, visual_length: int = 256) -> tuple[FeatureClips, EvalSet | None]:
    """Read and check the training set and the test set; one `DataError` lists every problem."""
    recipe = effective_recipe(config)
    problems: list[str] = []
    collected: list[formats.DataError] = []     # their lines are in `problems`; their counts below

    def collect(err: formats.DataError, where: str) -> None:
        problems.extend(f"{where}: {p}" for p in (err.problems or [err.summary]))
        collected.append(err)

    train_set = None
    where = f"train list {config.train_list}"
    if not config.train_list:
        problems.append("no train list given")
    else:
        try:
            entries = read_train_entries(config.train_list, config.preset, root=config.data_root,
                                         check_labels=False, features_root=config.features_root)
            n_before = len(problems)
            for entry in entries:     # labels and files checked separately, so both are reported
                try:
                    formats.parse_label(entry.label, config.preset)
                except formats.DataError as err:
                    problems.append(f"{where}: {entry.path.name}: {err}")
            try:
                formats.check_feature_files(entries, dim=dim)
            except formats.DataError as err:
                collect(err, where)
            if len(problems) == n_before:
                train_set = FeatureClips(entries, config.preset, visual_length)
                problems.extend(f"{where}: {p}" for p in check_batching(train_set.is_normal, recipe.batch_size,
                                                                          recipe.balanced))
        except formats.DataError as err:
            collect(err, where)
    eval_set = None
    if config.test_list:
        if not config.annotations:
            problems.append(f"test list {config.test_list}: annotations are needed to evaluate")
        else:
            try:
                eval_set = load_eval_set(config.test_list, config.annotations, preset=config.preset,
                                         dim=dim, root=config.data_root, features_root=config.features_root)
            except formats.DataError as err:
                collect(err, f"test list {config.test_list}")
            except OSError as err:
                problems.append(f"annotations {config.annotations}: {err}")
    if problems:
        # a collected error's lines may include notes (the likely fix) or stand for more problems
        count = len(problems) + sum(max(e.count, 1) - len(e.problems or [e.summary]) for e in collected)
        raise formats.DataError(f"training input: {count} problem(s)", problems, count=count)
    return train_set, eval_set


def _build_model(config: TrainConfig, device: str) -> VadCLIP:
    """The starting model: `init` (official .pth or ours) or a fresh adapter on `config.clip`."""
    if config.init is None:
        return build_model(config.preset, clip=config.clip, device=device,
                           padding_aware_attention=config.padding_aware_attention)
    model = load_vadclip_model(config.init, preset=config.preset, device=device)
    if config.padding_aware_attention and not model.config.padding_aware_attention:
        raise TrainError(f"{config.init}: padding-aware attention cannot be switched on for a loaded checkpoint; "
                         f"train a fresh adapter (no --init) with --padding-aware-attention")
    if model.config.preset != config.preset:
        raise TrainError(f"{config.init}: a {model.config.preset!r} checkpoint, but preset is {config.preset!r}")
    return model


# --------------------------------------------------------------------------- one step

def _float_output(out: VadCLIPOutput) -> VadCLIPOutput:
    return VadCLIPOutput(*(t.float() for t in (out.text_features, out.logits_c, out.logits_a, out.visual_features)))


def train_step(model: VadCLIP, optimizer: torch.optim.Optimizer, features: torch.Tensor, multi_hot: torch.Tensor,
               lengths: torch.Tensor, class_names: list[str], contrast_weight: float,
               amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """One optimizer step on a batch (features [B, T, D], multi_hot [B, C], lengths [B]); the losses."""
    with torch.autocast(device_type=features.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(features, lengths, class_names)
    losses = total_loss(_float_output(out), lengths, multi_hot, contrast_weight)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    return {name: value.detach().item() for name, value in losses.items()}


def make_optimizer(model: VadCLIP, recipe: TrainRecipe) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.MultiStepLR]:
    """AdamW over the adapter and prompt parameters, MultiStepLR stepped once per epoch."""
    optimizer = torch.optim.AdamW(model.adapter_parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(recipe.milestones), gamma=recipe.gamma)
    return optimizer, scheduler


def seed_everything(seed: int) -> None:
    """The official `setup_seed`: python, numpy and torch generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- run folder

def _config_record(config: TrainConfig) -> dict:
    """The config as JSON-able values, paths made absolute (for run.json and resume checks)."""
    record = asdict(config)
    for key in ("train_list", "test_list", "out_dir", "init", "data_root", "features_root"):
        if record[key]:
            record[key] = str(Path(record[key]).resolve())
    if isinstance(record["annotations"], str):
        record["annotations"] = [record["annotations"]]
    if record["annotations"]:
        record["annotations"] = [str(Path(a).resolve()) for a in record["annotations"]]
    if record["clip"] not in ("openai", "random") and Path(record["clip"]).exists():
        record["clip"] = str(Path(record["clip"]).resolve())
    if record["milestones"] is not None:
        record["milestones"] = list(record["milestones"])
    return record


def _remove_partial_writes(out_dir: Path) -> None:
    """Delete the temporary files a killed run left behind while writing its own outputs."""
    for name in (BEST_FILE, LAST_FILE, STATE, RUN, REPORT):
        for leftover in partial_writes(out_dir, name):
            leftover.unlink(missing_ok=True)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(), "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                    *np_state[2:]), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])


def _adapter_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("clipmodel.")}


def _clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items()}


class _Log:
    """metrics.jsonl plus the caller's `on_progress`."""

    def __init__(self, path: Path, on_progress: Callable[[dict], None] | None, keep_until_step: int | None):
        self.path = path
        self.on_progress = on_progress
        if keep_until_step is None:
            path.write_text("")
        elif path.is_file():   # resuming: drop what was logged after the saved state
            lines = [l for l in path.read_text().splitlines() if l.strip()]
            kept = [l for l in lines if json.loads(l).get("step", 0) <= keep_until_step]
            path.write_text("".join(l + "\n" for l in kept))

    def __call__(self, event: dict, to_file: bool = True) -> None:
        if to_file:
            with open(self.path, "a") as f:
                f.write(json.dumps({**event, "time": time.time()}) + "\n")
        if self.on_progress is not None:
            self.on_progress(event)


# --------------------------------------------------------------------------- run state

@dataclass
class RunState:
    """Everything a run changes as it trains, saved to ``train_state.pt`` and restored as a whole.

    The model's own weights are in ``last.safetensors``; the best weights in ``best.safetensors``
    (so `best_weights` is read back from there, not from the state file). The RNG states are
    taken when saving and set again when restoring.
    """

    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    epoch: int = 0                  # epochs finished
    batch_in_epoch: int = 0         # batches of the current epoch already trained on
    step: int = 0                   # optimizer steps taken
    elapsed_s: float = 0.0          # training time of the earlier processes of this run
    best_value: float | None = None          # best value of the selection metric so far
    best_metrics: dict = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] | None = None   # adapter tensors of the best evaluation
    last_metrics: dict | None = None         # metrics of the latest evaluation
    ema: dict[str, torch.Tensor] | None = None            # moving average of the adapter (EMA on)

    def state_dict(self, elapsed_s: float) -> dict:
        """What ``train_state.pt`` holds of the run (tensors and plain types only)."""
        scheduler = self.scheduler.state_dict()
        scheduler["milestones"] = {int(k): int(v) for k, v in scheduler["milestones"].items()}
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                "optimizer": self.optimizer.state_dict(), "scheduler": scheduler, "rng": _rng_state(),
                "best_value": self.best_value, "best_metrics": json.dumps(self.best_metrics),
                "ema": self.ema, "elapsed_s": elapsed_s}

    def load_state_dict(self, saved: dict, best_weights: dict[str, torch.Tensor] | None,
                        device: str | torch.device) -> None:
        """Restore everything `state_dict` saved (and the RNG states)."""
        self.optimizer.load_state_dict(saved["optimizer"])
        scheduler = dict(saved["scheduler"])
        scheduler["milestones"] = Counter({int(k): v for k, v in scheduler["milestones"].items()})
        self.scheduler.load_state_dict(scheduler)
        _set_rng_state(saved["rng"])
        self.epoch, self.batch_in_epoch, self.step = saved["epoch"], saved["batch_in_epoch"], saved["step"]
        self.elapsed_s = saved["elapsed_s"]
        self.best_value, self.best_metrics = saved["best_value"], json.loads(saved["best_metrics"])
        self.best_weights = best_weights
        if self.ema is not None:
            self.ema = {k: v.to(device) for k, v in saved["ema"].items()}


@dataclass
class Run:
    """A training run in progress: what stays fixed for the run, and its `RunState`."""

    config: TrainConfig
    recipe: TrainRecipe
    out_dir: Path
    model: VadCLIP
    train_set: FeatureClips
    eval_set: EvalSet | None
    device: str
    amp_dtype: torch.dtype | None
    log: _Log
    state: RunState
    started: float                  # time.perf_counter() when this process started the run
    resumed: bool = False           # restored from a saved state
    bar: tqdm | None = None

    def elapsed_s(self) -> float:
        return self.state.elapsed_s + time.perf_counter() - self.started


def start_run(config: TrainConfig, on_progress: Callable[[dict], None] | None = None) -> Run:
    """Check everything, then build the model, optimizer and state: fresh, or restored (resume)."""
    started = time.perf_counter()
    recipe = effective_recipe(config)
    out_dir = Path(config.out_dir)
    saved = saved_run_state(out_dir, config.resume, (BEST_FILE, LAST_FILE), STATE,
                            expected={"version": STATE_VERSION}, config=_config_record(config),
                            recipe=json.loads(json.dumps(asdict(recipe))), resumable=RESUMABLE_CHANGES,
                            recipe_free=("epochs",))
    _remove_partial_writes(out_dir)
    device = resolve_device(config.device)
    preset = get_preset(config.preset)
    train_set, eval_set = load_inputs(config, dim=preset.model.visual_width,
                                      visual_length=preset.model.visual_length)
    seed_everything(recipe.seed)
    if saved is None:
        model = _build_model(config, device)
    else:
        model, header = load_vadclip_checkpoint(out_dir / LAST_FILE, device=device)
        if header["metadata"].get("step") != saved["step"]:
            raise TrainError(f"{out_dir}: {LAST_FILE} (step {header['metadata'].get('step')}) and "
                             f"{STATE} (step {saved['step']}) disagree; the run was interrupted while saving")
    train_set.visual_length = model.config.visual_length
    optimizer, scheduler = make_optimizer(model, recipe)
    state = RunState(optimizer, scheduler,
                     ema=_clone(model.adapter_state_dict()) if config.ema_decay > 0 else None)
    if saved is not None:
        best = _adapter_tensors(out_dir / BEST_FILE) if saved["best_value"] is not None else None
        state.load_state_dict(saved, best, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / METRICS, on_progress, keep_until_step=None if saved is None else state.step)
    if saved is None:
        with atomic_write(out_dir / RUN) as tmp:
            tmp.write_text(json.dumps({"config": _config_record(config), "recipe": asdict(recipe),
                                       "clip": model.clip_info.source,
                                       "random_weights": model.clip_info.random_weights}, indent=2))
    amp = config.amp and device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return Run(config=config, recipe=recipe, out_dir=out_dir, model=model, train_set=train_set,
               eval_set=eval_set, device=device, amp_dtype=torch.bfloat16 if amp else None, log=log,
               state=state, started=started, resumed=saved is not None)


# --------------------------------------------------------------------------- evaluate and save

@contextlib.contextmanager
def averaged_weights(model: VadCLIP, ema: dict[str, torch.Tensor] | None):
    """Inside the block the model holds the EMA weights (when EMA is on); then its own again."""
    if ema is None:
        yield
        return
    own = _clone(model.adapter_state_dict())
    model.load_state_dict(ema, strict=False)
    try:
        yield
    finally:
        model.load_state_dict(own, strict=False)


def checkpoint_metadata(run: Run, kind: str, metrics: dict | None = None) -> dict:
    """What our checkpoints of a run record besides the weights."""
    return {"kind": kind, "preset": run.config.preset, "epoch": run.state.epoch, "step": run.state.step,
            "metrics": metrics, "select_metric": run.recipe.select_metric, "best_value": run.state.best_value,
            "train_list": str(Path(run.config.train_list).resolve()), "recipe": asdict(run.recipe)}


def evaluate_run(run: Run) -> None:
    """Evaluate the (averaged) model; a better selection metric becomes the best checkpoint."""
    state, metric = run.state, run.recipe.select_metric
    with averaged_weights(run.model, state.ema):
        metrics = evaluate(run.model, run.eval_set).as_dict()
    state.last_metrics = metrics
    value = metrics[metric]
    better = value is not None and np.isfinite(value) and (state.best_value is None or value > state.best_value)
    if better:
        state.best_value, state.best_metrics = float(value), metrics
        state.best_weights = _clone(state.ema if state.ema is not None else run.model.adapter_state_dict())
        with averaged_weights(run.model, state.ema):
            save_checkpoint(run.model, run.out_dir / BEST_FILE, checkpoint_metadata(run, "best", metrics))
    run.log({"kind": "eval", "step": state.step, "epoch": state.epoch, "metrics": metrics, "best": bool(better)})
    shown = "n/a" if value is None else f"{value:.4f}"
    message = f"eval at step {state.step}: {metric} = {shown}" + (" (best)" if better else "")
    (run.bar.write if run.bar is not None else print)(message)


def save_run(run: Run) -> None:
    """last.safetensors, then train_state.pt (resume checks that their steps agree); without a
    test set the last checkpoint is also the best."""
    save_checkpoint(run.model, run.out_dir / LAST_FILE, checkpoint_metadata(run, "last", run.state.last_metrics))
    if run.eval_set is None:
        with averaged_weights(run.model, run.state.ema):
            save_checkpoint(run.model, run.out_dir / BEST_FILE, checkpoint_metadata(run, "best"))
    train_state = {"version": STATE_VERSION, "config": json.dumps(_config_record(run.config)),
                   "recipe": json.dumps(asdict(run.recipe)), **run.state.state_dict(run.elapsed_s())}
    with atomic_write(run.out_dir / STATE) as tmp:
        torch.save(train_state, tmp)


def end_epoch(run: Run, evaluated_at: int | None) -> None:
    """The official epoch end: step the schedule, evaluate, reload the best weights, save."""
    state = run.state
    for group, lr in zip(state.optimizer.param_groups, state.scheduler.get_last_lr()):
        group["lr"] = lr                                         # undo the warm-up factor
    state.scheduler.step()
    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    if run.eval_set is not None and evaluated_at != state.step:
        evaluate_run(run)
    if state.best_weights is not None:
        run.model.load_state_dict(state.best_weights, strict=False)
        if state.ema is not None:
            state.ema = _clone(state.best_weights)
    save_run(run)
    run.log({"kind": "log", "message": f"epoch {state.epoch}/{run.recipe.epochs} done at step {state.step}"})


def finish_run(run: Run, cancelled: bool, stopped: bool) -> TrainResult:
    """Write report.json and tell the caller; the best checkpoint is the run's result."""
    out_dir, state = run.out_dir, run.state
    best_path = out_dir / BEST_FILE if (out_dir / BEST_FILE).is_file() else out_dir / LAST_FILE
    result = TrainResult(out_dir=out_dir, best_path=best_path, last_path=out_dir / LAST_FILE,
                         select_metric=run.recipe.select_metric, best_value=state.best_value,
                         best_metrics=state.best_metrics, epochs_done=state.epoch, steps=state.step,
                         cancelled=cancelled, elapsed_s=run.elapsed_s())
    with atomic_write(out_dir / REPORT) as tmp:
        tmp.write_text(json.dumps({**result.to_dict(), "recipe": asdict(run.recipe),
                                   "stopped_at_max_steps": stopped}, indent=2))
    run.log({"kind": "done", **result.to_dict()})
    return result


# --------------------------------------------------------------------------- training

def train(config: TrainConfig, on_progress: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train VadCLIP with the official recipe; see the module docstring for outputs and resume.

    `on_progress` receives plain dicts: ``{"kind": "step", ...}``, ``{"kind": "eval", ...}``,
    ``{"kind": "log", "message"}`` and ``{"kind": "done", ...}``. `should_stop()` is checked before
    every step; when it returns True the run saves ``last.safetensors`` and its state (resumable)
    and returns with ``cancelled=True``.
    """
    should_stop = should_stop or (lambda: False)
    run = start_run(config, on_progress)
    model, recipe, state, device = run.model, run.recipe, run.state, run.device
    class_names = list(model.config.class_names)
    if model.clip_info.random_weights:
        run.log({"kind": "log", "message": "WARNING: " + model.clip_info.label})
    steps_per_epoch = len(epoch_batches(run.train_set.is_normal, recipe.batch_size, recipe.balanced, recipe.seed, 0))
    total_steps = recipe.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    run.log({"kind": "log", "message": f"{'resuming at step ' + str(state.step) if run.resumed else 'training'}: "
                                       f"{len(run.train_set)} files, {steps_per_epoch} steps/epoch, "
                                       f"{recipe.epochs} epochs, device {device}, select {recipe.select_metric}"})
    at_max_steps = lambda: config.max_steps is not None and state.step >= config.max_steps

    cancelled = stopped = False
    step_time, steps_here = 0.0, 0
    run.bar = tqdm(total=total_steps, initial=min(state.step, total_steps), desc="train", unit="step",
                   dynamic_ncols=True)
    try:
        while state.epoch < recipe.epochs:
            if at_max_steps():
                stopped = True
                if not (run.out_dir / LAST_FILE).is_file():
                    save_run(run)
                break
            model.train()
            batches = epoch_batches(run.train_set.is_normal, recipe.batch_size, recipe.balanced, recipe.seed,
                                    state.epoch)
            evaluated_at = None
            for features, targets, lengths in batch_loader(run.train_set, batches[state.batch_in_epoch:],
                                                           config.num_workers):
                if at_max_steps():
                    stopped = True
                    break
                if should_stop():
                    cancelled = True
                    break
                warm = min(1.0, (state.step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
                for group, lr in zip(state.optimizer.param_groups, state.scheduler.get_last_lr()):
                    group["lr"] = lr * warm
                t = time.perf_counter()
                losses = train_step(model, state.optimizer, features.to(device), targets.to(device),
                                    lengths.to(device), class_names, recipe.contrast_weight, run.amp_dtype)
                step_time += time.perf_counter() - t
                state.step, state.batch_in_epoch, steps_here = state.step + 1, state.batch_in_epoch + 1, steps_here + 1
                if state.ema is not None:
                    with torch.no_grad():
                        for name, value in model.adapter_state_dict().items():
                            state.ema[name].lerp_(value, 1.0 - config.ema_decay)
                rate = steps_here / step_time
                run.log({"kind": "step", "step": state.step, "epoch": state.epoch, "total_steps": total_steps,
                         **losses, "lr": state.optimizer.param_groups[0]["lr"], "steps_per_s": rate})
                run.bar.update(1)
                run.bar.set_postfix(loss=f"{losses['loss']:.4f}", steps_per_s=f"{rate:.2f}", epoch=state.epoch + 1)
                if run.eval_set is not None and recipe.eval_every_steps and state.step % recipe.eval_every_steps == 0:
                    evaluate_run(run)
                    evaluated_at = state.step
            if cancelled or stopped:
                save_run(run)
                break
            end_epoch(run, evaluated_at)
    finally:
        run.bar.close()
    return finish_run(run, cancelled, stopped)
