"""`vadclip extract`: layout and names, labels, the CSV list, resumption, failures, torchrun."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vadclip import extract as E
from vadclip.cli import extract as extract_cli
from vadclip.clip_backbone import load_clip
from vadclip.formats import read_feature_list
from vadclip.features import ExtractSettings, extract_video_features

from videos import write_text, write_video

SETTINGS = ExtractSettings(samples_per_snippet=2)


@pytest.fixture(scope="module")
def clip(official_dir):
    return load_clip(official_dir / "official_xd.pth")


@pytest.fixture(scope="module")
def clip_path(official_dir):
    return str(official_dir / "official_xd.pth")


@pytest.fixture()
def videos(tmp_path):
    """A folder with UCF-style class folders, an XD-named video and a duplicated file name."""
    root = tmp_path / "in"
    for sub in ("Abuse", "cam", "cam/deep"):
        (root / sub).mkdir(parents=True)
    write_video(root / "Abuse" / "Abuse001_x264.mp4", 40)
    write_video(root / "cam" / "a.mp4", 33, width=64, height=96)
    write_video(root / "cam" / "deep" / "a.mp4", 20)
    write_video(root / "v=x__#1_label_B1-0-0.mp4", 17)
    return root


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    extract_cli.register(parser.add_subparsers())
    args = parser.parse_args(["extract", *argv])
    return args.run(args)


def rows(csv_path: Path) -> list[str]:
    return csv_path.read_text().splitlines()


def test_folder_layout_names_labels_and_list(clip, videos, tmp_path):
    out = tmp_path / "out"
    summary = E.extract(videos, out, clip=clip, settings=SETTINGS, progress=False)
    assert summary.ok and summary.failed == [] and summary.failures_path is None
    assert sorted(summary.extracted) == ["Abuse/Abuse001_x264", "cam/a", "cam/deep/a",
                                         "v=x__#1_label_B1-0-0"]
    assert summary.n_snippets == 2 + 2 + 1 + 1
    assert rows(out / "features.csv") == [
        "path,label", "Abuse/Abuse001_x264.npy,Abuse", "cam/a.npy,Normal", "cam/deep/a.npy,Normal",
        "v=x__#1_label_B1-0-0.npy,B1-0-0"]
    entries = read_feature_list(out / "features.csv", root=out)
    assert [e.name for e in entries] == ["Abuse001_x264", "a", "a", "v=x__#1_label_B1-0-0"]
    model, info = clip
    direct = extract_video_features(model, info, videos / "cam" / "a.mp4", SETTINGS).features
    np.testing.assert_array_equal(np.load(out / "cam" / "a.npy"), direct)
    assert not list(out.rglob("*.tmp"))


def test_list_input_labels_relative_paths_and_name_clashes(clip, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    write_video(tmp_path / "x" / "v.mp4", 16)
    write_video(tmp_path / "x" / "v.mkv", 16)
    write_video(tmp_path / "y" / "v.mp4", 16)
    write_video(tmp_path / "z.mp4", 16)
    listing = tmp_path / "videos.txt"
    listing.write_text("path,label\n# a comment\n\nx/v.mp4,B2-0-0\nx/v.mkv\n"
                       f"{tmp_path / 'y' / 'v.mp4'},Abuse\nz.mp4\nx/v.mp4,A\n")
    jobs = E.plan_jobs(listing, label="Fighting")
    assert [(j.name, j.label) for j in jobs] == [
        ("x/v_mp4", "B2-0-0"), ("x/v_mkv", "Fighting"), ("y/v", "Abuse"), ("z", "Fighting")]
    summary = E.extract(jobs, tmp_path / "out", clip=clip, settings=SETTINGS, progress=False)
    assert summary.ok and len(summary.extracted) == 4
    assert len(rows(tmp_path / "out" / "features.csv")) == 5
    with pytest.raises(ValueError, match="no videos listed"):
        (tmp_path / "empty.txt").write_text("# nothing\n")
        E.plan_jobs(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError):
        E.plan_jobs(tmp_path / "missing")


def test_resume_after_interruption_loses_nothing(clip, videos, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = E.cached_video_features
    calls = []

    def killed_on_second_video(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt   # like Ctrl-C or a kill between two videos
        return real(*args, **kwargs)

    monkeypatch.setattr(E, "cached_video_features", killed_on_second_video)
    with pytest.raises(KeyboardInterrupt):
        E.extract(videos, out, clip=clip, settings=SETTINGS, progress=False)
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.npy")] == ["Abuse/Abuse001_x264.npy"]
    assert not list(out.rglob("*.tmp")) and not (out / "features.csv").exists()
    # a stray temporary file from a killed write is cleaned up
    (out / "cam").mkdir(exist_ok=True)
    (out / "cam" / ".a.npy.k3j2.tmp").write_bytes(b"partial")

    calls.clear()
    monkeypatch.setattr(E, "cached_video_features", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    summary = E.extract(videos, out, clip=clip, settings=SETTINGS, progress=False)
    assert summary.skipped == ["Abuse/Abuse001_x264"] and len(summary.extracted) == 3
    assert len(calls) == 3 and not list(out.rglob("*.tmp"))
    assert len(rows(out / "features.csv")) == 5

    # other settings: everything is extracted again, old single-crop files are replaced
    ten = ExtractSettings(samples_per_snippet=1, ten_crop=True)
    summary = E.extract(videos, out, clip=clip, settings=ten, progress=False)
    assert len(summary.extracted) == 4 and not list(out.rglob("a.npy"))
    names = sorted(p.name for p in (out / "cam").glob("*.npy"))
    assert names == [f"a__{k}.npy" for k in range(10)]
    lines = rows(out / "features.csv")
    assert len(lines) == 1 + 40 and lines[1] == "Abuse/Abuse001_x264__0.npy,Abuse"
    assert np.load(out / "cam" / "a__3.npy").shape == (2, 512)


def test_touched_video_is_extracted_again(clip, videos, tmp_path):
    out = tmp_path / "out"
    E.extract(videos, out, clip=clip, settings=SETTINGS, progress=False)
    video = videos / "cam" / "a.mp4"
    os.utime(video, ns=(1, 1))
    summary = E.extract(videos, out, clip=clip, settings=SETTINGS, progress=False)
    assert summary.extracted == ["cam/a"] and len(summary.skipped) == 3


def test_failures_are_listed_and_exit_code_is_1(clip_path, videos, tmp_path, capsys):
    write_text(videos / "cam" / "broken.mp4")
    write_video(videos / "short.mp4", 10)
    out = tmp_path / "out"
    rc = run_cli([str(videos), "--out", str(out), "--clip", clip_path, "--samples-per-snippet", "1",
                  "--label", "B4", "--backend", "pyav", "--no-progress"])
    assert rc == 1
    failed = (out / "failures.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == [str(videos / "cam" / "broken.mp4"),
                                                        str(videos / "short.mp4")]
    assert "not a readable video" in failed[0] and "only 10 frame(s)" in failed[1]
    err = capsys.readouterr().err
    assert "failed 2" in err and "broken.mp4" in err
    assert rows(out / "features.csv")[2] == "cam/a.npy,B4"          # --label for unlabelled
    (videos / "cam" / "broken.mp4").unlink()
    (videos / "short.mp4").unlink()
    assert run_cli([str(videos), "--out", str(out), "--clip", clip_path,
                    "--samples-per-snippet", "1", "--no-progress"]) == 0
    assert not (out / "failures.txt").exists()
    with pytest.raises(FileNotFoundError):
        run_cli([str(tmp_path / "nope"), "--out", str(out), "--clip", clip_path])


@pytest.mark.slow   # two fresh processes importing torch: ~25 s on 2 idle cores
def test_torchrun_two_ranks_match_one_process(clip, clip_path, videos, tmp_path):
    write_text(videos / "broken.mp4")
    single = tmp_path / "single"
    E.extract(videos, single, clip=clip, settings=SETTINGS, progress=False)
    dist = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vadclip", "extract", str(videos), "--out", str(dist), "--clip", clip_path,
           "--samples-per-snippet", "2", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode != 0, done.stderr[-3000:]           # the broken video fails its rank
    assert "broken.mp4" in (dist / "failures.txt").read_text()
    assert rows(dist / "features.csv") == rows(single / "features.csv")
    files = sorted(p.relative_to(single) for p in single.rglob("*.npy"))
    assert files == sorted(p.relative_to(dist) for p in dist.rglob("*.npy")) and len(files) == 4
    for f in files:
        np.testing.assert_allclose(np.load(dist / f), np.load(single / f), atol=1e-5, rtol=0)
    records = sorted((dist / ".vadclip-extract").rglob("*.json"))
    assert {json.loads(r.read_text()).get("samples_per_snippet") for r in records
            if not r.name.startswith("failed")} == {2}
