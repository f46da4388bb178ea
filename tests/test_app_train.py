"""The Train tab's handlers for AnomalyCLIP (start, progress, finish, the run in the model choice),
seeds and the features root, through `app.handlers` (no browser)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app import handlers as h
from app.config import AppConfig
from app.state import Session
from vadclip.errors import UserError

from shared_paths import SHARED

SYNTH = SHARED / "tools" / "synth_vad.py"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, official_dir):
    if not SYNTH.is_file():
        pytest.skip(f"{SYNTH} not found (../shared is absent)")
    root = tmp_path_factory.mktemp("app_train")
    (root / "models").mkdir()
    shutil.copy(official_dir / "official_xd.pth", root / "models" / "official_xd.pth")
    subprocess.run([sys.executable, str(SYNTH), "--layout", "anomalyclip", "--preset", "xd", "--seed", "0",
                    "--out", str(root / "training" / "ac"), "--n-train", "8", "--n-test", "6"],
                   check=True, capture_output=True)
    config = AppConfig(models_dir=root / "models", data_dir=root / "data", data_root=root / "training",
                       clip=str(root / "models" / "official_xd.pth"), device="cpu", max_video_s=30)
    context = h.AppContext.create(config)
    yield context
    context.close()


def test_anomalyclip_defaults_and_files(ctx):
    recipe = h.anomalyclip_recipe("sht")
    assert (recipe.epochs, recipe.lr, recipe.warmup_epochs, recipe.batch_size) == (100, 5e-4, 10, 64)
    assert h.anomalyclip_presets() == ["xd", "ucf", "sht"]
    files = h.anomalyclip_file_choices(ctx)
    assert (files.normal, files.abnormal, files.test, files.annotation, files.features_root) == (
        "ac/Anomaly_Train_Normal.txt", "ac/Anomaly_Train_Abnormal.txt", "ac/Anomaly_Test.txt",
        "ac/Temporal_Anomaly_Annotation_for_Testing_Videos.txt", "ac/features")
    assert "." in files.folders and "ac/features/train" in files.folders


def _start(ctx, **overrides):
    files = h.anomalyclip_file_choices(ctx)
    args = dict(train_normal=files.normal, train_abnormal=files.abnormal, test_list=files.test,
                annotations=files.annotation, features_root=files.features_root, preset="xd", epochs=2, lr=1e-3,
                batch_size=4, warmup_epochs=1)
    return h.start_anomalyclip_training(ctx, **{**args, **overrides})


def test_anomalyclip_training_runs_and_becomes_a_model(ctx):
    job = _start(ctx)
    with pytest.raises(UserError, match="already running"):
        _start(ctx)
    ctx.trainer.wait(300)
    snap = ctx.trainer.snapshot()
    assert snap.state == "finished", snap.log
    steps = [e for e in snap.events if e["kind"] == "step"]
    evals = [e for e in snap.events if e["kind"] == "eval"]
    assert len(steps) == 4 and steps[-1]["total_steps"] == 4
    assert [e["epoch"] for e in evals] == [1, 2] and "auc_pr" in evals[-1]["metrics"]
    assert "eval at step 2" in snap.log and "epoch 2/2 done" in snap.log
    view = h.training_view(ctx)
    assert view.status.startswith("**finished**") and view.checkpoint == str(snap.checkpoint)
    assert snap.out_dir.parent == ctx.config.models_dir and snap.out_dir.name.startswith("run-anomalyclip-xd-")
    run = [c for c in h.model_choices(ctx, Session()) if c.key == str(snap.out_dir.resolve())]
    assert run and run[0].kind == "anomalyclip"
    loaded = ctx.registry.get(run[0].key, "auto", "cpu")
    assert loaded.kind == "anomalyclip"
    assert job.result.steps == 4 and not job.result.cancelled


def test_anomalyclip_cancel(ctx):
    _start(ctx, epochs=50, warmup_epochs=5)
    assert h.cancel_training(ctx).startswith("Stopping")
    ctx.trainer.wait(300)
    assert ctx.trainer.snapshot().state == "cancelled"


def test_anomalyclip_seeds_box(ctx):
    job = _start(ctx, epochs=1, warmup_epochs=0, seeds="5,6")
    ctx.trainer.wait(300)
    snap = ctx.trainer.snapshot()
    assert snap.state == "finished", snap.log
    summary = json.loads((Path(job.config.out_dir) / "seeds_summary.json").read_text())
    assert summary["seeds"] == [5, 6] and summary["n_runs"] == 2
    assert "2 run(s)" in snap.log and "seed 5" in snap.log
    assert snap.checkpoint == Path(job.config.out_dir) / "seed_6" / "best.safetensors"
    keys = {c.key for c in h.model_choices(ctx, Session())}
    assert {str((Path(job.config.out_dir) / f"seed_{s}").resolve()) for s in (5, 6)} <= keys


@pytest.mark.parametrize("overrides, message", [
    (dict(train_normal=None), "choose a normal training list"),
    (dict(features_root=None), "choose a features root"),
    (dict(features_root="../.."), "outside the allowed folder"),
    (dict(features_root="ac/Anomaly_Test.txt"), "not a folder"),
    (dict(batch_size=3), "even"),
    (dict(warmup_epochs=2), "warm-up epochs"),
    (dict(seeds="2-1"), "seeds: seed range"),
    (dict(preset="kinetics"), "unknown AnomalyCLIP preset"),
])
def test_anomalyclip_bad_choices(ctx, overrides, message):
    with pytest.raises(UserError, match=message):
        _start(ctx, **overrides)


def test_anomalyclip_bad_data_is_a_message(ctx, tmp_path):
    root = ctx.config.training_root
    (root / "bad").mkdir(exist_ok=True)
    (root / "bad" / "normal.txt").write_text("train/nothing_here 0 99 4\n")
    _start(ctx, train_normal="bad/normal.txt")
    ctx.trainer.wait(120)
    snap = ctx.trainer.snapshot()
    assert snap.state == "failed" and "nothing_here" in snap.log and "likely fix" in snap.log


def test_vadclip_list_of_another_machine_with_a_features_root(ctx):
    """An official-style CSV (the authors' absolute paths) under the data root: refused with the
    summary and its likely fix, then found by name under the chosen features root."""
    root = ctx.config.training_root
    subprocess.run([sys.executable, str(SYNTH), "--preset", "xd", "--seed", "0", "--out", str(root / "vx"),
                    "--n-train", "12", "--n-test", "4"], check=True, capture_output=True)
    rows = (root / "vx" / "xd_train.csv").read_text().splitlines()
    foreign = [f"/home/xbgydx/Desktop/XDTrainClipFeatures/{Path(r.split(',')[0]).name},{r.split(',', 1)[1]}"
               for r in rows[1:]]
    (root / "vx" / "official_train.csv").write_text("\n".join([rows[0], *foreign]) + "\n")
    init = str((ctx.config.models_dir / "official_xd.pth").resolve())
    h.start_training(ctx, "vx/official_train.csv", None, None, "xd", init, 1, 1e-4, 4, max_steps=1)
    ctx.trainer.wait(120)
    snap = ctx.trainer.snapshot()
    assert snap.state == "failed" and "another machine's paths" in snap.log and "choose a features root" in snap.log
    assert snap.log.count("absolute paths are refused") == 10 and "... and 2 more" in snap.log
    h.start_training(ctx, "vx/official_train.csv", None, None, "xd", init, 1, 1e-4, 4, max_steps=1,
                     features_root="vx/features")
    ctx.trainer.wait(300)
    snap = ctx.trainer.snapshot()
    assert snap.state == "finished", snap.log
    with pytest.raises(UserError, match="outside the allowed folder"):
        h.start_training(ctx, "vx/official_train.csv", None, None, "xd", init, 1, 1e-4, 4, features_root="/")
