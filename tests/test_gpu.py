"""CUDA outputs against CPU float32, within stated tolerances per precision (benchmarks/gpu_compare.py).

The `gpu`-marked cases run with `pytest -m gpu` on a CUDA machine (benchmarks/gpu_check.sh) and
skip without one. The same comparison functions also run here on the CPU, autocast bf16 / fp16
against float32 with small models, so that they keep working between GPU runs.

Models: "tiny" (a random one-layer CLIP under the xd adapter, always), "official" (the parity
fixture checkpoint, skipped when ../shared is absent), "vit-b-16" (a random-weight ViT-B/16
VadCLIP, the real sizes; CUDA cases only).
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import gpu_compare as gc                               # benchmarks/ (pytest pythonpath)
import vadclip
from conftest import SHARED, require_official
from vadclip.clip_backbone import describe_clip, load_clip

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = ("no CUDA device (torch.cuda.is_available() is False): the GPU checks run with "
           "`pytest -m gpu` on a GPU machine, see benchmarks/GPU.md")
VIDEO = Path(__file__).resolve().parents[1] / "assets" / "calm_street.mp4"   # 320x240, 200 frames
ANOMALYCLIP = SHARED / "fixtures" / "anomalyclip"
if HAS_CUDA:   # the GPU cases' CPU float32 references get the machine's cores (conftest keeps CI at 2)
    torch.set_num_threads(os.cpu_count() or 1)


def cases(cuda: tuple[str, ...], cpu: dict[str, tuple[str, ...]]) -> list:
    """(model, device, precision) parameters: every precision on CUDA for the `cuda` models
    (gpu-marked, skipped without CUDA), and the given precisions on the CPU for the `cpu` ones."""
    params = [pytest.param(name, "cuda", precision, id=f"{name}-cuda-{precision}",
                           marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)])
              for name in cuda for precision in gc.PRECISIONS]
    return params + [pytest.param(name, "cpu", p, id=f"{name}-cpu-{p}") for name, ps in cpu.items() for p in ps]


def assert_within_tolerance(comparisons: list[gc.Comparison]) -> None:
    print(gc.report(comparisons))               # the measured errors, shown with -rP
    failed = [c for c in comparisons if not c.ok]
    assert not failed, "outside tolerance:\n" + gc.report(failed)


@functools.cache
def model(name: str) -> vadclip.VadCLIP:
    """The named model, built once, on the CPU (each run copies it to its device)."""
    if name == "tiny":
        return gc.tiny_vadclip()
    if name == "official":
        return vadclip.load_official_checkpoint(require_official() / "official_xd.pth", preset="xd")
    torch.manual_seed(0)
    return vadclip.build_model("xd", clip="random").eval()


@functools.cache
def reference(check: str, name: str) -> tuple[gc.Batch, dict[str, torch.Tensor]]:
    """A batch for the named model and the CPU float32 outputs of `check` on it."""
    run = {"forward": gc.run_forward, "train_step": gc.run_train_step}[check]
    batch = gc.make_batch(model(name), batch=4)
    return batch, run(model(name), batch, "cpu", "fp32")


@pytest.mark.parametrize("name, device, precision", 
                         cases(("tiny", "official", "vit-b-16"), {"tiny": ("bf16", "fp16"), "official": ("bf16", "fp16")}))
def test_forward_matches_cpu_float32(name, device, precision):
    batch, ref = reference("forward", name)
    out = gc.run_forward(model(name), batch, device, precision)
    assert_within_tolerance(gc.compare("forward", out, ref, device, precision))


@pytest.mark.parametrize("name, device, precision",
                         cases(("tiny", "official", "vit-b-16"), {"tiny": ("bf16",)}))
def test_train_step_matches_cpu_float32(name, device, precision):
    batch, ref = reference("train_step", name)
    out = gc.run_train_step(model(name), batch, device, precision)
    assert_within_tolerance(gc.compare("train_step", out, ref, device, precision))


def noise_frames(sizes: list[tuple[int, int]], seed: int = 0) -> list[torch.Tensor]:
    """uint8 noise frames (the hardest case for a resize), two of each (height, width)."""
    rng = np.random.default_rng(seed)
    return [torch.from_numpy((rng.random((2, h, w, 3)) * 255).astype(np.uint8)) for h, w in sizes]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("ten_crop", [False, True], ids=["centre", "ten-crop"])
def test_preprocess_on_cuda_matches_cpu(ten_crop):
    """The CUDA float resize against the same on the CPU (1 grey level) and against the CPU's
    default uint8 resize (2 levels), at 1080p, 720p portrait and 480p."""
    comparisons = []
    for frames in noise_frames([(1080, 1920), (1280, 720), (480, 640)]):
        cpu_float = gc.run_preprocess(frames, 224, "cpu", "float", ten_crop)
        cpu_auto = gc.run_preprocess(frames, 224, "cpu", "auto", ten_crop)
        cuda_auto = gc.run_preprocess(frames, 224, "cuda", "auto", ten_crop)
        comparisons += gc.compare("preprocess", cuda_auto, cpu_float, "cuda", "fp32")
        comparisons += gc.compare("preprocess_vs_uint8", cuda_auto, cpu_auto, "cuda", "fp32")
    assert_within_tolerance(comparisons)


@pytest.mark.parametrize("ten_crop", [False, True], ids=["centre", "ten-crop"])
def test_preprocess_float_resize_matches_uint8_on_cpu(ten_crop):
    """The resize that CUDA uses ("float"), run on the CPU, against the CPU's uint8 resize."""
    comparisons = []
    for frames in noise_frames([(360, 640), (101, 37)]):
        out = gc.run_preprocess(frames, 224, "cpu", "float", ten_crop)
        ref = gc.run_preprocess(frames, 224, "cpu", "uint8", ten_crop)
        comparisons += gc.compare("preprocess_vs_uint8", out, ref, "cpu", "fp32")
    assert_within_tolerance(comparisons)


@functools.cache
def clip_model(name: str):
    if name == "tiny":
        clip = gc.tiny_clip(image_size=224)
        return clip, describe_clip(clip, "tiny random CLIP", random_weights=True)
    torch.manual_seed(0)
    return load_clip("random")


@functools.cache
def extract_reference(name: str) -> dict[str, torch.Tensor]:
    return gc.run_extract(*clip_model(name), VIDEO, "cpu", "fp32")


@pytest.mark.parametrize("name, device, precision", cases(("tiny", "vit-b-16"), {"tiny": ("bf16",)}))
def test_video_features_match_cpu_float32(name, device, precision):
    """Decode, preprocess and encode a video (`extract_video_features`) on the device."""
    out = gc.run_extract(*clip_model(name), VIDEO, device, precision)
    assert_within_tolerance(gc.compare("extract", out, extract_reference(name), device, precision))


@functools.cache
def anomalyclip_inputs() -> tuple[Path, np.ndarray, np.ndarray]:
    """(checkpoint, normal centroid, [N, D] features): the fixture's test video and centroid when
    its parity file is there, else random features on the fixture's 1/64 grid."""
    pytest.importorskip("vadclip.anomalyclip", reason="vadclip.anomalyclip is not in this tree yet")
    checkpoint = ANOMALYCLIP / "official_xd.ckpt"
    if not checkpoint.is_file():
        pytest.skip(f"AnomalyCLIP fixture not found at {checkpoint} (../shared is absent)")
    parity = ANOMALYCLIP / "parity_xd.npz"
    if parity.is_file():
        with np.load(parity) as p:
            return checkpoint, p["ncentroid"].astype(np.float32), p["v0_features"].astype(np.float32)
    rng = np.random.default_rng(0)
    normal, features = (np.round(rng.normal(0.0, 0.5, (n, 512)) * 64) / 64 for n in (680, 1100))
    return checkpoint, normal.mean(0).astype(np.float32), features.astype(np.float32)


@functools.cache
def anomalyclip_reference() -> dict[str, torch.Tensor]:
    return gc.run_anomalyclip(*anomalyclip_inputs(), "cpu", "fp32")


@pytest.mark.parametrize("name, device, precision", cases(("official",), {"official": ("bf16",)}))
def test_anomalyclip_scores_match_cpu_float32(name, device, precision):
    out = gc.run_anomalyclip(*anomalyclip_inputs(), device, precision)
    assert_within_tolerance(gc.compare("anomalyclip", out, anomalyclip_reference(), device, precision))


# --------------------------------------------------------------------------- the benchmark script

def check_bench_report(report: dict, sections: tuple[str, ...]) -> None:
    assert tuple(report["sections"]) == sections
    for name, result in report["sections"].items():
        assert result["error"] is None, f"section {name} failed:\n{result['error']}"
        measured = [r for r in result["rows"] if r["value"] is not None]
        assert measured, f"section {name} measured nothing: {result['rows']}"
        assert all(np.isfinite(r["value"]) and r["value"] > 0 for r in measured), result["rows"]


def test_gpu_bench_tiny_runs_every_section(tmp_path):
    """benchmarks/gpu_bench.py --tiny: every section at tiny sizes on the CPU, as on the GPU."""
    import gpu_bench

    report = gpu_bench.main(["--tiny", "--out", str(tmp_path)])
    check_bench_report(report, gpu_bench.SECTIONS)
    saved = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert saved["sections"].keys() == report["sections"].keys() and saved["tiny"] is True
    table = (tmp_path / "gpu_bench.txt").read_text()
    assert all(f"\n{name} " in table for name in gpu_bench.SECTIONS)
    rows = {r["case"]: r for r in report["sections"]["train"]["rows"]}
    assert "x the per-video baseline" in rows["ours fp32"]["note"]
    assert any(r["note"].split("-bound")[0] in ("decode", "encode") for r in report["sections"]["pipeline"]["rows"])


def test_gpu_bench_isolated_section_runs_in_its_own_process(tmp_path):
    import gpu_bench

    report = gpu_bench.main(["--tiny", "--isolate", "--sections", "decode", "--out", str(tmp_path)])
    check_bench_report(report, ("decode",))


@pytest.mark.slow
def test_gpu_check_script_tiny(tmp_path):
    """benchmarks/gpu_check.sh --tiny: the device script's steps on the CPU (the gpu tests skip)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh"), "--tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failed sections 0" in done.stdout
    for name in ("pytest_gpu.log", "gpu_bench.log", "gpu_bench.json", "gpu_bench.txt"):
        assert (tmp_path / name).is_file(), name
    check_bench_report(json.loads((tmp_path / "gpu_bench.json").read_text()), __import__("gpu_bench").SECTIONS)
