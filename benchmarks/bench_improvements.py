"""Do the opt-in improvements of issue 16 beat the official recipe? (synthetic xd and ucf benchmarks)

    python benchmarks/bench_improvements.py [--presets xd ucf] [--data-seeds 0,1,2] [--train-seeds 0,1,2]
        [--epochs 10] [--max-videos 600] [--batch-size B] [--lr LR] [--device cpu] [--json FILE]

For every preset, data seed (a fresh `../shared/tools/synth_vad.py` benchmark) and training seed,
one starting model (seeded by the training seed) is trained twice with the same budget through
`vadclip.train` (the preset's recipe unless overridden: epochs, batch size, lr; selection of the
best checkpoint by the preset's metric on the test set, as the official code does):

- **official**: the official recipe and test path;
- **padding-aware attention**: the same start with `ModelConfig.padding_aware_attention`.

The trained models are then scored with the test-time options of `vadclip.improvements`
(test-time resampling, smoothing, and an ensemble of the training seeds' official models per
data seed) and the official metrics computed by one code path (`eval_scores.metrics_of_scores`).
The table gives mean ± sample std over runs of each metric (percent) and the paired difference to
the official recipe of the preset's selection metric (xd: A-branch AP; ucf: C-branch AUC).
The text tower is the fixture checkpoint's small random CLIP (no download); the numbers compare
the options with each other, not with the papers.

The full measurement (the default: 3 x 3 seeds, 600 / 160 videos, 10 epochs) trains 2 x 9 models
per preset (each about 20 min on one CPU thread); `--epochs 1 --max-videos 48 --batch-size 8
--data-seeds 0 --train-seeds 0,1` proves the pipeline in a few minutes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vadclip.checkpoint import build_model, load_checkpoint, save_checkpoint  # noqa: E402
from vadclip.config import get_preset  # noqa: E402
from vadclip.errors import UserError  # noqa: E402
from vadclip.eval_scores import metrics_of_scores  # noqa: E402
from vadclip.evaluate import load_eval_set  # noqa: E402
from vadclip.improvements import TestTimeOptions, eval_scores_with_options  # noqa: E402
from vadclip.seeds import parse_seeds, summarise_runs  # noqa: E402
from vadclip.train import TrainConfig, train  # noqa: E402

SHARED = Path(os.environ.get("VADCLIP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIXTURE_CLIP = SHARED / "fixtures" / "official" / "official_xd.pth"
METRICS = ("auc_c", "ap_c", "anoauc_c", "auc_a", "ap_a", "anoauc_a", "map_avg")
OFFICIAL = "official"
PADDING = "padding-aware attention"


def make_synth(preset: str, out: Path, seed: int, n_train: int, n_test: int) -> dict:
    """A synthetic benchmark; the TrainConfig fields that point at it."""
    subprocess.run([sys.executable, str(SHARED / "tools" / "synth_vad.py"), "--preset", preset, "--out", str(out),
                    "--seed", str(seed), "--n-train", str(n_train), "--n-test", str(n_test)],
                   check=True, capture_output=True)
    if preset == "xd":
        return dict(train_list=str(out / "xd_train.csv"), test_list=str(out / "xd_test.csv"),
                    annotations=[str(out / "annotations.txt"), str(out / "annotations_multiclasses.txt")])
    return dict(train_list=str(out / "ucf_train.csv"), test_list=str(out / "ucf_test.csv"),
                annotations=[str(out / "Temporal_Anomaly_Annotation.txt")])


def test_time_arms(smooth_widths: list[int]) -> dict[str, TestTimeOptions]:
    """The test-time variants scored on the official-recipe model (and the combination)."""
    arms = {"resample (bins, long videos)": TestTimeOptions(resample="bins"),
            "resample (linear, all videos)": TestTimeOptions(resample="linear", resample_short=True)}
    for w in smooth_widths:
        arms[f"smooth (mean, width {w})"] = TestTimeOptions(smooth_width=w)
        arms[f"smooth (gaussian, width {2 * w - 1})"] = TestTimeOptions(smooth_width=2 * w - 1, smooth_kind="gaussian")
    return arms


def train_pair(preset: str, data: dict, seed: int, work: Path, a: argparse.Namespace) -> dict:
    """Train the official recipe and the padding-aware variant from one seeded start; their best models."""
    models = {}
    for arm, overrides in ((OFFICIAL, {}), (PADDING, {"padding_aware_attention": True})):
        torch.manual_seed(seed)
        start = build_model(preset, clip=str(FIXTURE_CLIP), **overrides)
        init = save_checkpoint(start, work / f"init_{seed}_{len(models)}.safetensors")
        config = TrainConfig(preset=preset, out_dir=str(work / f"run_{seed}_{len(models)}"), init=str(init),
                             epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=seed, device=a.device,
                             num_workers=0, **data)
        with contextlib.redirect_stdout(io.StringIO()):
            result = train(config)
        models[arm] = load_checkpoint(result.best_path, device=a.device)
        models[arm].best_metrics = result.best_metrics      # what training measured, for a cross-check
        init.unlink()
    return models


def percent(metric: str, value) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value) if metric.startswith("map") else 100.0 * float(value)


def run_preset(preset: str, a: argparse.Namespace, tmp: Path,
               on_round: Callable[[dict[str, list[dict]]], None] = lambda runs: None) -> dict[str, list[dict]]:
    """Every arm's runs: [{"seed": "data seed/train seed", "metrics": {metric: percent}}].

    The training seed is the outer loop, so a run stopped early still holds every data seed;
    `on_round(runs)` is called after each training seed (e.g. to save what is done).
    """
    arms = test_time_arms(a.smooth_widths)
    combined = f"{PADDING} + resample (bins) + smooth (mean, {a.smooth_widths[0]})"
    select = get_preset(preset).train.select_metric
    runs: dict[str, list[dict]] = {}
    n_train, n_test = min(600, a.max_videos), min(160, a.max_videos)

    def record(arm: str, seed, result) -> None:
        metrics = {m: percent(m, v) for m, v in result.as_dict().items() if m in METRICS}
        runs.setdefault(arm, []).append({"seed": seed, "metrics": metrics})

    benchmarks = {}
    for data_seed in a.data_seeds:
        data = make_synth(preset, tmp / f"{preset}_{data_seed}" / "synth", data_seed, n_train, n_test)
        benchmarks[data_seed] = data, load_eval_set(data["test_list"], data["annotations"], preset=preset)
    official_models: dict[int, list] = {d: [] for d in a.data_seeds}
    for train_seed in a.train_seeds:
        t = time.perf_counter()
        for data_seed, (data, eval_set) in benchmarks.items():
            models = train_pair(preset, data, train_seed, tmp / f"{preset}_{data_seed}", a)
            seed = f"{data_seed}/{train_seed}"
            for arm in (OFFICIAL, PADDING):
                result = metrics_of_scores(eval_set, eval_scores_with_options([models[arm]], eval_set))
                if not np.isclose(result.as_dict()[select], models[arm].best_metrics[select], atol=1e-6):
                    print(f"  WARNING: {arm} {seed}: {select} {result.as_dict()[select]} here, "
                          f"{models[arm].best_metrics[select]} during training", flush=True)
                record(arm, seed, result)
            for arm, options in arms.items():
                record(arm, seed, metrics_of_scores(eval_set, eval_scores_with_options([models[OFFICIAL]], eval_set, options)))
            options = TestTimeOptions(resample="bins", smooth_width=a.smooth_widths[0])
            record(f"resample (bins) + smooth (mean, {a.smooth_widths[0]})", seed,
                   metrics_of_scores(eval_set, eval_scores_with_options([models[OFFICIAL]], eval_set, options)))
            record(combined, seed, metrics_of_scores(eval_set, eval_scores_with_options([models[PADDING]], eval_set, options)))
            official_models[data_seed].append(models[OFFICIAL])
        print(f"  {preset} training seed {train_seed}: {len(benchmarks)} data seed(s) x 2 trained arms "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        on_round(runs)
    for data_seed, members in official_models.items():
        if len(members) > 1:
            arm = f"ensemble of the {len(members)} training seeds (x{len(members)} training budget)"
            eval_set = benchmarks[data_seed][1]
            record(arm, f"{data_seed}/all", metrics_of_scores(eval_set, eval_scores_with_options(members, eval_set)))
    return runs


def paired_delta(runs: list[dict], official: list[dict], metric: str) -> tuple[float | None, float | None, int]:
    """Mean and sample std of (arm - official) over the runs both have (an ensemble: its data seed's runs' mean)."""
    base: dict[str, list[float]] = {}
    for r in official:
        if r["metrics"].get(metric) is not None:
            base.setdefault(r["seed"], []).append(r["metrics"][metric])
            base.setdefault(r["seed"].split("/")[0] + "/all", []).append(r["metrics"][metric])
    diffs = [r["metrics"][metric] - float(np.mean(base[r["seed"]])) for r in runs
             if r["metrics"].get(metric) is not None and r["seed"] in base]
    if not diffs:
        return None, None, 0
    return float(np.mean(diffs)), (float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None), len(diffs)


def format_table(preset: str, runs: dict[str, list[dict]]) -> str:
    select = get_preset(preset).train.select_metric
    fmt = lambda mean, std: "n/a" if mean is None else (f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}")
    header = ["variant", "n", f"Δ {select} vs official", *[f"{m}{'*' if m == select else ''}" for m in METRICS]]
    rows = [header]
    for arm, arm_runs in runs.items():
        s = summarise_runs(arm_runs)["metrics"]
        delta = paired_delta(arm_runs, runs[OFFICIAL], select)
        rows.append([arm, str(len(arm_runs)), "" if arm == OFFICIAL else fmt(delta[0], delta[1]),
                     *[fmt(s[m]["mean"], s[m]["std"]) if m in s else "n/a" for m in METRICS]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:]))]) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def odd_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or any(w < 1 or w % 2 == 0 for w in widths):
        raise argparse.ArgumentTypeError(f"smoothing widths must be odd integers >= 1 like 5,9, got {text!r}")
    return widths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["xd", "ucf"], choices=["xd", "ucf"])
    ap.add_argument("--data-seeds", type=parse_seeds, default=(0, 1, 2), help="synthetic benchmarks, e.g. 0,1,2 or 0-2")
    ap.add_argument("--train-seeds", type=parse_seeds, default=(0, 1, 2), help="training seeds, e.g. 0,1,2")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's (10)")
    ap.add_argument("--max-videos", type=int, default=600,
                    help="at most this many training videos (600 by default) and test videos (160 by default)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the preset's (xd 96, ucf 64 + 64)")
    ap.add_argument("--lr", type=float, default=None, help="default: the preset's")
    ap.add_argument("--smooth-widths", type=odd_widths, default=[5, 9],
                    help="moving-average widths to try (odd; each also as a Gaussian of width 2w-1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write every run's metrics to this file (after each training seed)")
    ap.add_argument("--table", metavar="JSON", help="only print the tables of a --json file (e.g. of a run in progress)")
    a = ap.parse_args()
    if a.table:
        for preset, runs in json.loads(Path(a.table).read_text())["runs"].items():
            print(f"\n{preset}: metrics in percent, mean ± sample std over runs "
                  f"(* = selection metric {get_preset(preset).train.select_metric})")
            print(format_table(preset, runs))
        return
    torch.set_num_threads(a.threads)
    if not FIXTURE_CLIP.is_file():
        sys.exit(f"{FIXTURE_CLIP} not found: the benchmark needs ../shared (set VADCLIP_SHARED)")
    print(f"synthetic benchmarks: presets {' '.join(a.presets)}, data seeds {list(a.data_seeds)}, training seeds "
          f"{list(a.train_seeds)}, epochs {a.epochs or 'preset'}, at most {a.max_videos} videos, batch "
          f"{a.batch_size or 'preset'}, lr {a.lr or 'preset'}, device {a.device}, {a.threads} thread(s); "
          f"CLIP: fixture (small, random weights)", flush=True)
    started = time.perf_counter()
    results = {}

    def save(preset: str, runs: dict[str, list[dict]]) -> None:
        results[preset] = runs
        if a.json:
            Path(a.json).write_text(json.dumps({"args": {k: (list(v) if isinstance(v, tuple) else v)
                                                         for k, v in vars(a).items()}, "runs": results}, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        for preset in a.presets:
            try:
                runs = run_preset(preset, a, Path(tmp), on_round=lambda runs, preset=preset: save(preset, runs))
            except UserError as err:       # bad options for this data (e.g. a batch larger than the set)
                sys.exit(f"error: {preset}: {err}")
            save(preset, runs)
            select = get_preset(preset).train.select_metric
            print(f"\n{preset}: metrics in percent, mean ± sample std over runs (* = selection metric {select})")
            print(format_table(preset, runs), flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

if __name__ == "__main__":
    main()
