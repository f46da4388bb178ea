"""App latency on CPU: upload-to-plot for a 60 s 480p video, and instant re-scoring.

    python benchmarks/bench_app.py [--model vadclip|zeroshot] [--samples 4 1] [--work-dir DIR]
    python benchmarks/bench_app.py --anomalyclip [--seconds 10]
    python benchmarks/bench_app.py --plot-pooling

Synthesises a 60-second 854x480 25 fps H.264 video (kept in --work-dir for re-runs), then runs
the app's own handlers (app/handlers/) the way the Analyse tab does, with a ViT-B-16 CLIP with
RANDOM weights (no download possible here; the timing is the same as with real weights):

- `--model vadclip`: a VadCLIP (xd preset) on the random CLIP, saved as our checkpoint in the
  models folder and chosen like any checkpoint; `--model zeroshot`: CLIP zero-shot.
- upload to plot = analyse (probe, hash, decode, CLIP-encode `samples` frames per 16-frame
  snippet, score, cut segments, thumbnails, review queue) + building the Plotly timeline and
  serialising it to JSON (what Gradio sends to the page). The upload itself (a local file copy)
  is not counted. Model loading is timed separately (it happens once per app).
- re-score = a new vocabulary on the session's features + timeline: switching XD-Violence <->
  UCF-Crime (text features are kept per class name, so only the first switch runs the text
  encoder), and the XD vocabulary with one new class added each time; re-detect = new threshold /
  branch (no model call); all median of --repeats runs.
- cached = the same video analysed again from a fresh tab (features from the on-disk cache).

`--anomalyclip`: upload-to-plot of the same example (`--seconds` long) with AnomalyCLIP (xd,
per-frame: every frame encoded, one row per frame, timeline pooled to <= 2000 points) vs
VadCLIP (xd, 16-frame snippets at 4 and at 16 frames per snippet), both models on ONE random
ViT-B-16 (the same tensors, as two real checkpoints on OpenAI CLIP are), each from an empty
feature cache; then the app's comparison of the two (`compare`: one per-frame extraction, the
VadCLIP snippets derived as 16-frame means) against the two analyses apart.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import handlers as h  # noqa: E402
from app.config import AppConfig  # noqa: E402
from app.models import ZERO_SHOT  # noqa: E402
from app.plots import timeline_figure  # noqa: E402
from app.state import Session  # noqa: E402
from vadclip.checkpoint import build_model, save_checkpoint  # noqa: E402
from vadclip.results import DetectionParams  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS = 854, 480, 25, 60


def synth_video(path: Path, seconds: int = SECONDS) -> Path:
    """A 480p street-like clip: a moving gradient, drifting blocks and an 'event' (flashes and
    shaking) from 25 s to 35 s."""
    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * FPS):
            t = i / FPS
            img = np.empty((HEIGHT, WIDTH, 3), np.float32)
            img[..., 0] = 90 + 60 * np.sin(x / 140 + t * 0.3)
            img[..., 1] = 120 + 50 * np.cos(y / 90 - t * 0.2)
            img[..., 2] = 160 + 40 * np.sin((x + y) / 200 + t * 0.1)
            for k in range(4):
                cx = (120 + 180 * k + 40 * t * (k + 1)) % WIDTH
                img[(np.abs(x - cx) < 30) & (np.abs(y - 300 - 20 * k) < 20)] = (200, 40 + 50 * k, 40)
            if 25 <= t < 35:
                img += 120 * (np.sin(t * 17) > 0.6)
                img = np.roll(img, tuple(rng.integers(-12, 13, 2)), axis=(0, 1))
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    tmp.rename(path)
    return path


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def render(session: Session) -> str:
    return timeline_figure(session.scores).to_json()


def anomalyclip_vs_vadclip(work: Path, seconds: int) -> None:
    """The `--anomalyclip` comparison (see the module docstring)."""
    from vadclip import anomalyclip
    from vadclip.anomalyclip.model import AnomalyCLIP
    from vadclip.checkpoint import get_tokenizer
    from app.plots import comparison_figure

    video, t_synth = timed(lambda: synth_video(work / f"bench_{seconds}s_480p.mp4", seconds))
    print(f"video: {video} ({WIDTH}x{HEIGHT}, {FPS} fps, {seconds} s; synthesised in {t_synth:.1f} s)")
    models = work / "models_ac"
    models.mkdir(exist_ok=True)
    vad_file, ac_file = models / "random_vadclip_xd.safetensors", models / "random_anomalyclip_xd.safetensors"
    if not (vad_file.is_file() and ac_file.is_file()):
        vad = build_model("xd", clip="random")
        torch.manual_seed(0)
        ac = AnomalyCLIP(anomalyclip.get_preset("xd")[0], vad.clipmodel, vad.clip_info, get_tokenizer())
        save_checkpoint(vad, vad_file, {"note": "random CLIP, benchmark only"})
        anomalyclip.save_checkpoint(ac, ac_file, {"note": "random CLIP, benchmark only"})
    params = DetectionParams()

    def fresh_context() -> h.AppContext:
        data = work / "data_ac"
        for entry in (data / "feature_cache").glob("*"):          # measure extraction, not the cache
            entry.unlink()
        return h.AppContext.create(AppConfig(models_dir=models, data_dir=data, clip="random", device="cpu",
                                             max_video_s=3600))

    ctx = fresh_context()
    keys = {"vadclip": str(vad_file.resolve()), "anomalyclip": str(ac_file.resolve())}
    for name, key in keys.items():
        loaded, t_load = timed(lambda: ctx.registry.get(key, "auto", ctx.device))
        print(f"{name}: {loaded.detector.description}; loaded in {t_load:.1f} s")
    print()
    print(f"{'model':<12} {'rows':>6} {'images':>7} {'analyse s':>10} {'plot s':>7} {'upload->plot s':>15} "
          f"{'images/s':>9}")
    runs = (("vadclip", 4), ("vadclip", 16), ("anomalyclip", 16))
    times = {}
    for name, samples in runs:
        ctx.close()
        ctx = fresh_context()
        detector = ctx.registry.get(keys[name], "auto", ctx.device).detector
        boxes = (h.vocabulary_boxes(detector.default_class_names) if detector.fixed_vocabulary
                 else h.vocabulary_boxes(ctx.vocabularies["XD-Violence"]))
        session, t_analyse = timed(lambda: h.analyse(ctx, Session(), str(video), *boxes, keys[name], "auto",
                                                     samples, params))
        _, t_plot = timed(lambda: render(session))
        s = session.scores
        images = s.n_snippets * s.samples_per_snippet
        times[(name, samples)] = t_analyse + t_plot
        label = f"{name}@{samples}" if name == "vadclip" else name
        print(f"{label:<12} {s.n_snippets:>6} {images:>7} {t_analyse:>10.1f} {t_plot:>7.2f} "
              f"{t_analyse + t_plot:>15.1f} {images / t_analyse:>9.2f}")
    ctx.close()
    ctx = fresh_context()
    result, t_compare = timed(lambda: h.compare(ctx, str(video), *h.vocabulary_boxes(ctx.vocabularies["XD-Violence"]),
                                                [(keys["anomalyclip"], "auto"), (keys["vadclip"], "auto")], 16, params))
    _, t_fig = timed(lambda: comparison_figure(result.scores).to_json())
    apart = times[("vadclip", 16)] + times[("anomalyclip", 16)]
    print()
    print(f"compare AnomalyCLIP + VadCLIP@16 on one timeline: {t_compare + t_fig:.1f} s "
          f"(the two analyses apart: {apart:.1f} s)")
    for note in result.notes:
        print(f"  note: {note}")
    print("note: RANDOM CLIP WEIGHTS (timing only; the scores are meaningless)")
    ctx.close()


def plot_pooling(rows: int = 18_000, repeats: int = 3) -> None:
    """Timeline of a 10-minute per-frame result (`rows` frames at 30 fps, 7 classes): build + JSON
    time and size, pooled for drawing (the app) vs every row drawn."""
    import app.plots as plots
    from vadclip.results import VideoScores

    rng = np.random.default_rng(0)
    start = np.arange(rows) / 30.0
    fine = rng.dirichlet(np.ones(7), size=rows).astype(np.float32)
    scores = VideoScores(video="long.mp4", content_hash="x", fps=30.0, n_frames=rows, duration_s=rows / 30,
                         snippet_frames=1, samples_per_snippet=1, snippet_start_s=start, snippet_end_s=start + 1 / 30,
                         curves={"score": rng.random(rows).astype(np.float32)}, fine=fine,
                         class_names=[f"class {k}" for k in range(7)], segments=[],
                         params=DetectionParams(branch="score"), model="per-frame")
    for label, cap in ((f"pooled to <= {plots.MAX_POINTS} points", plots.MAX_POINTS), ("every row", rows)):
        times, size = [], 0
        for _ in range(repeats):
            text, t = timed(lambda: plots.timeline_figure(scores, max_points=cap).to_json())
            times.append(t)
            size = len(text)
        print(f"timeline of {rows} per-frame rows, {label}: {statistics.median(times):.2f} s "
              f"(median of {repeats}), {size / 1e6:.2f} MB of JSON to the page")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["vadclip", "zeroshot"], default="vadclip")
    ap.add_argument("--samples", type=int, nargs="+", default=[4, 1],
                    help="frames encoded per 16-frame snippet (app default 4)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "vadclip-bench-app"))
    ap.add_argument("--anomalyclip", action="store_true",
                    help="AnomalyCLIP vs VadCLIP upload-to-plot on one example, and their comparison")
    ap.add_argument("--seconds", type=int, default=10, help="length of the --anomalyclip example (s)")
    ap.add_argument("--plot-pooling", action="store_true",
                    help="only time the timeline of a 10-minute per-frame result, pooled vs every row")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = Path(a.work_dir)
    (work / "models").mkdir(parents=True, exist_ok=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {a.threads}, "
          f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if a.plot_pooling:
        plot_pooling()
        return
    if a.anomalyclip:
        anomalyclip_vs_vadclip(work, a.seconds)
        return
    video, t_synth = timed(lambda: synth_video(work / "bench_60s_480p.mp4"))
    print(f"video: {video} ({video.stat().st_size / 1e6:.1f} MB, {WIDTH}x{HEIGHT}, {FPS} fps, "
          f"{SECONDS} s; synthesised in {t_synth:.1f} s)")

    key = ZERO_SHOT
    if a.model == "vadclip":
        ckpt = work / "models" / "random_vadclip_xd.safetensors"
        if not ckpt.is_file():
            save_checkpoint(build_model("xd", clip="random"), ckpt, {"note": "random CLIP, benchmark only"})
        key = str(ckpt.resolve())
    config = AppConfig(models_dir=work / "models", data_dir=work / "data", clip="random", device="cpu",
                       max_video_s=3600)
    for entry in (work / "data" / "feature_cache").glob("*"):       # measure extraction, not the cache
        entry.unlink()
    ctx = h.AppContext.create(config)
    xd, ucf = ctx.vocabularies["XD-Violence"], ctx.vocabularies["UCF-Crime"]
    params = DetectionParams()

    loaded, t_load = timed(lambda: ctx.registry.get(key, "auto", ctx.device))
    print(f"model: {loaded.detector.description}; loaded in {t_load:.1f} s (once per app)")
    print()
    print(f"{'frames/snippet':>14} {'images':>7} {'analyse s':>10} {'plot s':>7} {'upload->plot s':>15} "
          f"{'images/s':>9}")
    session = None
    for samples in a.samples:
        session, t_analyse = timed(lambda: h.analyse(ctx, Session(), str(video), *h.vocabulary_boxes(xd),
                                                     key, "auto", samples, params))
        _, t_plot = timed(lambda: render(session))
        n_images = session.scores.n_snippets * samples
        print(f"{samples:>14} {n_images:>7} {t_analyse:>10.1f} {t_plot:>7.2f} {t_analyse + t_plot:>15.1f} "
              f"{n_images / t_analyse:>9.2f}")

    rescore, edited, redetect = [], [], []
    for i in range(a.repeats):
        names = xd + [f"new class {i}"]                              # one name never encoded before
        new, t = timed(lambda: h.rescore(ctx, session, *h.vocabulary_boxes(names), key, "auto", params))
        _, t_fig = timed(lambda: render(new))
        edited.append(t + t_fig)
        names = ucf if i % 2 == 0 else xd
        new, t = timed(lambda: h.rescore(ctx, session, *h.vocabulary_boxes(names), key, "auto", params))
        _, t_fig = timed(lambda: render(new))
        rescore.append(t + t_fig)
        branches = session.scores.branches                          # zero-shot has one curve
        p = DetectionParams(threshold=0.3 + 0.1 * i, branch=branches[i % len(branches)])
        new, t = timed(lambda: h.rescore(ctx, session, *h.vocabulary_boxes(xd), key, "auto", p))
        _, t_fig = timed(lambda: render(new))
        redetect.append(t + t_fig)
    cached, t_cached = timed(lambda: h.analyse(ctx, Session(), str(video), *h.vocabulary_boxes(xd), key,
                                               "auto", a.samples[-1], params))
    print()
    print(f"re-score, new vocabulary (XD <-> UCF) + plot: median {statistics.median(rescore):.3f} s "
          f"(min {min(rescore):.3f}, max {max(rescore):.3f}, {a.repeats} runs; target < 1 s)")
    print(f"re-score, vocabulary edited (+1 class) + plot: median {statistics.median(edited):.3f} s "
          f"(min {min(edited):.3f}, max {max(edited):.3f})")
    print(f"re-detect, new threshold/branch + plot:      median {statistics.median(redetect):.3f} s "
          f"(min {min(redetect):.3f}, max {max(redetect):.3f})")
    print(f"same video from a new tab (feature cache hit): {t_cached + timed(lambda: render(cached))[1]:.2f} s")
    if loaded.detector.random_weights:
        print("note: RANDOM CLIP WEIGHTS (timing only; the scores are meaningless)")
    ctx.close()


if __name__ == "__main__":
    main()
