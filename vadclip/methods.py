"""Training either method through one entry point: `vadclip.train(config)` picks the trainer by the
config's type (VadCLIP's `vadclip.train.TrainConfig`, AnomalyCLIP's `vadclip.anomalyclip.TrainConfig`).

    result = vadclip.train(vadclip.TrainConfig(preset="xd", train_list=..., out_dir="runs/xd"))
    result = vadclip.train(anomalyclip.TrainConfig(preset="xd", train_normal=..., features_root=...))
    summary = train_seeds(config, (0, 1, 2))         # <out_dir>/seed_<s>/ and seeds_summary.json

Both trainers take the same `on_progress(event: dict)` / `should_stop()` callbacks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import seeds as seeds_module
from .train import TrainConfig as VadCLIPTrainConfig
from .train import train as train_vadclip

METHODS = ("vadclip", "anomalyclip")


def method_of(config) -> str:
    """"vadclip" or "anomalyclip" for a training config; TypeError for anything else."""
    from .anomalyclip.train import TrainConfig as AnomalyCLIPTrainConfig

    if isinstance(config, VadCLIPTrainConfig):
        return "vadclip"
    if isinstance(config, AnomalyCLIPTrainConfig):
        return "anomalyclip"
    raise TypeError(f"not a training config: {type(config).__name__} (use vadclip.TrainConfig or "
                    f"vadclip.anomalyclip.TrainConfig)")


def train(config, on_progress: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None):
    """Train VadCLIP or AnomalyCLIP with its official recipe, by the type of `config`.

    Returns that trainer's `TrainResult`.
    """
    if method_of(config) == "vadclip":
        return train_vadclip(config, on_progress=on_progress, should_stop=should_stop)
    from .anomalyclip.train import train as train_anomalyclip

    return train_anomalyclip(config, on_progress=on_progress, should_stop=should_stop)


@dataclass
class SeedRun:
    """What `seeds.train_seeds` keeps of one run: the metrics summarised over the seeds."""

    best_metrics: dict
    best_path: Path
    cancelled: bool


def summary_metrics(result) -> dict:
    """The metrics a seeds summary takes from a run: VadCLIP's best checkpoint (its model selection),
    AnomalyCLIP's last evaluation (the official model is the last epoch's); numbers only."""
    metrics = getattr(result, "best_metrics", None)
    if metrics is None:
        metrics = getattr(result, "last_metrics", None) or {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def train_seeds(config, seeds: Sequence[int], on_progress: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None, train_fn: Callable = train) -> dict:
    """`train` once per seed in sequence into ``<out_dir>/seed_<s>``, then ``seeds_summary.json``
    (`seeds.train_seeds`); a cancelled run ends the sequence (the summary says ``cancelled``).
    `train_fn(config, on_progress=, should_stop=)` replaces `train` (e.g. to keep each result)."""
    def one_run(run_config):
        if on_progress is not None:
            on_progress({"kind": "log", "message": f"seed {run_config.seed}: training into {run_config.out_dir}"})
        result = train_fn(run_config, on_progress=on_progress, should_stop=should_stop)
        return SeedRun(summary_metrics(result), result.best_path, result.cancelled)

    return seeds_module.train_seeds(config, seeds, one_run)
