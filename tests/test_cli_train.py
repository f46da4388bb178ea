"""`vadclip train` end to end: --method anomalyclip on tiny synthetic data (progress, resume, bad
input, seeds), --features-root remapping through the CLI (found / ambiguous / missing / summary),
and `vadclip.train` dispatching on the config type."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vadclip
from vadclip import anomalyclip
from vadclip.cli import main as cli_main
from vadclip.cli.main import build_parser
from vadclip.cli.train import anomalyclip_config
from vadclip.safe_load import load_state_dict_file
from vadclip.seeds import summarise_runs

from shared_paths import OFFICIAL, SHARED

SYNTH = SHARED / "tools" / "synth_vad.py"
CLIP = OFFICIAL / "official_xd.pth"        # a small random CLIP inside the VadCLIP fixture checkpoint


def _require_shared() -> None:
    if not SYNTH.is_file() or not CLIP.is_file():
        pytest.skip(f"{SYNTH} or {CLIP} not found (../shared is absent)")


def _synth_ac(out: Path, n_train: int = 8, n_test: int = 6, seed: int = 0) -> Path:
    _require_shared()
    subprocess.run([sys.executable, str(SYNTH), "--layout", "anomalyclip", "--preset", "xd", "--seed", str(seed),
                    "--out", str(out), "--n-train", str(n_train), "--n-test", str(n_test)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def ac_data(tmp_path_factory) -> Path:
    return _synth_ac(tmp_path_factory.mktemp("synth_ac"))


def ac_args(data: Path, out: Path, *extra: str, features_root: Path | None = None) -> list[str]:
    """The issue's command with a tiny schedule (2 epochs of 2 steps, 4 clips per step)."""
    return ["train", "--method", "anomalyclip", "--preset", "xd",
            "--train-normal", str(data / "Anomaly_Train_Normal.txt"),
            "--train-abnormal", str(data / "Anomaly_Train_Abnormal.txt"),
            "--test-list", str(data / "Anomaly_Test.txt"),
            "--annotations", str(data / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"),
            "--features-root", str(features_root or data / "features"), "--clip", str(CLIP),
            "--epochs", "2", "--warmup-epochs", "1", "--lr", "1e-3", "--batch-size", "4", "--seed", "1024",
            "--device", "cpu", "--out", str(out), *extra]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("clipmodel.")}


# --------------------------------------------------------------------------- --method anomalyclip

def test_anomalyclip_train_end_to_end(ac_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(ac_args(ac_data, out)) == 0
    printed = capsys.readouterr()
    assert "training: 4 abnormal + 4 normal videos, 2 steps/epoch, 2 epochs" in printed.out + printed.err
    assert "eval after epoch 1" in printed.out + printed.err
    assert "done: 4 steps, 2 epochs, best auc_pr" in printed.out
    for name in ("best.safetensors", "last.safetensors", "train_state.pt", "run.json", "metrics.jsonl", "report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "anomalyclip" and report["epochs_done"] == 2 and report["steps"] == 4
    assert set(report["last_metrics"]) >= {"auc_roc", "auc_pr", "mean_mc_auroc", "mean_mc_aupr"}
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2]
    model = anomalyclip.load_checkpoint(out)              # the run folder loads as a model
    assert model.config.preset == "xd"
    # the finished run is refused as an output folder without --resume
    assert cli_main(ac_args(ac_data, out)) == 2
    assert "--resume" in capsys.readouterr().err


def test_issue_command_runs_as_written(ac_data, tmp_path):
    """The issue's exact flags (other data, one epoch) through a fresh `python -m vadclip` process."""
    work = tmp_path / "w"
    (work / "synth_ac").mkdir(parents=True)
    for item in ac_data.iterdir():
        (work / "synth_ac" / item.name).symlink_to(item)
    cmd = [sys.executable, "-m", "vadclip", "train", "--method", "anomalyclip", "--preset", "xd",
           "--train-normal", "synth_ac/Anomaly_Train_Normal.txt", "--train-abnormal", "synth_ac/Anomaly_Train_Abnormal.txt",
           "--test-list", "synth_ac/Anomaly_Test.txt",
           "--annotations", "synth_ac/Temporal_Anomaly_Annotation_for_Testing_Videos.txt",
           "--features-root", "synth_ac/features", "--clip", str(CLIP),
           "--epochs", "2", "--warmup-epochs", "1", "--lr", "1e-3", "--batch-size", "8", "--seed", "1024",
           "--out", "runs/ac_synth"]
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert (work / "runs" / "ac_synth" / "last.safetensors").is_file()


def test_anomalyclip_resume_ends_with_the_uninterrupted_weights(ac_data, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli_main(ac_args(ac_data, whole)) == 0
    # the same command, stopped after 3 of its 4 steps (as Ctrl-C would), then `--resume`d
    config = anomalyclip_config(build_parser().parse_args(ac_args(ac_data, parts)))
    steps = []
    result = vadclip.train(config, on_progress=lambda e: steps.append(e) if e["kind"] == "step" else None,
                           should_stop=lambda: len(steps) >= 3)
    assert result.cancelled and result.steps == 3
    assert cli_main(ac_args(ac_data, parts, "--resume")) == 0
    a, b = _weights(whole / "last.safetensors"), _weights(parts / "last.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    report = json.loads((parts / "report.json").read_text())
    assert report["steps"] == 4 and not report["cancelled"]


def test_anomalyclip_bad_input_lists_every_problem(ac_data, tmp_path, capsys):
    data = tmp_path / "bad"
    shutil.copytree(ac_data, data)
    normal = (data / "Anomaly_Train_Normal.txt").read_text().splitlines()
    abnormal = (data / "Anomaly_Train_Abnormal.txt").read_text().splitlines()
    first_abnormal = abnormal[0].split()
    (data / "Anomaly_Train_Normal.txt").write_text("\n".join(normal + [" ".join(first_abnormal)]) + "\n")
    gone = abnormal[1].split()[0]
    (data / "features" / f"{gone}.npy").unlink()
    test = (data / "Anomaly_Test.txt").read_text().splitlines()
    abnormal_test = next(line for line in test if not line.split()[3] == "4").split()[0]
    ann = data / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    ann.write_text("".join(line + "\n" for line in ann.read_text().splitlines()
                           if not line.startswith(Path(abnormal_test).name + ".")))
    out = tmp_path / "run"
    assert cli_main(ac_args(data, out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "label 6 in the normal list" in err or f"({first_abnormal[0]}): label" in err
    assert Path(gone).name in err and "missing file" in err
    assert abnormal_test in err and "no line in the temporal annotation" in err
    assert not (out / "last.safetensors").exists()          # nothing started


def test_options_of_the_other_method_are_refused(ac_data, tmp_path, capsys):
    assert cli_main(ac_args(ac_data, tmp_path / "r", "--milestones", "4,8", "--train-list", "x.csv")) == 2
    err = capsys.readouterr().err
    assert "--train-list, --milestones: not an option of --method anomalyclip" in err
    assert cli_main(["train", "--train-list", "x.csv", "--train-normal", "n.txt", "--out", str(tmp_path / "v")]) == 2
    assert "--train-normal: not an option of --method vadclip" in capsys.readouterr().err
    assert cli_main(["train", "--method", "anomalyclip", "--out", str(tmp_path / "a")]) == 2
    assert "--train-normal, --train-abnormal, --features-root required" in capsys.readouterr().err


def test_anomalyclip_seeds_summary(ac_data, tmp_path, capsys):
    out = tmp_path / "seeds"
    args = ac_args(ac_data, out, "--seeds", "3,4")
    args[args.index("--seed"):args.index("--seed") + 2] = []
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "done: 2 of 2 seed run(s)" in printed and "seed 3" in printed and "seed 4" in printed
    summary = json.loads((out / "seeds_summary.json").read_text())
    assert summary["seeds"] == [3, 4] and summary["n_runs"] == 2
    reports = [json.loads((out / f"seed_{s}" / "report.json").read_text()) for s in (3, 4)]
    values = [r["last_metrics"]["auc_pr"] for r in reports]     # AnomalyCLIP: the last epoch, as official
    assert summary["metrics"]["auc_pr"]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
    assert summary["metrics"]["auc_pr"]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    recomputed = summarise_runs([{"seed": s, "metrics": r["last_metrics"]} for s, r in zip((3, 4), reports)])
    assert recomputed["metrics"]["auc_roc"] == pytest.approx(summary["metrics"]["auc_roc"])
    run_json = [json.loads((out / f"seed_{s}" / "run.json").read_text()) for s in (3, 4)]
    assert [r["recipe"]["seed"] for r in run_json] == [3, 4]
    assert cli_main(args + ["--seed", "1"]) == 2
    assert "give --seed or --seeds, not both" in capsys.readouterr().err


# --------------------------------------------------------------------------- --features-root

def _flatten_features(data: Path, into: Path) -> Path:
    """The features as a download might hold them: every file in one nested folder, no list folders."""
    flat = into / "download" / "AnomalyCLIP_features"
    flat.mkdir(parents=True)
    for f in (data / "features").rglob("*.npy"):
        shutil.copy(f, flat / f.name)
    return into / "download"


def test_features_root_finds_listed_files_by_name(ac_data, tmp_path, capsys):
    root = _flatten_features(ac_data, tmp_path)
    assert not (root / "train").exists()                   # no listed PATH exists as listed
    args = ac_args(ac_data, tmp_path / "run", features_root=root)
    args[args.index("--epochs") + 1] = "1"
    args[args.index("--warmup-epochs") + 1] = "0"
    assert cli_main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "report.json").read_text())["steps"] == 2


def test_features_root_reports_ambiguous_and_missing_with_a_summary(ac_data, tmp_path, capsys):
    root = _flatten_features(ac_data, tmp_path)
    names = sorted(p.name for p in (root / "AnomalyCLIP_features").iterdir())
    twice = next(line.split()[0] for line in (ac_data / "Anomaly_Train_Normal.txt").read_text().splitlines())
    (root / "elsewhere").mkdir()
    shutil.copy(root / "AnomalyCLIP_features" / f"{Path(twice).name}.npy", root / "elsewhere")
    test_names = [line.split()[0] for line in (ac_data / "Anomaly_Test.txt").read_text().splitlines()]
    for name in test_names:
        (root / "AnomalyCLIP_features" / f"{Path(name).name}.npy").unlink()
    assert len(names) > len(test_names)
    assert cli_main(ac_args(ac_data, tmp_path / "run", features_root=root)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{twice}: 2 files of that name under the features root" in err            # ambiguous
    assert f"likely fix: {len(test_names)} listed files not found" in err                 # missing, counted
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_vadclip_foreign_paths_summary_then_found_with_features_root(tmp_path, capsys):
    """An official-style CSV of another machine's absolute paths: without --features-root one
    summary (first 10, the count, the likely fix), not a line per file; with it, training starts."""
    _require_shared()
    bench = tmp_path / "bench"
    subprocess.run([sys.executable, str(SYNTH), "--preset", "xd", "--out", str(bench), "--seed", "0",
                    "--n-train", "12", "--n-test", "8"], check=True, capture_output=True)
    foreign = "/home/xbgydx/Desktop/XDTrainClipFeatures"
    rows = (bench / "xd_train.csv").read_text().splitlines()
    moved = [f"{foreign}/{Path(r.split(',')[0]).name},{r.split(',', 1)[1]}" for r in rows[1:]]
    (bench / "official_train.csv").write_text("\n".join([rows[0], *moved]) + "\n")
    base = ["train", "--train-list", str(bench / "official_train.csv"), "--init", str(CLIP), "--batch-size", "4",
            "--max-steps", "1", "--workers", "0", "--device", "cpu"]
    assert cli_main(base + ["--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert f"likely fix: {len(moved)} listed files not found" in err
    assert err.count("missing file") == 10 and f"... and {len(moved) - 10} more" in err
    assert "another machine's paths" in err and "--features-root" in err
    assert cli_main(base + ["--out", str(tmp_path / "b"), "--features-root", str(bench)]) == 0, capsys.readouterr().err
    assert (tmp_path / "b" / "last.safetensors").is_file()


# --------------------------------------------------------------------------- vadclip.train

def test_vadclip_train_dispatches_on_the_config_type(ac_data, tmp_path):
    config = anomalyclip_config(build_parser().parse_args(ac_args(ac_data, tmp_path / "r")))
    events = []
    result = vadclip.train(config, on_progress=events.append, should_stop=lambda: len(events) > 0)
    assert isinstance(result, anomalyclip.TrainResult) and result.cancelled
    with pytest.raises(TypeError):
        vadclip.train(object())
    bad = anomalyclip.TrainConfig(preset="xd", train_normal="n", train_abnormal="a", features_root=str(tmp_path),
                                  out_dir=str(tmp_path / "x"), batch_size=3)
    with pytest.raises(vadclip.UserError, match="even number"):
        vadclip.train(bad)


def test_read_feature_list_with_a_features_root_reports_rows_and_resolutions(tmp_path):
    """Label problems and unresolved files are reported together; good rows map to the found files."""
    from vadclip import formats

    (tmp_path / "f" / "x").mkdir(parents=True)
    (tmp_path / "f" / "y").mkdir()
    for name in ("a__0.npy", "b__0.npy"):
        np.save(tmp_path / "f" / "x" / name, np.zeros((3, 512), np.float32))
    np.save(tmp_path / "f" / "y" / "b__0.npy", np.zeros((3, 512), np.float32))      # b twice
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\n/elsewhere/a__0.npy,B1\n/elsewhere/c__0.npy,A\n/elsewhere/b__0.npy,ZZ\n")
    with pytest.raises(formats.DataError) as err:
        formats.read_feature_list(csv, preset="xd", features_root=tmp_path / "f")
    text = str(err.value)
    assert "row 4 (/elsewhere/b__0.npy): label 'ZZ'" in text and "row 3: /elsewhere/c__0.npy: not found" in text
    csv.write_text("path,label\n/elsewhere/a__0.npy,B1\n/elsewhere/x/b__0.npy,A\n")
    entries = formats.read_feature_list(csv, preset="xd", features_root=tmp_path / "f")
    assert [e.path for e in entries] == [(tmp_path / "f" / "x" / n).resolve() for n in ("a__0.npy", "b__0.npy")]
    csv.write_text("path,label\n/elsewhere/b__0.npy,A\n")                            # no folder decides
    with pytest.raises(formats.DataError, match="1 listed file ambiguous"):
        formats.read_feature_list(csv, preset="xd", features_root=tmp_path / "f")
    with pytest.raises(formats.DataError, match="likely fix: 1 listed path is absolute"):
        formats.read_feature_list(csv, preset="xd", root=tmp_path)                   # a server's confinement
