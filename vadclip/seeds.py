"""Training seeds as an axis: parsing ``--seeds``, summarising the runs, writing ``seeds_summary.json``.

    seeds = parse_seeds("0-2,7")                       # (0, 1, 2, 7)
    reports = [json.load(open(f"runs/s{s}/report.json")) | {"seed": s} for s in seeds]
    summary = summarise_runs(reports)
    write_seeds_summary(summary, "runs")               # runs/seeds_summary.json
    print(format_seeds_table(summary))
    # or all in one: train_seeds(TrainConfig(...), seeds, vadclip.train) -> runs/seed_<s>/, the summary

A run report is any mapping with the run's metrics under ``metrics`` or ``best_metrics`` (the
latter is what `vadclip train` writes to report.json) and optionally its ``seed``. Every numeric
metric is summarised over the runs that have a finite value for it: mean, sample standard deviation
(n - 1 in the denominator; None for a single run), min, max and n. Nothing is averaged away: the
summary keeps every run's metrics.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .utils import atomic_write

SUMMARY_FILE = "seeds_summary.json"
MAX_SEED = 2 ** 32 - 1            # numpy's seed range
_RANGE = re.compile(r"^(\d+)\s*(?:-|\.\.)\s*(\d+)$")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-4"`` / ``"0..4"`` (inclusive) or a mix (``"0-2,7"``) -> seeds in the given order.

    Raises ValueError naming the bad part (not an integer, a reversed range, a repeated seed,
    nothing given, a seed outside 0 .. 2**32-1).
    """
    seeds: list[int] = []
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ValueError("no seeds given; write them like 0,1,2 or 0-4")
    for part in parts:
        if not part:
            raise ValueError(f"empty item in seeds {text!r}; write them like 0,1,2 or 0-4")
        if (m := _RANGE.match(part)) is not None:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"seed range {part!r} runs backwards; write {hi}-{lo}")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ValueError(f"{part!r} is not a seed (a non-negative integer) or a range like 0-4")
    too_big = [s for s in seeds if s > MAX_SEED]
    if too_big:
        raise ValueError(f"seed {too_big[0]} is too large (at most {MAX_SEED})")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed(s) {', '.join(map(str, repeated))} given more than once")
    return tuple(seeds)


def _number(value) -> float | None:
    """A finite float, or None for anything else (None, NaN, bools, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _run_metrics(report: Mapping) -> dict:
    metrics = report.get("metrics", report.get("best_metrics"))
    if not isinstance(metrics, Mapping):
        raise ValueError(f"run report without metrics (keys: {', '.join(map(str, report)) or 'none'}); "
                         "expected 'metrics' or 'best_metrics'")
    return dict(metrics)


def summarise_runs(run_reports: Sequence[Mapping]) -> dict:
    """Mean, sample std, min, max and n of every numeric metric over the runs, and every run.

    Returns ``{"n_runs", "seeds", "metrics": {name: {"mean", "std", "min", "max", "n"}}, "runs"}``
    where ``runs`` holds each run's ``seed`` (None if absent) and ``metrics`` as given. Metric
    order follows the first run that has each metric.
    """
    if not run_reports:
        raise ValueError("no runs to summarise")
    runs = [{"seed": report.get("seed"), "metrics": _run_metrics(report)} for report in run_reports]
    names: list[str] = []
    for run in runs:
        names.extend(k for k in run["metrics"] if k not in names)
    summary = {}
    for name in names:
        values = [v for run in runs if (v := _number(run["metrics"].get(name))) is not None]
        if not values:
            continue
        arr = np.asarray(values, dtype=np.float64)
        summary[name] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
                         "min": float(arr.min()), "max": float(arr.max()), "n": len(arr)}
    return {"n_runs": len(runs), "seeds": [run["seed"] for run in runs], "metrics": summary, "runs": runs}


def _json_safe(value):
    """NaN / Inf become None (JSON has no NaN); containers are walked."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_seeds_summary(summary: Mapping, out_dir: str | os.PathLike) -> Path:
    """Write `summary` to ``<out_dir>/seeds_summary.json`` atomically; return the path."""
    path = Path(out_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False))
    return path


def format_seeds_table(summary: Mapping, metrics: Sequence[str] | None = None, scale: float = 1.0,
                       digits: int = 4) -> str:
    """A text table: one row per metric, mean ± std [min, max] over the runs, then each run's value.

    `scale` multiplies every value (100 shows fractions as percent).
    """
    names = list(metrics) if metrics is not None else list(summary["metrics"])
    seeds = ["?" if s is None else str(s) for s in summary["seeds"]]
    fmt = lambda v: "n/a" if v is None else f"{v * scale:.{digits}f}"
    header = ["metric", "mean ± std", "min", "max", *(f"seed {s}" for s in seeds)]
    rows = [header]
    for name in names:
        stats = summary["metrics"].get(name)
        per_run = [fmt(_number(run["metrics"].get(name))) for run in summary["runs"]]
        if stats is None:
            rows.append([name, "n/a", "n/a", "n/a", *per_run])
            continue
        spread = f"{fmt(stats['mean'])} ± {fmt(stats['std'])}"
        rows.append([name, spread, fmt(stats["min"]), fmt(stats["max"]), *per_run])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return f"{summary['n_runs']} run(s)\n" + "\n".join(lines)


def seed_run_dir(out_dir: str | os.PathLike, seed: int) -> Path:
    """Where the run of `seed` goes: ``<out_dir>/seed_<seed>``."""
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(config, seeds: Sequence[int], train_fn: Callable, **train_kwargs) -> dict:
    """Train `config` once per seed, in sequence, then write ``<out_dir>/seeds_summary.json``.

    `config` is any training config dataclass with ``seed`` and ``out_dir`` fields (VadCLIP's
    `TrainConfig`, AnomalyCLIP's); run `s` gets ``seed=s`` and ``out_dir=<out_dir>/seed_<s>``.
    `train_fn(config, **train_kwargs)` returns a result with ``best_metrics`` (and optionally
    ``cancelled``, ``best_path``); a cancelled run ends the sequence. Returns the summary of the
    finished runs, with ``"cancelled"`` set when the sequence stopped early.
    """
    if not seeds:
        raise ValueError("no seeds given")
    reports, cancelled = [], False
    for seed in seeds:
        run_config = dataclasses.replace(config, seed=int(seed), out_dir=str(seed_run_dir(config.out_dir, seed)))
        result = train_fn(run_config, **train_kwargs)
        if getattr(result, "cancelled", False):
            cancelled = True
            break
        reports.append({"seed": int(seed), "metrics": dict(result.best_metrics or {}),
                        "out_dir": run_config.out_dir, "best_path": str(getattr(result, "best_path", "") or "")})
    if not reports:
        return {"n_runs": 0, "seeds": [], "metrics": {}, "runs": [], "cancelled": cancelled}
    summary = summarise_runs(reports)
    for run, report in zip(summary["runs"], reports):
        run.update(out_dir=report["out_dir"], best_path=report["best_path"])
    summary["cancelled"] = cancelled
    write_seeds_summary(summary, config.out_dir)
    return summary


def seed_checkpoints(folder: str | os.PathLike) -> list[Path] | None:
    """The run folders of a `train_seeds` output folder (one holding ``seeds_summary.json``), in
    the summary's order; None for any other path (a checkpoint file, an ordinary run folder)."""
    folder = Path(folder)
    summary_path = folder / SUMMARY_FILE
    if not summary_path.is_file():
        return None
    try:
        runs = json.loads(summary_path.read_text())["runs"]
        seeds = [int(run["seed"]) for run in runs]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{summary_path}: not a seeds summary ({err})") from None
    return [seed_run_dir(folder, seed) for seed in seeds]
