"""One AnomalyCLIP training step at the official batch on CPU: ours vs the plain per-clip
transcription of the official step (benchmarks/reference_anomalyclip_train_step.py).

    python benchmarks/bench_anomalyclip_train_step.py [--preset xd|ucf|sht] [--clip PATH] [--batch 64]
        [--repeats 3] [--threads 2]

The batch is `--batch` clips of 32 x 16 = 512 frames (half abnormal, half normal; official: 64), with
random features around a random centroid and a keep mask drawn as the official one. Both sides
start from the same freshly initialised model (its CLIP from `--clip`, default the small random
CLIP inside the VadCLIP fixture checkpoint), take the same batch and one AdamW step. Each side
first takes one untimed warm-up step, then the sides are timed in turn, round after round, each
from the same starting weights. Three sides: ours (the default: the model's grid path with ordinary
autograd), ours with the opt-in official reversible axial transformer (`TrainConfig(reversible=True)`:
activations recomputed in the backward), and the per-clip transcription. Printed: best and median
wall time of each side, its speed-up over the per-clip side (best times, and the median of the
per-round ratios, robust to a machine whose speed drifts), the same for the process CPU time (all
threads; less sensitive to other processes on a shared machine), the losses, the largest gradient difference
(relative to the tensor's largest gradient) and the largest updated-parameter difference (in units
of lr; AdamW's first step moves each weight by about lr, so rounding-level gradient differences on
near-zero gradients can show as a fraction of lr).
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_anomalyclip_train_step import official_train_step  # noqa: E402
from vadclip.anomalyclip.config import get_preset  # noqa: E402
from vadclip.anomalyclip.losses import draw_keep_mask  # noqa: E402
from vadclip.anomalyclip.train import (TrainConfig, effective_recipe, fresh_model, make_optimizer,  # noqa: E402
                                       train_step)

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official" / "official_xd.pth"


def fake_batch(batch: int, normal_id: int, num_classes: int, seed: int = 0):
    """Features [B, 512, 512] (abnormal half shifted along a random direction), labels [B], centroid [512]."""
    g = torch.Generator().manual_seed(seed)
    centroid = torch.randn(512, generator=g)
    features = centroid + torch.randn(batch, 512, 512, generator=g)
    abnormal = [c for c in range(num_classes) if c != normal_id]
    labels = torch.tensor([abnormal[i % len(abnormal)] for i in range(batch // 2)] + [normal_id] * (batch // 2))
    features[: batch // 2] += 0.5 * torch.randn(batch // 2, 1, 512, generator=g)
    return features, labels, centroid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="xd", choices=["xd", "ucf", "sht"])
    ap.add_argument("--clip", default=str(DEFAULT_CLIP), help="CLIP for the text tower (a load_clip source)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model_config, _ = get_preset(a.preset)
    recipe = effective_recipe(TrainConfig(preset=a.preset, lr=1e-3))
    start = fresh_model(model_config, a.clip, recipe.seed, "cpu")
    features, labels, centroid = fake_batch(a.batch, model_config.normal_id, model_config.num_classes)
    with torch.no_grad():
        start.ncentroid.copy_(centroid)
    keep = draw_keep_mask(a.batch, model_config.num_segments, recipe.dropout, torch.Generator().manual_seed(0))

    def run(step, reversible: bool) -> tuple[float, torch.nn.Module, dict, float]:
        model = copy.deepcopy(start).train()
        model.temporal_model.reversible = reversible
        optimizer = make_optimizer(model, recipe)
        t, cpu = time.perf_counter(), time.process_time()
        losses = step(model, optimizer)
        return time.perf_counter() - t, model, losses, time.process_time() - cpu

    ours = lambda m, o: train_step(m, o, features, labels, keep, recipe)
    reference = lambda m, o: official_train_step(m, o, features, labels, keep)
    sides = {"ours (default: grid path)": (ours, False),
             "ours (opt-in reversible=True)": (ours, True),
             "per-clip official transcription": (reference, True)}
    for step, reversible in sides.values():          # untimed warm-up of each side
        run(step, reversible)
    runs = {name: [] for name in sides}
    for _ in range(a.repeats):                       # timed in turn, one round after another
        for name, (step, reversible) in sides.items():
            runs[name].append(run(step, reversible))
    ref_name = "per-clip official transcription"
    ref_runs = runs[ref_name]
    _, m_ref, _, _ = min(ref_runs, key=lambda r: r[0])

    print(f"machine: {platform.machine()} {platform.processor()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"one AnomalyCLIP training step, batch {a.batch} x 512 x 512, {a.preset} preset "
          f"(emb {model_config.emb_dim}, depth {model_config.depth}), CLIP {a.clip}, {a.repeats} timed rounds")
    for clock, i in (("wall", 0), ("CPU", 3)):
        print(f"{clock + ' time':42s}best    median   speed-up vs per-clip (best, median of rounds)")
        for name, timed in runs.items():
            best = min(r[i] for r in timed)
            median = statistics.median(r[i] for r in timed)
            paired = [r[i] / o[i] for o, r in zip(timed, ref_runs)]
            print(f"  {name:38s} {best:6.2f} s {median:6.2f} s   {min(r[i] for r in ref_runs) / best:.2f}x, "
                  f"{statistics.median(paired):.2f}x (rounds: {', '.join(f'{p:.2f}' for p in paired)})")
    for name, timed in runs.items():
        _, m, losses, _ = min(timed, key=lambda r: r[0])
        params = [(p, q) for p, q in zip(m.parameters(), m_ref.parameters()) if q.grad is not None]
        grad_diff = max(((p.grad - q.grad).abs().max() / (q.grad.abs().max() + 1e-30)).item() for p, q in params)
        step_diff = max(((p.detach() - q.detach()).abs().max() / recipe.lr).item() for p, q in params)
        print(f"  {name}: {', '.join(f'{k} {v:.6f}' for k, v in losses.items())}")
        print(f"      max gradient difference vs per-clip (relative to the tensor's largest) {grad_diff:.2e}, "
              f"max updated-parameter difference {step_diff:.3f} lr")


if __name__ == "__main__":
    main()
