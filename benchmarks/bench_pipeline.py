"""Whole video pipeline vs the CLIP encoder alone, at the same batch size.

    python benchmarks/bench_pipeline.py [--seconds 24] [--samples-per-snippet 2] [--batch-size 32]
                                        [--repeats 2]

A random-weight ViT-B-16 VadCLIP (`build_model("xd", clip="random")`) and a synthesised 640x480
H.264 video (25 fps, moving shapes) written with PyAV into a temporary folder.

- encoder only: the sampled frames decoded and preprocessed beforehand, held in memory; only
  `clip_model.encode_image` is timed, batch by batch.
- whole pipeline: `extract_video_features` (decode in a background thread + preprocess + encode)
  followed by `score_features` (the VadCLIP adapter).

Both encode the same images (`samples_per_snippet` of every 16 frames). The ratio of the
pipeline's throughput to the encoder's is the share of time spent encoding (target >= 85%).
The two are timed alternately `--repeats` times and the best of each is kept, which damps the
effect of other processes sharing the CPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vadclip.checkpoint import build_model  # noqa: E402
from vadclip.features import ExtractSettings, extract_video_features, preprocess_frames  # noqa: E402
from vadclip.inference import score_features  # noqa: E402
from vadclip.video import iter_frames, probe, snippet_frame_indices  # noqa: E402


def write_synthetic_video(path: Path, seconds: float, width: int = 640, height: int = 480,
                          fps: int = 25, seed: int = 0) -> Path:
    """A textured background with a few moving rectangles (cheap to make, real motion to code)."""
    rng = np.random.default_rng(seed)
    background = (rng.random((height // 8, width // 8, 3)) * 255).astype(np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), np.uint8))
    boxes = rng.integers(0, [width - 80, height - 80], size=(4, 2))
    speeds = rng.integers(-6, 7, size=(4, 2))
    colours = rng.integers(0, 255, size=(4, 3))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            frame = background.copy()
            for (x, y), (dx, dy), colour in zip(boxes, speeds, colours):
                px, py = (x + dx * i) % (width - 80), (y + dy * i) % (height - 80)
                frame[py:py + 80, px:px + 80] = colour
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return path


def encoder_only(clip_model, image_size: int, path: Path, settings: ExtractSettings
                 ) -> tuple[callable, int]:
    """A function timing encode_image alone on pre-decoded, pre-processed frames; images."""
    info = probe(path)
    indices = snippet_frame_indices(info.n_frames, 16, settings.samples_per_snippet).reshape(-1)
    frames = np.concatenate([f for _, f in iter_frames(path, indices=indices, info=info)])
    batches = list(torch.split(preprocess_frames(torch.from_numpy(frames), image_size),
                               settings.batch_size))

    def run() -> float:
        with torch.inference_mode():
            started = time.perf_counter()
            for batch in batches:
                clip_model.encode_image(batch)
            return time.perf_counter() - started

    return run, len(indices)


def whole_pipeline(model, path: Path, settings: ExtractSettings) -> float:
    """Seconds for decode + preprocess + encode + adapter scoring."""
    started = time.perf_counter()
    result = extract_video_features(model.clipmodel, model.clip_info, path, settings)
    scores = score_features(model, result.features)
    assert len(scores.coarse_c) == result.n_snippets
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=24.0, help="video length (default 24 s)")
    ap.add_argument("--samples-per-snippet", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    settings = ExtractSettings(samples_per_snippet=a.samples_per_snippet, batch_size=a.batch_size)
    model = build_model("xd", clip="random").eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_video(Path(tmp) / "bench.mp4", a.seconds)
        info = probe(path)
        n_snippets = info.n_frames // 16
        encode, n_images = encoder_only(model.clipmodel, model.clip_info.image_size, path, settings)
        with torch.inference_mode():                     # warm-up
            model.clipmodel.encode_image(torch.zeros(2, 3, 224, 224))
        t_enc, t_all = [], []
        for _ in range(a.repeats):                       # interleaved: contention hits both
            t_enc.append(encode())
            t_all.append(whole_pipeline(model, path, settings))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
          f"threads, torch {torch.__version__}, device cpu")
    print(f"video: {info.width}x{info.height} {info.codec} {info.fps:g} fps, {info.n_frames} frames "
          f"({info.duration_s:.1f} s, {n_snippets} snippets, backend {info.backend}); CLIP ViT-B-16 "
          f"random weights; samples_per_snippet={a.samples_per_snippet} ({n_images} images), "
          f"batch {a.batch_size}; best of {a.repeats}")
    for name, times in (("encoder only ", t_enc), ("whole pipeline", t_all)):
        t = min(times)
        print(f"{name}: {t:7.2f} s  {n_images / t:6.2f} frames/s  {n_snippets / t:6.3f} snippets/s"
              f"  (runs: {', '.join(f'{x:.1f}' for x in times)} s)")
    print(f"pipeline / encoder throughput: {min(t_enc) / min(t_all):.1%} (target >= 85%; "
          f"pipeline = decode + preprocess + encode + VadCLIP adapter)")


if __name__ == "__main__":
    main()
