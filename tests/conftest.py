"""Shared fixtures: where ../shared is, and the official fixture checkpoint loaded once."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from shared_paths import OFFICIAL, SHARED  # noqa: E402  (benchmarks/ is on pytest's pythonpath)


def require_official() -> Path:
    if not (OFFICIAL / "official_xd.pth").is_file():
        pytest.skip(f"official parity fixtures not found at {OFFICIAL} (../shared is absent)")
    return OFFICIAL


def synth(preset: str, out: Path, n_train: int = 4, n_test: int = 24, seed: int = 0) -> Path:
    """A small synthetic benchmark from ../shared/tools/synth_vad.py in `out` (skip without it)."""
    import subprocess
    import sys

    tool = SHARED / "tools" / "synth_vad.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not found (../shared is absent)")
    subprocess.run([sys.executable, str(tool), "--preset", preset, "--out", str(out), "--seed", str(seed),
                    "--n-train", str(n_train), "--n-test", str(n_test)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return require_official()


@pytest.fixture(scope="session")
def official_model(official_dir):
    """The fixture checkpoint through the public loader (eval mode, CPU). Do not mutate."""
    import vadclip

    return vadclip.load_official_checkpoint(official_dir / "official_xd.pth", preset="xd")


@pytest.fixture(scope="session")
def parity(official_dir):
    import numpy as np

    return dict(np.load(official_dir / "parity_xd.npz"))
