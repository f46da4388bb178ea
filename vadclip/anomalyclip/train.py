"""Training AnomalyCLIP on cached per-frame CLIP features with the official recipe.

    from vadclip.anomalyclip.train import TrainConfig, train
    result = train(TrainConfig(preset="xd", train_normal="Anomaly_Train_Normal.txt",
                               train_abnormal="Anomaly_Train_Abnormal.txt", test_list="Anomaly_Test.txt",
                               annotations="Temporal_Anomaly_Annotation_for_Testing_Videos.txt",
                               features_root="features", clip="openai", out_dir="runs/ac_xd"))

The recipe (spec "Training"), read top to bottom in `train`:
1. every input is checked first, all problems reported in one `vadclip.formats.DataError`;
2. a fresh model on the CLIP's text tower (prompt context N(0, 0.02), the official initialisation
   of the temporal model, seeded), its normal centroid computed from the normal training videos;
3. per epoch: the learning rate of the epoch (linear warm-up from 0 at epoch 0, then cosine), the
   two lists shuffled (`drop_last`; the epoch is as long as the longer list, the shorter one is
   reshuffled when it runs out), each batch = abnormal half then normal half, one 32 x 16 clip
   sampled per video, a Bernoulli keep mask, the top-k / bottom-k selection and the seven losses,
   AdamW (weight decay 0.2, four parameter groups at one learning rate);
4. every `eval_every` epochs (and after the last) the official frame metrics on the test list;
   ``last.safetensors`` after every epoch (the official model is the last epoch's) and
   ``best.safetensors`` when the preset's metric improves (xd: ``auc_pr``, ucf / sht: ``auc_roc``).

A run folder holds ``last.safetensors``, ``best.safetensors`` (our checkpoint format, loadable by
`anomalyclip.load_checkpoint`), ``train_state.pt`` (the run state: counters, the epoch's data order,
the generators, the optimizer; tensors and plain types, read with ``weights_only=True``),
``run.json`` (configuration and recipe), ``metrics.jsonl`` (every step's losses, every evaluation)
and ``report.json`` (the result). ``resume=True`` continues from ``train_state.pt`` and ends with the
weights of the uninterrupted run. A folder that holds another run is never overwritten.

Randomness has two owned generators (no global state): a `numpy.random.RandomState` for the clip
offsets (the official dataset's draws) and a `torch.Generator` for shuffles and keep masks.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import get_tokenizer
from ..clip_backbone import load_clip
from ..errors import TrainError
from ..formats import DataError
from ..run_folder import saved_run_state
from ..utils import atomic_write, partial_writes, resolve_device
from .centroid import normal_centroid
from .checkpoint import load_checkpoint, save_checkpoint
from .config import AnomalyCLIPConfig, Recipe, get_preset
from .lists import (VideoRecord, feature_rows, frame_labels, load_video_features, missing_annotations,
                    parse_video_list, read_temporal_annotations)
from .losses import anomalyclip_losses, draw_keep_mask, select_segments
from .metrics import frame_metrics
from .model import AnomalyCLIP
from .sampling import clip_frame_indices, sample_start_indices
from .scoring import score_frames

BEST, LAST, STATE, RUN, METRICS, REPORT = ("best.safetensors", "last.safetensors", "train_state.pt",
                                           "run.json", "metrics.jsonl", "report.json")
STATE_VERSION = 1
SELECT_METRIC = {"xd": "auc_pr", "ucf": "auc_roc", "sht": "auc_roc"}   # the metric each paper reports
RESUMABLE_CHANGES = ("device", "resume", "out_dir")   # settings that do not change the weights


@dataclass
class TrainConfig:
    """One AnomalyCLIP training run. Fields left as None take the preset's official value."""

    preset: str = "xd"
    train_normal: str = ""            # Anomaly_Train_Normal.txt (PATH START END LABEL)
    train_abnormal: str = ""          # Anomaly_Train_Abnormal.txt
    test_list: str | None = None      # Anomaly_Test.txt; None: no evaluation (last = best)
    annotations: str | None = None    # temporal test annotation (NAME.ext CLASS s1 e1 ...)
    features_root: str = ""           # <features_root>/<PATH>.npy, float32 [frames, 512]
    clip: str = "openai"              # CLIP source for the text tower (a `load_clip` source)
    out_dir: str = "runs/anomalyclip"
    epochs: int | None = None
    lr: float | None = None
    warmup_epochs: int | None = None
    batch_size: int | None = None     # clips per step, half abnormal, half normal
    seed: int | None = None
    eval_every: int = 1               # evaluate every N epochs (and after the last)
    device: str = "auto"
    resume: bool = False
    reversible: bool = False          # False: train through the model's grid path (ordinary autograd, the
                                      # official gradients up to float rounding, forward computed once);
                                      # True (opt-in): the official reversible axial transformer, which
                                      # recomputes activations in the backward (less memory, ~1.4x the CPU step time)


@dataclass
class TrainResult:
    out_dir: Path
    best_path: Path
    last_path: Path
    select_metric: str
    best_value: float | None
    best_epoch: int | None
    last_metrics: dict | None         # the last evaluation (the official model is the last epoch's)
    epochs_done: int
    steps: int
    cancelled: bool
    elapsed_s: float

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class RunState:
    """Everything that changes while training, besides the weights and the optimizer."""

    epoch: int = 0                     # epochs completed
    step: int = 0                      # optimizer steps done
    batch_in_epoch: int = 0            # batches of `order` done
    order: np.ndarray | None = None    # [steps, B] the epoch's videos: abnormal indices, then normal
    best_value: float | None = None
    best_epoch: int | None = None
    last_metrics: dict | None = None
    elapsed_s: float = 0.0
    clip_rng: np.random.RandomState = field(default_factory=np.random.RandomState)
    torch_rng: torch.Generator = field(default_factory=torch.Generator)


@dataclass
class TrainData:
    """The checked inputs: the two training lists, the test list and its per-frame labels."""

    abnormal: list[VideoRecord]
    normal: list[VideoRecord]
    abnormal_rows: np.ndarray          # feature rows per video
    normal_rows: np.ndarray
    test: list[VideoRecord]
    test_labels: list[np.ndarray]      # class id per feature row of each test video


# --------------------------------------------------------------------------- options and inputs

def effective_recipe(config: TrainConfig) -> Recipe:
    """The preset's recipe with the config's overrides; `TrainError` lists impossible values."""
    _, recipe = get_preset(config.preset)
    overrides = {name: getattr(config, name) for name in ("epochs", "lr", "warmup_epochs", "batch_size", "seed")
                 if getattr(config, name) is not None}
    recipe = replace(recipe, **overrides)
    problems = [f"{name} must be {rule}, got {value}" for name, value, ok, rule in (
        ("epochs", recipe.epochs, recipe.epochs >= 1, ">= 1"),
        ("lr", recipe.lr, recipe.lr > 0 and math.isfinite(recipe.lr), "a positive number"),
        ("warmup_epochs", recipe.warmup_epochs, 0 <= recipe.warmup_epochs < recipe.epochs, "in [0, epochs)"),
        ("batch_size", recipe.batch_size, recipe.batch_size >= 2 and recipe.batch_size % 2 == 0,
         "an even number >= 2 (half abnormal, half normal clips)"),
        ("eval_every", config.eval_every, config.eval_every >= 1, ">= 1"),
    ) if not ok]
    if problems:
        raise TrainError("bad training options: " + "; ".join(problems))
    return recipe


def read_checked_list(path: str, kind: str, config: TrainConfig, model_config: AnomalyCLIPConfig,
                      problems: list[str]) -> list[tuple[VideoRecord, int]]:
    """(record, feature rows) of every video of a list; the problems of its lines and of the feature
    files of its good lines are appended to `problems`."""
    try:
        records, line_problems = parse_video_list(path, config.features_root, model_config.num_classes,
                                                  model_config.normal_id, kind)
        problems.extend(f"{kind} list {path}: {p}" for p in line_problems)
        rows = feature_rows(records, model_config.feature_dim)
    except DataError as err:
        problems.extend(f"{kind} list {path}: {p}" for p in (err.problems or [err.summary]))
        return []
    return list(zip(records, rows))


def load_inputs(config: TrainConfig, model_config: AnomalyCLIPConfig, recipe: Recipe) -> TrainData:
    """Read and check every input (lists, feature files, annotation); one `DataError` lists all problems."""
    if not config.features_root or not Path(config.features_root).is_dir():
        raise DataError("training input: 1 problem(s)", [f"features root {config.features_root!r} is not a folder"])
    problems: list[str] = []
    lists = {}
    for kind, path in (("abnormal", config.train_abnormal), ("normal", config.train_normal), ("test", config.test_list)):
        if path:
            lists[kind] = read_checked_list(path, kind, config, model_config, problems)
        else:
            lists[kind] = []
            if kind != "test":
                problems.append(f"no {kind} training list given")
    half = recipe.batch_size // 2
    for kind, path in (("abnormal", config.train_abnormal), ("normal", config.train_normal)):
        if 0 < len(lists[kind]) < half:
            problems.append(f"{kind} list {path}: {len(lists[kind])} videos, fewer than the {half} {kind} clips "
                            f"of a batch of {recipe.batch_size} (incomplete halves are dropped, as officially)")
    test_labels = []
    if config.test_list and not config.annotations:
        problems.append(f"test list {config.test_list}: a temporal annotation is needed to evaluate")
    elif config.test_list:
        try:
            annotations = read_temporal_annotations(config.annotations)
            test = [record for record, _ in lists["test"]]
            problems.extend(f"annotation {config.annotations}: {p}"
                            for p in missing_annotations(test, annotations, model_config.normal_id))
            test_labels = [frame_labels(record, annotations.get(record.name, ()), rows, model_config.normal_id)
                           for record, rows in lists["test"]]
        except DataError as err:
            problems.extend(f"annotation {config.annotations}: {p}" for p in (err.problems or [err.summary]))
    if problems:
        raise DataError(f"training input: {len(problems)} problem(s)", problems)
    return TrainData(abnormal=[r for r, _ in lists["abnormal"]], normal=[r for r, _ in lists["normal"]],
                     abnormal_rows=np.array([n for _, n in lists["abnormal"]], dtype=np.int64),
                     normal_rows=np.array([n for _, n in lists["normal"]], dtype=np.int64),
                     test=[r for r, _ in lists["test"]], test_labels=test_labels)


def fresh_model(model_config: AnomalyCLIPConfig, clip: str, seed: int, device: str) -> AnomalyCLIP:
    """A new AnomalyCLIP on `clip`'s text tower, initialised from `seed` (the global torch
    generator is used inside a fork, so the caller's state is untouched)."""
    clip_model, clip_info = load_clip(clip)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AnomalyCLIP(model_config, clip_model, clip_info, get_tokenizer())
    return model.to(device)


def set_normal_centroid(model: AnomalyCLIP, normal: list[VideoRecord]) -> None:
    """The official normal centroid (mean of every normal training frame) into the model."""
    arrays = [np.load(r.feature_file, mmap_mode="c") for r in normal]      # read one video at a time
    with torch.no_grad():
        model.ncentroid.copy_(torch.from_numpy(normal_centroid(arrays)))


# --------------------------------------------------------------------------- one step

def epoch_lr(epoch: int, recipe: Recipe) -> float:
    """The official WarmupCosineAnnealingLR of an epoch: base * e / W during warm-up (epoch 0 at 0),
    then base * (1 + cos(pi * (e - W) / (E - W))) / 2."""
    W, E = recipe.warmup_epochs, recipe.epochs
    if epoch < W:
        return recipe.lr * epoch / W
    progress = min((epoch - W) / (E - W), 1.0)
    return recipe.lr * (1 + math.cos(math.pi * progress)) / 2


def make_optimizer(model: AnomalyCLIP, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW over the official four parameter groups (selector, temporal, ctx, text_projection)."""
    groups = [{"params": params, "name": name} for name, params in model.param_groups().items()]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps,
                             weight_decay=recipe.weight_decay)


def cycled_halves(n: int, half: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """[steps, half] indices into a list of n videos: shuffled, cut into full halves (`drop_last`),
    reshuffled whenever it runs out."""
    chunks, have = [], 0
    while have < steps:
        chunks.append(torch.randperm(n, generator=generator)[: (n // half) * half].view(-1, half))
        have += len(chunks[-1])
    return torch.cat(chunks)[:steps]


def epoch_order(n_abnormal: int, n_normal: int, half: int, generator: torch.Generator) -> np.ndarray:
    """[steps, 2 * half] video indices of one epoch, abnormal half then normal half; the epoch is as
    long as the longer list, the shorter one cycles (Lightning's `max_size_cycle`)."""
    steps = max(n_abnormal // half, n_normal // half)
    normal = cycled_halves(n_normal, half, steps, generator)       # the official loaders are [normal, abnormal]
    abnormal = cycled_halves(n_abnormal, half, steps, generator)
    return torch.cat([abnormal, normal], dim=1).numpy()


def load_batch(data: TrainData, videos: np.ndarray, rng: np.random.RandomState, model_config: AnomalyCLIPConfig
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [B, S * L, D] and labels [B] of one batch (abnormal half, then normal half)."""
    half = len(videos) // 2
    records = [data.abnormal[i] for i in videos[:half]] + [data.normal[i] for i in videos[half:]]
    rows = np.concatenate([data.abnormal_rows[videos[:half]], data.normal_rows[videos[half:]]])
    S, L = model_config.num_segments, model_config.seg_length
    starts = sample_start_indices(np.array([r.num_frames for r in records]), rng, S, L)
    index = clip_frame_indices(starts, rows, L)
    features = np.stack([np.load(r.feature_file, mmap_mode="r")[i] for r, i in zip(records, index)])
    return torch.from_numpy(features.astype(np.float32, copy=False)), torch.tensor([r.label for r in records])


def train_step(model: AnomalyCLIP, optimizer: torch.optim.Optimizer, features: torch.Tensor, labels: torch.Tensor,
               keep: torch.Tensor, recipe: Recipe) -> dict[str, float]:
    """One optimizer step on a batch: features [B, 512, D], labels [B], keep mask [B, 32]; the losses."""
    cfg = model.config
    out = model(features)
    selection = select_segments(out.logits, labels, keep, cfg.normal_id, cfg.num_segments, recipe.topk,
                                recipe.bottomk)
    losses = anomalyclip_losses(out.logits, out.scores, labels, selection, cfg.normal_id, cfg.num_segments,
                                recipe.smooth_weight, recipe.sparse_weight)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    return {name: value.detach().item() for name, value in losses.items()}


# --------------------------------------------------------------------------- evaluation

def evaluate(model: AnomalyCLIP, data: TrainData) -> dict:
    """The official frame metrics over every frame of the test list (JSON-ready: lists, NaN -> None)."""
    scores, probs = [], []
    for record in data.test:
        out = score_frames(model, load_video_features(record))
        scores.append(out.scores)
        probs.append(out.class_probs)
    metrics = frame_metrics(np.concatenate(scores), np.concatenate(probs), np.concatenate(data.test_labels),
                            model.config.normal_id)
    return _json_ready(metrics)


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_json_ready(v) for v in np.asarray(value).tolist()]
    if isinstance(value, (float, np.floating, torch.Tensor)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --------------------------------------------------------------------------- run folder

def config_record(config: TrainConfig) -> dict:
    """The config as JSON values, paths absolute (run.json and the resume check)."""
    record = asdict(config)
    for key in ("train_normal", "train_abnormal", "test_list", "annotations", "features_root", "out_dir"):
        if record[key]:
            record[key] = str(Path(record[key]).resolve())
    if Path(record["clip"]).exists():
        record["clip"] = str(Path(record["clip"]).resolve())
    return record


def run_state_tensors(run: RunState) -> dict:
    """RunState as tensors and plain types (for torch.save / weights_only loading)."""
    kind, keys, pos, has_gauss, gauss = run.clip_rng.get_state()
    return {
        "epoch": run.epoch, "step": run.step, "batch_in_epoch": run.batch_in_epoch,
        "order": None if run.order is None else torch.from_numpy(run.order.astype(np.int64)),
        "best_value": run.best_value, "best_epoch": run.best_epoch, "last_metrics": json.dumps(run.last_metrics),
        "elapsed_s": run.elapsed_s,
        "clip_rng": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                     "gauss": float(gauss)},
        "torch_rng": run.torch_rng.get_state(),
    }


def run_state_from_tensors(d: dict) -> RunState:
    clip_rng = np.random.RandomState()
    r = d["clip_rng"]
    clip_rng.set_state(("MT19937", r["keys"].numpy().astype(np.uint32), r["pos"], r["has_gauss"], r["gauss"]))
    torch_rng = torch.Generator()
    torch_rng.set_state(d["torch_rng"])
    return RunState(epoch=d["epoch"], step=d["step"], batch_in_epoch=d["batch_in_epoch"],
                    order=None if d["order"] is None else d["order"].numpy(), best_value=d["best_value"],
                    best_epoch=d["best_epoch"], last_metrics=json.loads(d["last_metrics"]), elapsed_s=d["elapsed_s"],
                    clip_rng=clip_rng, torch_rng=torch_rng)


def checkpoint_metadata(kind: str, config: TrainConfig, recipe: Recipe, run: RunState) -> dict:
    return {"kind": kind, "method": "anomalyclip", "preset": config.preset, "epoch": run.epoch, "step": run.step,
            "metrics": run.last_metrics, "select_metric": SELECT_METRIC[config.preset], "best_value": run.best_value,
            "recipe": asdict(recipe)}


def save_run(out_dir: Path, model: AnomalyCLIP, optimizer: torch.optim.Optimizer, config: TrainConfig,
             recipe: Recipe, run: RunState) -> None:
    """last.safetensors, then train_state.pt (a resume checks that their steps agree)."""
    save_checkpoint(model, out_dir / LAST, checkpoint_metadata("last", config, recipe, run))
    state = {"version": STATE_VERSION, "method": "anomalyclip", "config": json.dumps(config_record(config)),
             "recipe": json.dumps(asdict(recipe)), "run": run_state_tensors(run), "optimizer": optimizer.state_dict()}
    with atomic_write(out_dir / STATE) as tmp:
        torch.save(state, tmp)


def log_event(out_dir: Path, on_progress: Callable[[dict], None] | None, event: dict) -> None:
    """Append `event` to metrics.jsonl and hand it to the caller's `on_progress`."""
    with open(out_dir / METRICS, "a") as f:
        f.write(json.dumps({**event, "time": time.time()}) + "\n")
    if on_progress is not None:
        on_progress(event)


def trim_metrics_log(out_dir: Path, until_step: int | None) -> None:
    """A fresh metrics.jsonl, or on resume the lines up to the saved step."""
    path = out_dir / METRICS
    if until_step is None or not path.is_file():
        path.write_text("")
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(line + "\n" for line in lines if json.loads(line).get("step", 0) <= until_step))


# --------------------------------------------------------------------------- training

def train(config: TrainConfig, on_progress: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train AnomalyCLIP with the official recipe; see the module docstring for outputs and resume.

    `on_progress` receives plain dicts: ``{"kind": "step", ...losses, "lr", "epoch", "step"}``,
    ``{"kind": "eval", "epoch", "step", "metrics", "best"}``, ``{"kind": "log", "message"}`` and
    ``{"kind": "done", ...}``. `should_stop()` is checked before every step; when it returns True
    the run saves ``last.safetensors`` and its state (resumable) and returns with ``cancelled=True``.
    """
    recipe = effective_recipe(config)
    model_config, _ = get_preset(config.preset)
    select_metric = SELECT_METRIC[config.preset]
    out_dir = Path(config.out_dir)
    state = saved_run_state(out_dir, config.resume, (BEST, LAST), STATE,
                            expected={"version": STATE_VERSION, "method": "anomalyclip"},
                            config=config_record(config), recipe=json.loads(json.dumps(asdict(recipe))),
                            resumable=RESUMABLE_CHANGES, what="an AnomalyCLIP training state")
    data = load_inputs(config, model_config, recipe)
    device = resolve_device(config.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (BEST, LAST, STATE, RUN, REPORT):
        for leftover in partial_writes(out_dir, name):      # a killed run's half-written files
            leftover.unlink(missing_ok=True)

    # The model, the optimizer and the run state: fresh, or as saved.
    if state is None:
        model = fresh_model(model_config, config.clip, recipe.seed, device)
        set_normal_centroid(model, data.normal)
        run = RunState(clip_rng=np.random.RandomState(recipe.seed),
                       torch_rng=torch.Generator().manual_seed(recipe.seed))
    else:
        model = load_checkpoint(out_dir / LAST, device=device)
        run = run_state_from_tensors(state["run"])
        if model.checkpoint_metadata.get("step") != run.step:
            raise TrainError(f"{out_dir}: {LAST} (step {model.checkpoint_metadata.get('step')}) and {STATE} "
                             f"(step {run.step}) disagree; the run was interrupted while saving")
    model.temporal_model.reversible = config.reversible
    optimizer = make_optimizer(model, recipe)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    trim_metrics_log(out_dir, None if state is None else run.step)
    if state is None:
        with atomic_write(out_dir / RUN) as tmp:
            tmp.write_text(json.dumps({"method": "anomalyclip", "config": config_record(config),
                                       "recipe": asdict(recipe), "clip": model.clip_info.source,
                                       "random_weights": model.clip_info.random_weights}, indent=2))
    if model.clip_info.random_weights:
        log_event(out_dir, on_progress, {"kind": "log", "message": "WARNING: " + model.clip_info.label})
    half = recipe.batch_size // 2
    steps_per_epoch = max(len(data.abnormal) // half, len(data.normal) // half)
    total_steps = recipe.epochs * steps_per_epoch
    log_event(out_dir, on_progress, {"kind": "log", "message": (
        f"{'resuming at step ' + str(run.step) if state else 'training'}: {len(data.abnormal)} abnormal + "
        f"{len(data.normal)} normal videos, {steps_per_epoch} steps/epoch, {recipe.epochs} epochs, "
        f"device {device}, select {select_metric}")})

    cancelled = False
    session_start = time.perf_counter() - run.elapsed_s
    while run.epoch < recipe.epochs:
        lr = epoch_lr(run.epoch, recipe)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if run.order is None:
            run.order = epoch_order(len(data.abnormal), len(data.normal), half, run.torch_rng)
        model.train()
        while run.batch_in_epoch < len(run.order):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            features, labels = load_batch(data, run.order[run.batch_in_epoch], run.clip_rng, model_config)
            keep = draw_keep_mask(len(labels), model_config.num_segments, recipe.dropout, run.torch_rng)
            losses = train_step(model, optimizer, features.to(device), labels.to(device), keep, recipe)
            run.step += 1
            run.batch_in_epoch += 1
            log_event(out_dir, on_progress, {"kind": "step", "step": run.step, "epoch": run.epoch,
                                             "total_steps": total_steps, "lr": lr, **losses})
        if cancelled:
            break
        run.epoch, run.batch_in_epoch, run.order = run.epoch + 1, 0, None
        if data.test and (run.epoch % config.eval_every == 0 or run.epoch == recipe.epochs):
            run.last_metrics = evaluate(model, data)
            value = run.last_metrics.get(select_metric)
            better = value is not None and (run.best_value is None or value > run.best_value)
            if better:
                run.best_value, run.best_epoch = float(value), run.epoch
                save_checkpoint(model, out_dir / BEST, checkpoint_metadata("best", config, recipe, run))
            log_event(out_dir, on_progress, {"kind": "eval", "epoch": run.epoch, "step": run.step,
                                             "metrics": run.last_metrics, "best": bool(better)})
        run.elapsed_s = time.perf_counter() - session_start
        save_run(out_dir, model, optimizer, config, recipe, run)
        log_event(out_dir, on_progress, {"kind": "log", "message": f"epoch {run.epoch}/{recipe.epochs} done "
                                                                   f"at step {run.step}"})
    if cancelled:
        run.elapsed_s = time.perf_counter() - session_start
        save_run(out_dir, model, optimizer, config, recipe, run)

    best_path = out_dir / BEST if (out_dir / BEST).is_file() else out_dir / LAST
    result = TrainResult(out_dir=out_dir, best_path=best_path, last_path=out_dir / LAST, select_metric=select_metric,
                         best_value=run.best_value, best_epoch=run.best_epoch, last_metrics=run.last_metrics,
                         epochs_done=run.epoch, steps=run.step, cancelled=cancelled,
                         elapsed_s=time.perf_counter() - session_start)
    with atomic_write(out_dir / REPORT) as tmp:
        tmp.write_text(json.dumps({**result.to_dict(), "method": "anomalyclip", "recipe": asdict(recipe),
                                   "clip": model.clip_info.source, "random_weights": model.clip_info.random_weights},
                                  indent=2))
    log_event(out_dir, on_progress, {"kind": "done", **result.to_dict()})
    return result
