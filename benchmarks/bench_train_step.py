"""One training step at the official batch on CPU, ours vs a per-video loop.

xd: 96 x 256 x 512 (the default); ucf: 64 normal + 64 abnormal videos, `--preset ucf --batch 128`.

    python benchmarks/bench_train_step.py [--preset xd|ucf] [--clip random|PATH] [--batch 96] [--repeats 5]
        [--threads 2] [--keep-freed-memory]

Both start from the same weights and take the same batch. Each side first takes one untimed
warm-up step (one-off costs: kernel set-up, first allocations), then the two are timed in turn,
--repeats times, each repeat from the same starting weights. The script prints the best and the
median wall time of each, the speed-up of each back-to-back pair (robust to a machine whose speed
drifts, as shared cloud CPUs do), their losses, the largest gradient difference and the largest
difference of the updated parameters, relative to the lr.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vadclip  # noqa: E402
from reference_train_step import HandAdamW, per_video_train_step  # noqa: E402
from vadclip.train import TrainConfig, effective_recipe, make_optimizer, train_step  # noqa: E402
from vadclip.utils import keep_freed_memory  # noqa: E402


def fake_batch(batch: int, T: int, n_classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(16, T + 1, (batch,), generator=g)
    lengths[: batch // 3] = T                                   # long videos are resampled to T
    feats = torch.randn(batch, T, 512, generator=g)
    feats[torch.arange(T)[None, :].expand(batch, -1) >= lengths[:, None]] = 0
    multi_hot = torch.zeros(batch, n_classes)
    normal = torch.rand(batch, generator=g) < 0.5
    multi_hot[normal, 0] = 1
    cls = torch.randint(1, n_classes, (batch,), generator=g)
    multi_hot[~normal, cls[~normal]] = 1
    return feats, lengths, multi_hot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random", help="CLIP for the text tower (default: random ViT-B-16)")
    ap.add_argument("--preset", default="xd", choices=["xd", "ucf"],
                    help="adapter shape and recipe (ucf: 2 layers, 8-wide windows; its official step is 64 + 64 videos)")
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="glibc keeps freed blocks for reuse, as `vadclip train` sets it (applies to both sides)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.keep_freed_memory and not keep_freed_memory():
        sys.exit("--keep-freed-memory: not glibc, nothing to set")
    torch.manual_seed(0)
    start = vadclip.build_model(a.preset, clip=a.clip)
    names = list(start.config.class_names)
    recipe = effective_recipe(TrainConfig(preset=a.preset))
    feats, lengths, multi_hot = fake_batch(a.batch, start.config.visual_length, len(names))

    def ours(feats=feats, multi_hot=multi_hot, lengths=lengths):
        model = copy.deepcopy(start).train()
        optimizer, _ = make_optimizer(model, recipe)
        t = time.perf_counter()
        losses = train_step(model, optimizer, feats, multi_hot, lengths, names, recipe.contrast_weight)
        return time.perf_counter() - t, model, losses

    def loop(feats=feats, multi_hot=multi_hot, lengths=lengths):
        model = copy.deepcopy(start).train()
        optimizer = HandAdamW(model.adapter_parameters(), recipe.lr, recipe.weight_decay)
        t = time.perf_counter()
        losses = per_video_train_step(model, optimizer, feats, lengths, multi_hot, names, recipe.contrast_weight)
        return time.perf_counter() - t, model, losses

    ours()
    loop(feats[:4], multi_hot[:4], lengths[:4])      # warm-up: the loop's first videos warm it up as well
    runs_ours, runs_loop = [], []
    for _ in range(a.repeats):
        runs_ours.append(ours())
        runs_loop.append(loop())
    t_ours, m_ours, l_ours = min(runs_ours, key=lambda r: r[0])
    t_loop, m_loop, l_loop = min(runs_loop, key=lambda r: r[0])
    med_ours = statistics.median(r[0] for r in runs_ours)
    med_loop = statistics.median(r[0] for r in runs_loop)
    p0 = start.adapter_parameters()
    grad_diff = max((p.grad - q.grad).abs().max().item() / (q.grad.abs().max().item() + 1e-30)
                    for p, q in zip(m_ours.adapter_parameters(), m_loop.adapter_parameters()))
    step_diff = max(((p.detach() - q.detach()).abs().max() / recipe.lr).item()
                    for p, q in zip(m_ours.adapter_parameters(), m_loop.adapter_parameters()))
    moved = max(((p.detach() - s.detach()).abs().max() / recipe.lr).item()
                for p, s in zip(m_ours.adapter_parameters(), p0))

    print(f"machine: {platform.machine()} {platform.processor()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, allocator: {'glibc keeps freed memory' if a.keep_freed_memory else 'default'}")
    print(f"one training step, batch {a.batch} x {start.config.visual_length} x 512, {a.preset} preset, "
          f"CLIP {a.clip}{' (random weights)' if start.clip_info.random_weights else ''}, {a.repeats} timed repeats")
    print("                                       best    median")
    print(f"  ours (batched, torch AdamW)        {t_ours:7.2f} s {med_ours:7.2f} s")
    print(f"  per-video loop (hand AdamW)        {t_loop:7.2f} s {med_loop:7.2f} s")
    paired = [lo[0] / ou[0] for ou, lo in zip(runs_ours, runs_loop)]
    print(f"  speed-up of ours: best {t_loop / t_ours:.2f}x, median {med_loop / med_ours:.2f}x, "
          f"median of back-to-back pairs {statistics.median(paired):.2f}x "
          f"(pairs: {', '.join(f'{r:.2f}' for r in paired)})")
    print(f"  losses ours  {', '.join(f'{k} {v:.6f}' for k, v in l_ours.items())}")
    print(f"  losses loop  {', '.join(f'{k} {v:.6f}' for k, v in l_loop.items())}")
    print(f"  max gradient difference (relative to the tensor's largest gradient)  {grad_diff:.2e}")
    print(f"  max updated-parameter difference, in units of lr   {step_diff:.3f}  (largest move {moved:.3f} lr)")


if __name__ == "__main__":
    main()
