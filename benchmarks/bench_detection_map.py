"""Time `vadclip.metrics.detection_map` against the official-style loop implementation.

Runs both on the official parity fixtures (`shared/fixtures/official/detection_map_{xd,ucf}`),
prints the best-of-N wall time of each, the speed-up and whether the results agree (and match the
official numbers stored in the fixture).

    python benchmarks/bench_detection_map.py [--repeats-official 3] [--repeats-ours 20]

`shared` is `$VADCLIP_SHARED` if set, else the `shared` folder beside the project root.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from official_detection_map import official_detection_map  # noqa: E402
from vadclip.metrics import detection_map  # noqa: E402


def shared_dir() -> Path:
    return Path(os.environ.get("VADCLIP_SHARED", ROOT.parent / "shared"))


def load_fixture(name: str) -> tuple[dict, list[float]]:
    """Keyword arguments for `detection_map` and the official mAP per threshold."""
    base = shared_dir() / "fixtures" / "official" / f"detection_map_{name}"
    arrays = np.load(base.with_suffix(".npz"))
    meta = json.loads(base.with_suffix(".json").read_text())
    scores = np.split(arrays["snippet_scores"], np.cumsum(arrays["snippets_per_video"])[:-1])
    kwargs = dict(snippet_scores=scores, segments=meta["segments_frames"], labels=meta["labels"],
                  classlist=meta["classlist"], iou_thresholds=meta["iou_thresholds"])
    return kwargs, meta["map_percent"]


def best_time(fn, kwargs: dict, repeats: int) -> tuple[float, list[float]]:
    """Best wall time over `repeats` calls, and the last result."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(**kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats-official", type=int, default=3)
    parser.add_argument("--repeats-ours", type=int, default=20)
    args = parser.parse_args()

    if not (shared_dir() / "fixtures" / "official").is_dir():
        print(f"fixtures not found under {shared_dir()} (set VADCLIP_SHARED)", file=sys.stderr)
        return 1

    all_ok = True
    print(f"{'fixture':8} {'videos':>6} {'snippets':>8} {'official-style':>15} {'vadclip':>10} "
          f"{'speed-up':>9}  max |diff|  vs fixture")
    for name in ("xd", "ucf"):
        kwargs, expected = load_fixture(name)
        t_ref, ref = best_time(official_detection_map, kwargs, args.repeats_official)
        t_ours, ours = best_time(detection_map, kwargs, args.repeats_ours)
        diff = float(np.max(np.abs(np.subtract(ref, ours))))
        vs_fixture = float(np.max(np.abs(np.subtract(ours, expected))))
        ok = diff <= 1e-6 and vs_fixture <= 1e-6
        all_ok &= ok
        n_snippets = sum(len(s) for s in kwargs["snippet_scores"])
        print(f"{name:8} {len(kwargs['snippet_scores']):6d} {n_snippets:8d} {t_ref:14.3f}s "
              f"{t_ours * 1e3:8.1f}ms {t_ref / t_ours:8.0f}x  {diff:.1e}     {vs_fixture:.1e} "
              f"{'ok' if ok else 'MISMATCH'}")
        print(f"{'':8} mAP@{kwargs['iou_thresholds']}: {np.round(ours, 4).tolist()} "
              f"(avg {np.mean(ours):.4f})")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
