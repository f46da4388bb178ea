"""Do the opt-in improvements of issue 16 beat the official recipe? (synthetic xd and ucf benchmarks)

    python benchmarks/bench_improvements.py [--presets xd ucf] [--data-seeds 0,1,2] [--train-seeds 0,1,2]
        [--epochs 10] [--max-videos 600] [--batch-size B] [--lr LR] [--device cpu] [--json FILE]
        [--keep-models DIR | --from-models DIR]
    python benchmarks/bench_improvements.py --table FILE.json

For every preset, data seed (a fresh `../shared/tools/synth_vad.py` benchmark) and training seed,
one starting model (seeded by the training seed) is trained twice with the same budget through
`vadclip.train` (the preset's recipe unless overridden: epochs, batch size, lr; selection of the
best checkpoint by the preset's metric on the test set, as the official code does):

- **official**: the official recipe and test path;
- **padding-aware attention**: the same start with `ModelConfig.padding_aware_attention`.

The trained models are then scored with the test-time options of `vadclip.improvements`
(test-time resampling, smoothing; each model scored once per test path, `Scores`) and as checkpoint
ensembles of a data seed's training seeds (every pair, and all; an ensemble of k costs k trainings,
which its name says), and the official metrics computed by one code path
(`eval_scores.metrics_of_scores`). The table gives mean ± sample std over runs of each metric
(percent) and the paired difference to the official recipe of the preset's selection metric (xd:
A-branch AP; ucf: C-branch AUC); an ensemble is paired with the mean of its members' official runs.
The text tower is the fixture checkpoint's small random CLIP (no download); the numbers compare
the options with each other, not with the papers.

The JSON is written after each training seed (the outer loop, so a run stopped early holds every
data seed). `--keep-models DIR` keeps every trained arm's best checkpoint; `--from-models DIR`
re-scores them without training (new test-time variants cost minutes, not hours).
A model at the preset's full schedule (10 epochs, 600 videos) takes 12-16 min on one CPU thread,
so the default 2 x 3 x 3 models per preset are about 8 CPU-hours for both presets; `--epochs 3`
(the epochs at the full learning rate of both recipes) is what BENCHMARKS.md reports. `--epochs 1
--max-videos 16 --batch-size 8 --data-seeds 0 --train-seeds 0,1` proves the pipeline in a minute.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
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
from vadclip.eval_scores import EvalScores, metrics_of_scores  # noqa: E402
from vadclip.evaluate import load_eval_set  # noqa: E402
from vadclip.improvements import TestTimeOptions, combine_eval_scores, eval_scores_one_model  # noqa: E402
from vadclip.seeds import parse_seeds, summarise_runs  # noqa: E402
from vadclip.train import TrainConfig, train  # noqa: E402

SHARED = Path(os.environ.get("VADCLIP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIXTURE_CLIP = SHARED / "fixtures" / "official" / "official_xd.pth"
METRICS = ("auc_c", "ap_c", "anoauc_c", "auc_a", "ap_a", "anoauc_a", "map_avg")
OFFICIAL = "official"
PADDING = "padding-aware attention"
TRAINED_ARMS = ((OFFICIAL, {}), (PADDING, {"padding_aware_attention": True}))   # (name, ModelConfig overrides)


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


def smooth_options(smooth_widths: list[int]) -> dict[str, TestTimeOptions]:
    """The smoothing variants: each width as a moving average and as a Gaussian of width 2w - 1."""
    arms = {}
    for w in smooth_widths:
        arms[f"smooth (mean, width {w})"] = TestTimeOptions(smooth_width=w)
        arms[f"smooth (gaussian, width {2 * w - 1})"] = TestTimeOptions(smooth_width=2 * w - 1, smooth_kind="gaussian")
    return arms


def train_pair(preset: str, data: dict, data_seed: int, seed: int, work: Path, a: argparse.Namespace) -> dict:
    """Train the official recipe and the padding-aware variant from one seeded start; their best models."""
    models = {}
    for i, (arm, overrides) in enumerate(TRAINED_ARMS):
        torch.manual_seed(seed)
        start = build_model(preset, clip=str(FIXTURE_CLIP), **overrides)
        init = save_checkpoint(start, work / f"init_{seed}_{i}.safetensors")
        config = TrainConfig(preset=preset, out_dir=str(work / f"run_{seed}_{i}"), init=str(init),
                             epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=seed, device=a.device,
                             num_workers=0, **data)
        with contextlib.redirect_stdout(io.StringIO()):
            result = train(config)
        init.unlink()
        if a.keep_models:
            kept = kept_model_path(a.keep_models, preset, data_seed, seed, i)
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.best_path, kept)
        models[arm] = load_checkpoint(result.best_path, device=a.device)
    return models


def kept_model_path(folder: str | Path, preset: str, data_seed, train_seed: int, arm_index: int) -> Path:
    """Where --keep-models puts (and --from-models finds) a trained arm's best checkpoint."""
    return Path(folder) / f"{preset}_{data_seed}" / f"run_{train_seed}_{arm_index}.safetensors"


def kept_pair(preset: str, data_seed: int, seed: int, a: argparse.Namespace) -> dict:
    """The two trained arms of (data seed, training seed) from a --keep-models folder."""
    models = {}
    for i, (arm, _) in enumerate(TRAINED_ARMS):
        path = kept_model_path(a.from_models, preset, data_seed, seed, i)
        if not path.is_file():
            raise UserError(f"{path}: not found; --from-models needs the folder a --keep-models run wrote "
                            "(with the same seeds)")
        models[arm] = load_checkpoint(path, device=a.device)
    return models


def percent(metric: str, value) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value) if metric.startswith("map") else 100.0 * float(value)


class Scores:
    """One (data seed, training seed)'s per-video scores, each model scored once per test path."""

    def __init__(self, models: dict, eval_set) -> None:
        self.models, self.eval_set, self.cache = models, eval_set, {}

    PATHS = {None: TestTimeOptions(), "bins": TestTimeOptions(resample="bins"),        # bins: long videos only
             "linear": TestTimeOptions(resample="linear", resample_short=True)}    # linear: every video

    def __call__(self, arm: str, resample: str | None = None) -> EvalScores:
        key = (arm, resample)
        if key not in self.cache:
            self.cache[key] = eval_scores_one_model(self.models[arm], self.eval_set, self.PATHS[resample])
        return self.cache[key]


def test_time_rows(scores: Scores, smooth_widths: list[int]) -> dict[str, EvalScores]:
    """Every variant's scores for one (data seed, training seed): the two trained arms and the test-time
    options on the official model (and the padding-aware model with resampling and smoothing)."""
    w = TestTimeOptions(smooth_width=smooth_widths[0])
    rows = {OFFICIAL: scores(OFFICIAL), PADDING: scores(PADDING),
            "resample (bins, long videos)": scores(OFFICIAL, "bins"),
            "resample (linear, all videos)": scores(OFFICIAL, "linear")}
    rows.update({name: combine_eval_scores([scores(OFFICIAL)], options)
                 for name, options in smooth_options(smooth_widths).items()})
    rows[f"resample (bins) + smooth (mean, {smooth_widths[0]})"] = combine_eval_scores([scores(OFFICIAL, "bins")], w)
    rows[f"{PADDING} + resample (bins) + smooth (mean, {smooth_widths[0]})"] = \
        combine_eval_scores([scores(PADDING, "bins")], w)
    rows[f"{PADDING} + resample (linear, all) + smooth (mean, {smooth_widths[-1]})"] = \
        combine_eval_scores([scores(PADDING, "linear")], TestTimeOptions(smooth_width=smooth_widths[-1]))
    return rows


def ensemble_rows(data_seed: int, per_seed: dict[int, Scores], smooth_widths: list[int]) -> dict[str, dict[str, EvalScores]]:
    """Checkpoint ensembles over one data seed's training seeds: {variant: {seed label: scores}}.

    Labels: ``"d/0+1"`` for the ensemble of training seeds 0 and 1 of data seed d (every pair), and
    ``"d/all"`` for all of them; each costs that many trainings (the budget is in the variant's name).
    """
    seeds = sorted(per_seed)
    w = TestTimeOptions(smooth_width=smooth_widths[0])
    rows: dict[str, dict[str, EvalScores]] = {}
    if len(seeds) < 2:
        return rows
    for k in sorted({2, len(seeds)}):
        groups = [seeds] if k == len(seeds) else [[s, t] for i, s in enumerate(seeds) for t in seeds[i + 1:]]
        for group in groups:
            label = f"{data_seed}/" + ("all" if k == len(seeds) else "+".join(map(str, group)))
            members = [per_seed[s] for s in group]
            variants = {f"ensemble of {k} training seeds (x{k} training budget)":
                        combine_eval_scores([m(OFFICIAL) for m in members])}
            if k == len(seeds):
                variants[f"ensemble of {k}, {PADDING} (x{k})"] = combine_eval_scores([m(PADDING) for m in members])
                variants[f"ensemble of {k} + resample (bins) + smooth (mean, {smooth_widths[0]}) (x{k})"] = \
                    combine_eval_scores([m(OFFICIAL, "bins") for m in members], w)
                variants[f"ensemble of {k}, {PADDING} + resample (linear, all) + smooth (mean, "
                         f"{smooth_widths[-1]}) (x{k})"] = combine_eval_scores(
                    [m(PADDING, "linear") for m in members], TestTimeOptions(smooth_width=smooth_widths[-1]))
            for name, value in variants.items():
                rows.setdefault(name, {})[label] = value
    return rows


def run_preset(preset: str, a: argparse.Namespace, tmp: Path,
               on_round: Callable[[dict[str, list[dict]]], None] = lambda runs: None) -> dict[str, list[dict]]:
    """Every arm's runs: [{"seed": "data seed/train seed", "metrics": {metric: percent}}].

    The training seed is the outer loop, so a run stopped early still holds every data seed;
    `on_round(runs)` is called after each training seed (e.g. to save what is done).
    """
    select = get_preset(preset).train.select_metric
    runs: dict[str, list[dict]] = {}
    n_train, n_test = min(600, a.max_videos), min(160, a.max_videos)

    def record(arm: str, seed: str, eval_set, scores: EvalScores) -> None:
        result = metrics_of_scores(eval_set, scores).as_dict()
        runs.setdefault(arm, []).append({"seed": seed, "metrics": {m: percent(m, result[m]) for m in METRICS}})

    benchmarks = {}
    for data_seed in a.data_seeds:
        data = make_synth(preset, tmp / f"{preset}_{data_seed}" / "synth", data_seed, n_train, n_test)
        benchmarks[data_seed] = data, load_eval_set(data["test_list"], data["annotations"], preset=preset)
    per_seed: dict[int, dict[int, Scores]] = {d: {} for d in a.data_seeds}
    for train_seed in a.train_seeds:
        t = time.perf_counter()
        for data_seed, (data, eval_set) in benchmarks.items():
            models = (kept_pair(preset, data_seed, train_seed, a) if a.from_models else
                      train_pair(preset, data, data_seed, train_seed, tmp / f"{preset}_{data_seed}", a))
            scores = per_seed[data_seed][train_seed] = Scores(models, eval_set)
            seed = f"{data_seed}/{train_seed}"
            for arm, arm_scores in test_time_rows(scores, a.smooth_widths).items():
                record(arm, seed, eval_set, arm_scores)
            for arm in (OFFICIAL, PADDING):      # re-scoring the best model gives what training measured
                trained = models[arm].checkpoint_metadata["metrics"][select]
                here = runs[arm][-1]["metrics"][select] / 100
                if not np.isclose(here, trained, atol=1e-6):
                    print(f"  WARNING: {arm} {seed}: {select} {here} here, {trained} during training", flush=True)
            scores.models = {}                   # keep the scores, not the models
        print(f"  {preset} training seed {train_seed}: {len(benchmarks)} data seed(s) x 2 trained arms "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        on_round(runs)
    for data_seed, seeds in per_seed.items():
        for arm, by_label in ensemble_rows(data_seed, seeds, a.smooth_widths).items():
            for label, scores in by_label.items():
                record(arm, label, benchmarks[data_seed][1], scores)
    return runs


def paired_delta(runs: list[dict], official: list[dict], metric: str) -> tuple[float | None, float | None, int]:
    """Mean and sample std of (arm - official) over the runs both have; an ensemble ("d/0+1", "d/all")
    is compared with the mean of its members' official runs (all of data seed d's for "all")."""
    base = {r["seed"]: r["metrics"][metric] for r in official if r["metrics"].get(metric) is not None}
    diffs = []
    for r in runs:
        value = r["metrics"].get(metric)
        data_seed, train = r["seed"].split("/")
        members = ([k for k in base if k.split("/")[0] == data_seed] if train == "all" else
                   [f"{data_seed}/{t}" for t in train.split("+")])
        if value is None or not members or any(m not in base for m in members):
            continue
        diffs.append(value - float(np.mean([base[m] for m in members])))
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
    ap.add_argument("--keep-models", metavar="DIR", help="also copy every trained arm's best checkpoint here")
    ap.add_argument("--from-models", metavar="DIR",
                    help="train nothing: score the checkpoints a --keep-models run left in DIR (same seeds, sizes)")
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
