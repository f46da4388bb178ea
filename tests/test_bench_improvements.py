"""benchmarks/bench_improvements.py (issue 16's measurement): the paired differences and the table
by hand, and a tiny end-to-end run (both trained arms, the test-time arms, the seeds' ensemble,
the JSON written after each training seed and its --table reading)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import bench_improvements as bench                  # benchmarks/ (pytest pythonpath)

from shared_paths import OFFICIAL


def _run(seed: str, **metrics) -> dict:
    return {"seed": seed, "metrics": metrics}


def test_paired_delta_by_hand():
    official = [_run("0/0", ap_a=30.0), _run("0/1", ap_a=34.0), _run("1/0", ap_a=20.0)]
    arm = [_run("0/0", ap_a=31.0), _run("0/1", ap_a=37.0), _run("1/0", ap_a=20.5)]
    mean, std, n = bench.paired_delta(arm, official, "ap_a")
    assert n == 3 and mean == pytest.approx(np.mean([1.0, 3.0, 0.5]))
    assert std == pytest.approx(np.std([1.0, 3.0, 0.5], ddof=1))
    # an ensemble is compared with the mean of its members' official runs (all of the data seed's for "all")
    mean, std, n = bench.paired_delta([_run("0/all", ap_a=40.0)], official, "ap_a")
    assert (mean, std, n) == (pytest.approx(40.0 - 32.0), None, 1)
    mean, std, n = bench.paired_delta([_run("0/0+1", ap_a=35.0), _run("1/0+1", ap_a=30.0)], official, "ap_a")
    assert (mean, n) == (pytest.approx(3.0), 1)          # 1/0+1 lacks the official run 1/1
    assert bench.paired_delta([_run("2/0", ap_a=1.0)], official, "ap_a") == (None, None, 0)


def test_table_lists_every_arm_with_its_delta():
    runs = {bench.OFFICIAL: [_run("0/0", ap_a=30.0, auc_c=70.0), _run("0/1", ap_a=34.0, auc_c=72.0)],
            bench.PADDING: [_run("0/0", ap_a=33.0, auc_c=71.0), _run("0/1", ap_a=35.0, auc_c=70.0)]}
    table = bench.format_table("xd", runs)
    lines = table.splitlines()
    assert "ap_a*" in lines[0] and lines[2].startswith(bench.OFFICIAL)
    assert "2.00 ± 1.41" in lines[3]                        # Δ ap_a: (3 + 1) / 2, std of (3, 1)
    assert "32.00 ± 2.83" in lines[2] and "n/a" in lines[2]   # metrics absent from the runs: n/a


@pytest.mark.slow
def test_tiny_end_to_end_run(tmp_path, monkeypatch, capsys):
    if not OFFICIAL.is_dir():
        pytest.skip(f"{OFFICIAL} not found (../shared is absent)")
    out = tmp_path / "xd.json"
    args = ["bench_improvements.py", "--presets", "xd", "--data-seeds", "0", "--train-seeds", "0,1",
            "--epochs", "1", "--max-videos", "16", "--batch-size", "8", "--threads", "2"]
    monkeypatch.setattr(sys, "argv", [*args, "--json", str(out), "--keep-models", str(tmp_path / "models")])
    bench.main()
    printed = capsys.readouterr().out
    assert "WARNING" not in printed                        # re-scoring the best model gives training's number
    runs = json.loads(out.read_text())["runs"]["xd"]
    assert [r["seed"] for r in runs[bench.OFFICIAL]] == ["0/0", "0/1"]
    assert len(runs[bench.PADDING]) == 2
    ensembles = [arm for arm in runs if arm.startswith("ensemble of 2")]
    assert len(ensembles) == 4 and all([r["seed"] for r in runs[arm]] == ["0/all"] for arm in ensembles)
    assert all(0.0 <= v <= 100.0 for arm in runs.values() for r in arm for v in r["metrics"].values()
               if v is not None)
    # the kept checkpoints, re-scored without training, give every variant's numbers again
    monkeypatch.setattr(sys, "argv", [*args, "--json", str(tmp_path / "again.json"),
                                      "--from-models", str(tmp_path / "models")])
    bench.main()
    assert json.loads((tmp_path / "again.json").read_text())["runs"]["xd"] == runs
    monkeypatch.setattr(sys, "argv", ["bench_improvements.py", "--table", str(out)])
    bench.main()
    assert "selection metric ap_a" in capsys.readouterr().out
