"""Effect of the training options that are off by default (lr warm-up, EMA of the weights).

    python benchmarks/bench_train_options.py [--preset xd] [--n-train 240] [--n-test 80]
        [--epochs 3] [--batch-size 16] [--seeds 0 1]

Writes a synthetic benchmark (`../shared/tools/synth_vad.py`), then trains the same model from
the same start with the official recipe, with `--warmup-steps`, and with `--ema`, and prints the
final test metrics of each (the best checkpoint by the preset's selection metric). The text tower
is the fixture checkpoint's small CLIP, so the run needs no download; numbers are for comparing
the options with each other, not with the paper.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vadclip.train import TrainConfig, train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
METRICS = ("auc_c", "ap_c", "auc_a", "ap_a", "map_avg")


def make_synth(preset: str, out: Path, seed: int, n_train: int, n_test: int) -> dict:
    subprocess.run([sys.executable, str(SHARED / "tools" / "synth_vad.py"), "--preset", preset,
                    "--out", str(out), "--seed", str(seed), "--n-train", str(n_train),
                    "--n-test", str(n_test)], check=True, capture_output=True)
    if preset == "xd":
        return dict(train_list=str(out / "xd_train.csv"), test_list=str(out / "xd_test.csv"),
                    annotations=[str(out / "annotations.txt"), str(out / "annotations_multiclasses.txt")])
    return dict(train_list=str(out / "ucf_train.csv"), test_list=str(out / "ucf_test.csv"),
                annotations=str(out / "Temporal_Anomaly_Annotation.txt"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="xd", choices=["xd", "ucf"])
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-test", type=int, default=80)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="default: the preset's")
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    variants = {"official recipe": {}, f"warm-up {a.warmup_steps} steps": {"warmup_steps": a.warmup_steps},
                f"EMA {a.ema}": {"ema_decay": a.ema}}
    clip = str(SHARED / "fixtures" / "official" / "official_xd.pth")
    print(f"preset {a.preset}, synth {a.n_train} train / {a.n_test} test videos, {a.epochs} epochs, "
          f"batch {a.batch_size}, lr {a.lr or 'preset'}, CLIP: fixture (small, random weights)")
    print(f"{'variant':<22} {'seed':>4} " + " ".join(f"{m:>8}" for m in METRICS) + "   time")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            data = make_synth(a.preset, Path(tmp) / f"synth{seed}", seed, a.n_train, a.n_test)
            for i, (name, options) in enumerate(variants.items()):
                config = TrainConfig(preset=a.preset, out_dir=str(Path(tmp) / f"run{seed}_{i}"), clip=clip,
                                     epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, milestones=(),
                                     device="cpu", num_workers=0, **data, **options)
                t = time.perf_counter()
                result = train(config)
                m = result.best_metrics
                print(f"{name:<22} {seed:>4} " + " ".join(f"{m.get(k, float('nan')):8.2f}" for k in METRICS)
                      + f"   {time.perf_counter() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
