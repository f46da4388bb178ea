"""GPU benchmark: CLIP ViT-B/16 encoding, video decoding, video -> scores, and the training step.

    python benchmarks/gpu_bench.py --out DIR [--tiny] [--isolate] [--sections encode,compile,decode,pipeline,train]

Sections (each time-boxed; a failing one prints its error and the others still run):

- encode:   open_clip `ViT-B-16` with random weights, `encode_image` on random images: fp32, fp16
            and bf16 autocast, bf16 weights, channels-last or not, batch 64 to 512; images/s, the
            achieved TFLOP/s (FLOPs counted by torch's FlopCounterMode) and peak GPU memory.
- compile:  `torch.compile` of the same encoder (bf16 autocast, channels-last, batch 256), in a
            subprocess with its own time limit: compile time and images/s.
- decode:   a synthesised 1080p30 H.264 clip (written with PyAV first): PyAV decoding with and
            without the RGB conversion, the library's readers (`video.iter_frames`, PyAV and decord)
            for every frame and for 2 of every 16, and GPU decoding with PyNvVideoCodec when it is
            installed (scripts/bundle_wheels.sh --nvdec carries it).
- pipeline: `vadclip.score_video` of that clip with a random-weight ViT-B/16 VadCLIP at 16 and 2
            frames per snippet, as shipped and with bf16 / batch 256: real-time factor, and which
            stage bounds it (decoding alone vs transfer + preprocessing + encoding alone).
- train:    one training step at the official batch (xd: 96 x 256 x 512), `vadclip.train.train_step`
            in fp32 and bf16 autocast against the per-video baseline (benchmarks/reference_train_step.py),
            timed in alternating pairs on the same device.

`--tiny`: the same sections at tiny sizes on the CPU (a one-layer 32-px CLIP, a 160x120 clip of
two seconds, batch 8, T = 32; torch.compile with the "eager" backend), in well under a minute;
CI runs it (tests/test_gpu.py) so that this script cannot rot. `--isolate` runs each
section in its own process with a hard time limit (benchmarks/gpu_check.sh does). Every number
goes to DIR/gpu_bench.json; the table is printed last and written to DIR/gpu_bench.txt.
Random-weight CLIP: the timings are real, the scores are meaningless.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SECTIONS = ("encode", "compile", "decode", "pipeline", "train")


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the full run and --tiny."""

    video: tuple[int, int, int, float]          # width, height, fps, seconds
    encode_batches: tuple[int, ...]
    repeats: int
    train_batch: int
    compile_backend: str
    boxes: dict                                  # section -> time box in seconds


FULL = Sizes(video=(1920, 1080, 30, 20.0), encode_batches=(64, 128, 256, 512), repeats=5, train_batch=96,
             compile_backend="inductor",
             boxes={"encode": 100, "compile": 120, "decode": 60, "pipeline": 90, "train": 75})
TINY = Sizes(video=(160, 120, 30, 2.0), encode_batches=(8,), repeats=1, train_batch=8,
             compile_backend="eager",
             boxes={"encode": 30, "compile": 60, "decode": 30, "pipeline": 30, "train": 30})


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float | None
    unit: str
    peak_mib: float | None = None
    note: str = ""


class Context:
    """What every section gets: device, sizes, the clip, a deadline, and where rows go."""

    def __init__(self, device: str, sizes: Sizes, tiny: bool, video: Path, box_s: float):
        self.device, self.sizes, self.tiny, self.video = torch.device(device), sizes, tiny, video
        self.deadline = time.monotonic() + box_s
        self.rows: list[Row] = []
        self.extra: dict = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def over_box(self) -> bool:
        """Past the time box, once at least one case has been measured (so a slow machine still
        gets one number per section)."""
        return self.left() < 0 and any(r.value is not None for r in self.rows)

    def row(self, *args, **kwargs) -> None:
        self.rows.append(Row(*args, **kwargs))

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, fn: Callable[[], object]) -> float:
        """Seconds for fn(), the device synchronised before and after."""
        self.sync()
        started = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - started

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mib(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


# ---------------------------------------------------------------------------------------------
# models


def encoder_model(ctx: Context) -> torch.nn.Module:
    """open_clip ViT-B-16 (random weights), or the tiny CLIP with --tiny, on the device."""
    import open_clip

    import gpu_compare

    torch.manual_seed(0)
    model = gpu_compare.tiny_clip(32) if ctx.tiny else open_clip.create_model("ViT-B-16", pretrained=None)
    return model.to(ctx.device).eval().requires_grad_(False)


def vadclip_model(ctx: Context):
    """A random-weight VadCLIP (xd preset) on the device: ViT-B/16, or the tiny one with --tiny."""
    import gpu_compare
    from vadclip.checkpoint import build_model

    torch.manual_seed(0)
    if ctx.tiny:
        return gpu_compare.tiny_vadclip().to(ctx.device)
    return build_model("xd", clip="random", device=ctx.device).eval()


def image_flops(model: torch.nn.Module, image_size: int, device: torch.device) -> float:
    """FLOPs of encode_image for one image (torch's FlopCounterMode: matrix products and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.encode_image(torch.randn(1, 3, image_size, image_size, device=device))
    return float(counter.get_total_flops())


def flop_rate(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e12:.1f} TFLOP/s" if flops_per_s >= 1e11 else f"{flops_per_s / 1e9:.2f} GFLOP/s"


def image_size_of(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


# ---------------------------------------------------------------------------------------------
# sections


def section_encode(ctx: Context) -> None:
    import gpu_compare

    model = encoder_model(ctx)
    size = image_size_of(model)
    flops = image_flops(model, size, ctx.device)
    ctx.extra["flops_per_image"] = flops
    variants = [(p, cl) for p in gpu_compare.PRECISIONS for cl in (False, True)] + [("bf16-weights", False)]
    models = {False: model, True: copy.deepcopy(model).to(memory_format=torch.channels_last)}
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    for batch in ctx.sizes.encode_batches:
        for precision, channels_last in variants:
            case = f"ViT {'tiny' if ctx.tiny else 'B/16'} {precision}{' channels-last' if channels_last else ''} b{batch}"
            if ctx.over_box():
                ctx.row("encode", case, None, "img/s", note="skipped: time box")
                continue
            x = torch.randn(batch, 3, size, size, device=ctx.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if precision == "bf16-weights":
                m, x, amp = bf16_model, x.to(torch.bfloat16), "fp32"
            else:
                m, amp = models[channels_last], precision
            ctx.reset_peak()
            with torch.inference_mode(), gpu_compare.autocast(ctx.device, amp):
                run = lambda: m.encode_image(x)
                for _ in range(2):
                    run()
                times = [ctx.timed(run) for _ in range(ctx.sizes.repeats)]
            t = statistics.median(times)
            ctx.row("encode", case, batch / t, "img/s", ctx.peak_mib(), flop_rate(flops * batch / t))
            del x


def section_compile(ctx: Context) -> None:
    """torch.compile in a child process (compilation cannot be interrupted in-process)."""
    batch = ctx.sizes.encode_batches[min(2, len(ctx.sizes.encode_batches) - 1)]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-probe", str(batch),
           "--device", str(ctx.device), "--compile-backend", ctx.sizes.compile_backend]
    if ctx.tiny:
        cmd.append("--tiny")
    case = f"ViT {'tiny' if ctx.tiny else 'B/16'} bf16 channels-last b{batch} torch.compile({ctx.sizes.compile_backend})"
    box = max(10.0, ctx.left())
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=box)
    except subprocess.TimeoutExpired:
        ctx.row("compile", case, None, "img/s", note=f"skipped: not compiled and timed within {box:.0f} s")
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"compile probe failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    r = json.loads(lines[-1])
    ctx.extra["compile"] = r
    ctx.row("compile", case, r["compiled_img_s"], "img/s", r["peak_mib"],
            f"eager {r['eager_img_s']:.0f} img/s; compiled in {r['compile_s']:.0f} s")


def compile_probe(batch: int, device: str, backend: str, tiny: bool) -> None:
    """Eager vs compiled encode_image at one configuration; prints one JSON line."""
    import gpu_compare

    ctx = Context(device, TINY if tiny else FULL, tiny, Path(), 0)
    model = encoder_model(ctx).to(memory_format=torch.channels_last)
    size = image_size_of(model)
    x = torch.randn(batch, 3, size, size, device=ctx.device).contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(model.encode_image, backend=backend)
    result = {}
    with torch.inference_mode(), gpu_compare.autocast(ctx.device, "bf16"):
        started = time.perf_counter()
        compiled(x)
        ctx.sync()
        result["compile_s"] = time.perf_counter() - started
        ctx.reset_peak()
        for name, fn in (("eager", lambda: model.encode_image(x)), ("compiled", lambda: compiled(x))):
            fn()
            times = [ctx.timed(fn) for _ in range(ctx.sizes.repeats)]
            result[f"{name}_img_s"] = batch / statistics.median(times)
    result["peak_mib"] = ctx.peak_mib()
    print(json.dumps(result))


def pyav_decode(path: Path, rgb: bool) -> int:
    """Decode every frame with PyAV (frame threads), optionally converting to RGB; frame count."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        for frame in container.decode(stream):
            if rgb:
                frame.to_ndarray(format="rgb24")
            n += 1
    return n


def nvdec_decode(path: Path, device: torch.device) -> int:
    """Decode every frame on the GPU with PyNvVideoCodec into RGB CUDA tensors; frame count."""
    import PyNvVideoCodec as nvc

    decoder = nvc.SimpleDecoder(str(path), gpu_id=device.index or 0, use_device_memory=True,
                                output_color_type=nvc.OutputColorType.RGB)
    n = 0
    while True:
        frames = decoder.get_batch_frames(64)
        if not frames:
            return n
        batch = torch.stack([torch.from_dlpack(f) for f in frames])
        n += batch.shape[0]


def section_decode(ctx: Context) -> None:
    from vadclip.video import _import_decord, iter_frames, probe, snippet_frame_indices

    info = probe(ctx.video)
    ctx.extra["video"] = asdict(info)
    duration = info.duration_s
    where = f"{os.cpu_count()} CPU cores"
    cases: list[tuple[str, Callable[[], int], str]] = [
        ("PyAV decode only (no RGB)", lambda: pyav_decode(ctx.video, rgb=False), where),
        ("PyAV decode + RGB", lambda: pyav_decode(ctx.video, rgb=True), where),
    ]
    backends = ["pyav"] + (["decord"] if _import_decord() is not None else [])
    for backend in backends:
        for s in (16, 2):
            idx = snippet_frame_indices(info.n_frames, 16, s).reshape(-1)
            b_info = replace(info, backend=backend)
            run = (lambda idx=idx, b_info=b_info:
                   sum(len(ids) for ids, _ in iter_frames(ctx.video, 16, indices=idx, info=b_info)))
            cases.append((f"iter_frames {backend}, {s}/16 frames", run, where))
    if "decord" not in backends:
        ctx.row("decode", "decord", None, "x real time", note="not installed")
    if ctx.device.type == "cuda":
        try:
            import PyNvVideoCodec  # noqa: F401
            cases.append(("PyNvVideoCodec (NVDEC) -> RGB on GPU", lambda: nvdec_decode(ctx.video, ctx.device),
                          torch.cuda.get_device_name(ctx.device)))
        except Exception as error:  # ImportError, or a library that cannot load here
            ctx.row("decode", "GPU decoding (PyNvVideoCodec)", None, "x real time",
                    note=f"not available: {type(error).__name__}: {str(error)[:80]}")
    for name, run, note in cases:
        if ctx.over_box():
            ctx.row("decode", name, None, "x real time", note="skipped: time box")
            continue
        try:
            times, frames = [], 0
            for _ in range(min(2, ctx.sizes.repeats)):
                started = time.perf_counter()
                frames = run()
                ctx.sync()
                times.append(time.perf_counter() - started)
            t = min(times)
            ctx.row("decode", name, duration / t, "x real time",
                    note=f"{frames / t:.0f} frames/s output, {info.n_frames / t:.0f} stream frames/s; {note}")
        except Exception as error:
            ctx.row("decode", name, None, "x real time", note=f"error: {type(error).__name__}: {str(error)[:100]}")


def section_pipeline(ctx: Context) -> None:
    import gpu_compare
    from vadclip.features import ExtractSettings, encode_images, preprocess_frames
    from vadclip.scoring import score_video
    from vadclip.video import iter_frames, probe, snippet_frame_indices

    model = vadclip_model(ctx)
    info = probe(ctx.video)
    size = model.clip_info.image_size
    big = 16 if ctx.tiny else 256
    for s in (16, 2):
        idx = snippet_frame_indices(info.n_frames, 16, s).reshape(-1)
        timed_runs = range(min(2, ctx.sizes.repeats))                      # best of 2 (1 with --tiny)
        decode_s = min(ctx.timed(lambda: sum(1 for _ in iter_frames(ctx.video, 16, indices=idx, info=info)))
                       for _ in timed_runs)
        frames = torch.from_numpy(np.concatenate([f for _, f in iter_frames(ctx.video, 64, indices=idx, info=info)]))
        if ctx.device.type == "cuda":
            frames = frames.pin_memory()
        for label, settings in (("as shipped", ExtractSettings(samples_per_snippet=s)),
                                (f"bf16 b{big}", ExtractSettings(samples_per_snippet=s, precision="bf16", batch_size=big))):
            case = f"{s}/16 frames, {label}"
            if ctx.over_box():
                ctx.row("pipeline", case, None, "x real time", note="skipped: time box")
                continue
            precision = settings.precision if settings.precision != "auto" else (
                "fp16" if ctx.device.type == "cuda" else "fp32")

            def encode_only() -> None:
                with torch.inference_mode(), gpu_compare.autocast(ctx.device, precision):
                    for chunk in torch.split(frames, settings.frames_per_batch):
                        x = preprocess_frames(chunk.to(ctx.device, non_blocking=True), size)
                        if ctx.device.type == "cuda":                       # as the library does
                            x = x.contiguous(memory_format=torch.channels_last)
                        encode_images(model.clipmodel, x, ctx.device)

            encode_only()                                                   # warm-up
            encode_s = min(ctx.timed(encode_only) for _ in timed_runs)
            run = lambda: score_video(ctx.video, model, settings=settings, device=ctx.device)
            run()                                                           # warm-up (text features, kernels)
            ctx.reset_peak()
            total_s = min(ctx.timed(run) for _ in timed_runs)
            bound = "decode" if decode_s >= encode_s else "encode"
            ctx.row("pipeline", case, info.duration_s / total_s, "x real time", ctx.peak_mib(),
                    f"{bound}-bound: decode alone {info.duration_s / decode_s:.1f}x, transfer+preprocess+encode "
                    f"alone {info.duration_s / encode_s:.1f}x; whole at {max(decode_s, encode_s) / total_s:.0%} of the slower "
                    f"stage's speed")
        del frames


def section_train(ctx: Context) -> None:
    from bench_train_step import fake_batch
    from reference_train_step import HandAdamW, per_video_train_step
    from vadclip.train import TrainConfig, effective_recipe, make_optimizer, train_step

    start = vadclip_model(ctx).cpu()
    names = list(start.config.class_names)
    recipe = effective_recipe(TrainConfig(preset="xd"))
    T = start.config.visual_length
    feats, lengths, multi_hot = (t.to(ctx.device) for t in fake_batch(ctx.sizes.train_batch, T, len(names)))

    def ours(precision: str):
        model = copy.deepcopy(start).to(ctx.device).train()
        optimizer, _ = make_optimizer(model, recipe)
        dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
        return lambda: train_step(model, optimizer, feats, multi_hot, lengths, names, recipe.contrast_weight, dtype)

    def baseline():
        model = copy.deepcopy(start).to(ctx.device).train()
        optimizer = HandAdamW(model.adapter_parameters(), recipe.lr, recipe.weight_decay)
        return lambda: per_video_train_step(model, optimizer, feats, lengths, multi_hot, names, recipe.contrast_weight)

    steps = {"ours fp32": ours("fp32"), "ours bf16 autocast": ours("bf16"), "per-video baseline fp32": baseline()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    peaks: dict[str, float | None] = {name: None for name in steps}
    if ctx.device.type == "cuda":                                   # warm-up: kernels, allocator, cuBLAS
        for step in steps.values():
            step()
    for repeat in range(ctx.sizes.repeats):                         # alternating; at least one pair
        if repeat and ctx.left() < 0:
            break
        for name, step in steps.items():
            ctx.reset_peak()
            times[name].append(ctx.timed(step))
            peak = ctx.peak_mib()
            peaks[name] = peak if peaks[name] is None else max(peaks[name], peak)
    base = statistics.median(times["per-video baseline fp32"])
    for name in steps:
        t = statistics.median(times[name])
        note = f"batch {ctx.sizes.train_batch}x{T}x512, median of {len(times[name])}"
        if not name.startswith("per-video"):
            note += f"; {base / t:.2f}x the per-video baseline"
        ctx.row("train", name, t, "s/step", peaks[name], note)


SECTION_FUNCTIONS = {"encode": section_encode, "compile": section_compile, "decode": section_decode,
                     "pipeline": section_pipeline, "train": section_train}


# ---------------------------------------------------------------------------------------------
# driver


def write_video(path: Path, sizes: Sizes) -> Path:
    from bench_pipeline import write_synthetic_video

    width, height, fps, seconds = sizes.video
    return write_synthetic_video(path, seconds, width=width, height=height, fps=fps)


def run_section(name: str, device: str, sizes: Sizes, tiny: bool, video: Path) -> dict:
    """One section in this process; its rows, extra numbers, error (or None) and seconds."""
    ctx = Context(device, sizes, tiny, video, sizes.boxes[name])
    started = time.perf_counter()
    error = None
    try:
        SECTION_FUNCTIONS[name](ctx)
    except Exception:
        error = traceback.format_exc(limit=6)
        print(f"[{name}] failed:\n{error}", file=sys.stderr, flush=True)
    finally:
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return {"rows": [asdict(r) for r in ctx.rows], "extra": ctx.extra, "error": error,
            "seconds": time.perf_counter() - started}


def run_isolated(name: str, args: argparse.Namespace, sizes: Sizes, video: Path, work: Path) -> dict:
    """One section in a child process, killed after its time box plus 60 s (start-up, last step)."""
    part = work / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sections", name, "--device", args.device,
           "--part", str(part), "--budget", str(sizes.boxes[name] + 10)]
    cmd += (["--video", str(video)] if video is not None else []) + (["--tiny"] if args.tiny else [])
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, timeout=sizes.boxes[name] + 60)
        if part.is_file():
            return json.loads(part.read_text())
        error = f"the section's process exited with {done.returncode} and wrote no result"
    except subprocess.TimeoutExpired:
        error = f"killed after {sizes.boxes[name] + 60} s (time box {sizes.boxes[name]} s + 60 s)"
    print(f"[{name}] failed: {error}", file=sys.stderr, flush=True)
    return {"rows": [], "extra": {}, "error": error, "seconds": time.perf_counter() - started}


def environment(device: str) -> dict:
    env = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "python": platform.python_version(),
           "torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    for module in ("open_clip", "av", "decord", "PyNvVideoCodec"):
        try:
            env[module] = getattr(__import__(module), "__version__", "?")
        except Exception:
            env[module] = None
    return env


def format_table(results: dict[str, dict]) -> str:
    lines = [f"{'section':<9} {'case':<52} {'value':>10} {'unit':<12} {'peak GPU':>9}  note"]
    for name, result in results.items():
        for r in result["rows"]:
            value = "-" if r["value"] is None else (f"{r['value']:.3f}" if r["value"] < 10 else f"{r['value']:.1f}")
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} MiB"
            lines.append(f"{name:<9} {r['case']:<52} {value:>10} {r['unit']:<12} {peak:>9}  {r['note']}")
        if result["error"]:
            last = result["error"].strip().splitlines()[-1]
            lines.append(f"{name:<9} {'FAILED':<52} {'-':>10} {'':<12} {'-':>9}  {last[:150]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="folder for gpu_bench.json and gpu_bench.txt")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (CI)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one, cpu with --tiny)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {','.join(SECTIONS)}")
    ap.add_argument("--isolate", action="store_true", help="each section in its own process with a hard time limit")
    ap.add_argument("--video", type=Path, help="use this clip instead of synthesising one")
    ap.add_argument("--budget", type=float, help="seconds for the whole run: later sections get shorter boxes or are skipped")
    ap.add_argument("--part", type=Path, help=argparse.SUPPRESS)               # a child's result file
    ap.add_argument("--compile-probe", type=int, help=argparse.SUPPRESS)       # batch size
    ap.add_argument("--compile-backend", default="inductor", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.compile_probe:
        compile_probe(args.compile_probe, args.device, args.compile_backend, args.tiny)
        return {}
    sizes = TINY if args.tiny else FULL
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    started_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        work = Path(tmp)
        video = args.video
        if video is None and ({"decode", "pipeline"} & set(names)):
            started = time.perf_counter()
            video = write_video(work / "clip.mp4", sizes)
            print(f"synthesised {video.name}: {sizes.video[0]}x{sizes.video[1]} {sizes.video[2]} fps, "
                  f"{sizes.video[3]:g} s, H.264, in {time.perf_counter() - started:.1f} s", flush=True)
        report = {"environment": environment(args.device), "tiny": args.tiny, "sections": {}}
        for name in names:
            box = sizes.boxes[name]
            if args.budget is not None:       # the whole run's limit: shrink the box, or skip
                left = args.budget - (time.monotonic() - started_all) - (60 if args.isolate else 10)
                if left < 15:
                    report["sections"][name] = {"rows": [], "extra": {}, "seconds": 0.0,
                                                "error": f"skipped: {args.budget:g} s budget spent"}
                    continue
                box = min(box, left)
            if args.part is None:
                print(f"[{name}] running (time box {box:.0f} s)", flush=True)
            section_sizes = replace(sizes, boxes={**sizes.boxes, name: box})
            if args.isolate:
                result = run_isolated(name, args, section_sizes, video, work)
            else:
                result = run_section(name, args.device, section_sizes, args.tiny, video)
            report["sections"][name] = result
            if args.part is not None:
                args.part.write_text(json.dumps(result))
            elif args.out is not None:                      # after each section: a killed run keeps them
                write_report(args.out, report)
    if args.part is None:
        print("\n" + "\n".join(f"{k}: {v}" for k, v in report["environment"].items()))
        print(format_table(report["sections"]), flush=True)
    return report


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_bench.txt").write_text("\n".join(f"{k}: {v}" for k, v in report["environment"].items())
                                       + "\n" + format_table(report["sections"]) + "\n")


if __name__ == "__main__":
    main()
