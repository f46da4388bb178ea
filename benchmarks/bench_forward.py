"""Forward pass time at the official batch (96 x 256, xd preset), CPU: ours vs loop versions.

    python benchmarks/bench_forward.py [--clip random|PATH] [--repeats 5] [--threads 2]

Prints the best-of-N wall time of each implementation and the largest output difference.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vadclip  # noqa: E402
from reference_forward import official_style_forward, per_video_forward  # noqa: E402


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="random", help="CLIP for the text tower (default: random ViT-B-16)")
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = vadclip.build_model("xd", clip=a.clip).eval()
    names = list(model.config.class_names)
    T = model.config.visual_length
    lengths = torch.randint(16, T + 1, (a.batch,))
    lengths[0] = T
    feats = torch.randn(a.batch, T, 512)
    feats[torch.arange(T)[None, :].expand(a.batch, -1) >= lengths[:, None]] = 0

    with torch.no_grad():
        ours = model(feats, lengths, names)
        ref = official_style_forward(model, feats, lengths, names)
        loop = per_video_forward(model, feats, lengths, names)
        diff = max((ours.logits_a - ref[2]).abs().max().item(), (ours.logits_c - ref[1]).abs().max().item(),
                   (ours.logits_a - loop[2]).abs().max().item())
        t_ours = best_time(lambda: model(feats, lengths, names), a.repeats)
        t_ref = best_time(lambda: official_style_forward(model, feats, lengths, names), a.repeats)
        t_loop = best_time(lambda: per_video_forward(model, feats, lengths, names), max(1, a.repeats // 2))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"forward pass, batch {a.batch} x {T}, xd preset, CLIP {a.clip}, best of {a.repeats}")
    print(f"  ours (batched)             {t_ours * 1000:8.1f} ms")
    print(f"  official-style loops       {t_ref * 1000:8.1f} ms   ({t_ref / t_ours:.2f}x ours)")
    print(f"  one video at a time        {t_loop * 1000:8.1f} ms   ({t_loop / t_ours:.2f}x ours)")
    print(f"  max |logit difference|     {diff:.2e}")


if __name__ == "__main__":
    main()
