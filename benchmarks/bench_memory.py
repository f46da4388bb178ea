"""Peak memory of feature extraction versus video length: it must not grow with the video.

    python benchmarks/bench_memory.py [--minutes 5 20 60] [--dir /tmp/vadclip-bench-memory]
                                      [--clip PATH] [--samples-per-snippet 1]

Writes low-motion 640x360 25 fps H.264 videos of the given lengths with PyAV (kept in --dir and
reused), then extracts each one's features in a fresh process with `extract_video_features`.
Each process loads the CLIP, resets the kernel's peak-RSS counter (/proc/self/clear_refs, Linux)
and reports the peak RSS during extraction alone, next to the RSS before it. The default CLIP is
the fixture checkpoint's small one (32 px input) with samples_per_snippet=1, so decoding
dominates and a 60-minute video takes minutes on CPU; memory bounds do not depend on the CLIP's
size except through its own weights and one batch of activations.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CLIP = REPO.parent / "shared" / "fixtures" / "official" / "official_xd.pth"


def write_low_motion_video(path: Path, minutes: float, width: int = 640, height: int = 360,
                           fps: int = 25) -> Path:
    """A still textured background with a small square circling it (25 distinct frames)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    background = np.kron((rng.random((height // 20, width // 20, 3)) * 255).astype(np.uint8),
                         np.ones((20, 20, 1), np.uint8))
    frames = []
    for k in range(fps):
        image = background.copy()
        x = int((width - 40) * (0.5 + 0.4 * np.cos(2 * np.pi * k / fps)))
        y = int((height - 40) * (0.5 + 0.4 * np.sin(2 * np.pi * k / fps)))
        image[y:y + 40, x:x + 40] = 255
        frames.append(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p"))
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30", "g": "250"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(minutes * 60 * fps)):
            frame = frames[i % fps]
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    os.replace(tmp, path)
    return path


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(video: str, clip: str, samples: int, batch_size: int, backend: str = "auto") -> dict:
    """Run in a fresh process: RSS before extraction and peak RSS during it (MiB)."""
    import torch

    from vadclip.clip_backbone import load_clip
    from vadclip.features import ExtractSettings, extract_video_features
    from vadclip.video import probe

    torch.set_num_threads(2)
    model, info = load_clip(clip)
    video_info = probe(video, backend=backend)
    settings = ExtractSettings(samples_per_snippet=samples, batch_size=batch_size)
    with torch.inference_mode():                            # warm up the encoder's buffers
        model.encode_image(torch.zeros(batch_size, 3, info.image_size, info.image_size))
    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")          # reset VmHWM to the current RSS
    started = time.perf_counter()
    result = extract_video_features(model, info, video, settings, info=video_info)
    seconds = time.perf_counter() - started
    return {"frames": video_info.n_frames, "snippets": result.n_snippets,
            "backend": video_info.backend, "seconds": seconds,
            "rss_before_mib": before / 1024, "peak_mib": _rss_kb("VmHWM") / 1024,
            "features_mib": result.features.nbytes / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 20, 60])
    ap.add_argument("--dir", default="/tmp/vadclip-bench-memory")
    ap.add_argument("--clip", default=str(DEFAULT_CLIP))
    ap.add_argument("--samples-per-snippet", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    ap.add_argument("--measure", help=argparse.SUPPRESS)      # internal: the child process
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.clip, a.samples_per_snippet, a.batch_size, a.backend)))
        return
    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; CLIP {a.clip}; "
          f"samples_per_snippet={a.samples_per_snippet}, batch {a.batch_size}; 640x360 25 fps H.264")
    print(f"{'minutes':>7} {'frames':>7} {'snippets':>8} {'backend':>7} {'extract s':>9} "
          f"{'snip/s':>7} {'RSS before':>10} {'peak RSS':>9} {'peak-before':>11} {'features':>8}")
    for minutes in a.minutes:
        video = folder / f"lowmotion_{minutes:g}min.mp4"
        if not video.exists():
            started = time.perf_counter()
            write_low_motion_video(video, minutes)
            print(f"(wrote {video.name} in {time.perf_counter() - started:.0f} s, "
                  f"{video.stat().st_size / 2**20:.1f} MiB)", flush=True)
        cmd = [sys.executable, __file__, "--measure", str(video), "--clip", a.clip,
               "--samples-per-snippet", str(a.samples_per_snippet), "--batch-size", str(a.batch_size),
               "--backend", a.backend]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{minutes:7g} {r['frames']:7d} {r['snippets']:8d} {r['backend']:>7} {r['seconds']:9.1f} "
              f"{r['snippets'] / r['seconds']:7.1f} {r['rss_before_mib']:8.0f} MiB "
              f"{r['peak_mib']:6.0f} MiB {r['peak_mib'] - r['rss_before_mib']:8.0f} MiB "
              f"{r['features_mib']:6.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
