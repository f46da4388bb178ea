"""Scoring one long video's per-frame features with AnomalyCLIP: ours vs the official computation.

    python benchmarks/bench_anomalyclip_score.py [--frames 18000] [--pairs 3] [--threads 1]
        [--checkpoint ../shared/fixtures/anomalyclip/official_xd.ckpt] [--preset xd] [--clip fixture|random]

Default input: 18,000 x 512 random features (a 10-minute 30 fps video) with the fixture
checkpoint. `score_frames` (text directions cached per vocabulary, per-frame steps on the
unpadded frames, grids gathered and batched) and `reference_anomalyclip.official_test_step` (a
plain transcription of the official test step, text encoder on every call) are timed in
alternating pairs after one warm-up call each; prints each pair, the medians of wall time and of
process CPU time (the steadier number on a shared machine), the speed-up and the largest output
difference. The fixture's CLIP has a 1-layer text tower; `--clip random` puts the checkpoint's
AnomalyCLIP weights on a full-size (12-layer) random ViT-B-16 text tower, as a real checkpoint has.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vadclip import anomalyclip  # noqa: E402
from reference_anomalyclip import official_test_step  # noqa: E402
from vadclip.checkpoint import get_tokenizer  # noqa: E402
from vadclip.clip_backbone import load_clip  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "anomalyclip"


def on_full_size_clip(model: anomalyclip.AnomalyCLIP) -> anomalyclip.AnomalyCLIP:
    """The same AnomalyCLIP weights on a random full-size ViT-B-16 CLIP (prompt suffixes from its table)."""
    clip_model, info = load_clip("random")
    full = anomalyclip.AnomalyCLIP(model.config, clip_model, info, get_tokenizer())
    keep = {k: v for k, v in model.state_dict().items()
            if not k.startswith(("clipmodel.", "prompt_learner.token_"))}
    full.load_state_dict(keep, strict=False)
    return full.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(FIXTURE / "official_xd.ckpt"))
    ap.add_argument("--preset", default="xd")
    ap.add_argument("--frames", type=int, default=18000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clip", choices=["fixture", "random"], default="fixture")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    centroid = rng.standard_normal(512).astype(np.float32)
    model = anomalyclip.load_official_checkpoint(a.checkpoint, preset=a.preset, centroid=centroid)
    if a.clip == "random":
        model = on_full_size_clip(model)
    features = rng.standard_normal((a.frames, 512)).astype(np.float32)

    def ours():
        return anomalyclip.score_frames(model, features)

    def reference():
        with torch.no_grad():
            return official_test_step(model, features)

    out, ref = ours(), reference()                                   # warm-up, and the check
    diff = max(np.abs(out.scores - ref["scores"].numpy()).max(),
               np.abs(out.class_probs - ref["class_probs"].numpy()).max())
    wall = {"ours": [], "official": []}
    cpu = {"ours": [], "official": []}
    for i in range(a.pairs):
        for label, fn in (("ours", ours), ("official", reference)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[label].append(time.perf_counter() - t)
            cpu[label].append(time.process_time() - c)
        print(f"pair {i + 1}: ours {wall['ours'][-1]:.3f} s (cpu {cpu['ours'][-1]:.3f}), "
              f"official {wall['official'][-1]:.3f} s (cpu {cpu['official'][-1]:.3f})")
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in wall}
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(f"AnomalyCLIP scoring, {a.frames} x 512 features, checkpoint {Path(a.checkpoint).name} "
          f"(preset {a.preset}, CLIP text tower: {a.clip}), median of {a.pairs} alternating pairs")
    print(f"  ours (score_frames):            wall {med['ours'][0]:.3f} s, cpu {med['ours'][1]:.3f} s")
    print(f"  official (plain transcription): wall {med['official'][0]:.3f} s, cpu {med['official'][1]:.3f} s")
    print(f"  speed-up: wall {med['official'][0] / med['ours'][0]:.2f}x, cpu {med['official'][1] / med['ours'][1]:.2f}x; "
          f"max |difference| of scores / class probs: {diff:.2e}")


if __name__ == "__main__":
    main()
