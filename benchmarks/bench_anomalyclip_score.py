"""Scoring one long video's per-frame features with AnomalyCLIP: ours vs the official computation.

    python benchmarks/bench_anomalyclip_score.py [--frames 18000] [--pairs 3] [--threads 1]
        [--checkpoint ../shared/fixtures/anomalyclip/official_xd.ckpt] [--preset xd]

Default input: 18,000 x 512 random features (a 10-minute 30 fps video) with the fixture
checkpoint. `score_frames` (text directions cached per vocabulary, grids gathered and batched)
and `reference_anomalyclip.official_test_step` (a plain transcription of the official test step,
text encoder on every call) are timed in alternating pairs after one warm-up call each; prints
each pair, the medians, the speed-up and the largest output difference.
"""
from __future__ import annotations

import argparse
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

FIXTURE = ROOT.parent / "shared" / "fixtures" / "anomalyclip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(FIXTURE / "official_xd.ckpt"))
    ap.add_argument("--preset", default="xd")
    ap.add_argument("--frames", type=int, default=18000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    centroid = rng.standard_normal(512).astype(np.float32)
    model = anomalyclip.load_official_checkpoint(a.checkpoint, preset=a.preset, centroid=centroid)
    features = rng.standard_normal((a.frames, 512)).astype(np.float32)

    def ours():
        return anomalyclip.score_frames(model, features)

    def reference():
        with torch.no_grad():
            return official_test_step(model, features)

    out, ref = ours(), reference()                                   # warm-up, and the check
    diff = max(np.abs(out.scores - ref["scores"].numpy()).max(),
               np.abs(out.class_probs - ref["class_probs"].numpy()).max())
    t_ours, t_ref = [], []
    for i in range(a.pairs):
        for fn, times in ((ours, t_ours), (reference, t_ref)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        print(f"pair {i + 1}: ours {t_ours[-1]:.3f} s, official {t_ref[-1]:.3f} s")
    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"AnomalyCLIP scoring, {a.frames} x 512 features, checkpoint {Path(a.checkpoint).name} "
          f"(preset {a.preset}), median of {a.pairs} alternating pairs")
    print(f"  ours (score_frames):            {m_ours:.3f} s")
    print(f"  official (plain transcription): {m_ref:.3f} s")
    print(f"  speed-up: {m_ref / m_ours:.2f}x, max |difference| of scores / class probs: {diff:.2e}")


if __name__ == "__main__":
    main()
