"""Feature lists as downloaded: resolving listed paths under a --features-root folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vadclip import feature_root as fr
from vadclip.feature_root import FeatureRoot, Found, resolve_listed_path, resolve_listed_paths

AUTHORS = "/home/xbgydx/Desktop/XDTestClipFeatures"     # the official list's folder (not on this machine)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((2, 4), np.float32))
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "features"
    touch(r / "test" / "v1__0.npy")
    touch(r / "test" / "deep" / "v2__0.npy")
    touch(r / "train" / "Abuse" / "dup__0.npy")
    touch(r / "test" / "Abuse" / "dup__0.npy")
    touch(r / "a" / "same__0.npy")
    touch(r / "b" / "same__0.npy")
    (r / "notes.txt").write_text("not a feature file")
    return r


def test_found_as_listed_and_by_name(root):
    here = resolve_listed_path(str(root / "test" / "v1__0.npy"), FeatureRoot(root))
    assert here.found is Found.AS_LISTED and here.path == root / "test" / "v1__0.npy"
    moved = resolve_listed_path(f"{AUTHORS}/v2__0.npy", FeatureRoot(root))
    assert moved.found is Found.BY_NAME and moved.path == root / "test" / "deep" / "v2__0.npy"
    assert moved.problem() is None


def test_relative_paths_read_from_base_first(tmp_path, root):
    (tmp_path / "lists").mkdir()
    local = touch(tmp_path / "lists" / "features" / "v1__0.npy")
    r = resolve_listed_path("features/v1__0.npy", FeatureRoot(root), base=tmp_path / "lists")
    assert r.found is Found.AS_LISTED and r.path == local


def test_windows_paths_resolve_by_name(root):
    r = resolve_listed_path(r"D:\XD\TestClipFeatures\v1__0.npy", FeatureRoot(root))
    assert r.found is Found.BY_NAME and r.path == root / "test" / "v1__0.npy"


def test_anomalyclip_paths_get_the_suffix(root):
    """AnomalyCLIP lists name `<root>/<PATH>.npy` without the extension."""
    feature_root = FeatureRoot(root)
    direct = resolve_listed_path("test/v1__0", feature_root, base=root, suffix=".npy")
    assert direct.found is Found.AS_LISTED and direct.path == root / "test" / "v1__0.npy"
    elsewhere = resolve_listed_path("Test/deep_moved/v2__0", feature_root, base=root, suffix=".npy")
    assert elsewhere.found is Found.BY_NAME and elsewhere.path == root / "test" / "deep" / "v2__0.npy"


def test_duplicate_names_decided_by_trailing_folders(root):
    r = resolve_listed_path(f"{AUTHORS}/train/Abuse/dup__0.npy", FeatureRoot(root))
    assert r.found is Found.BY_NAME and r.path == root / "train" / "Abuse" / "dup__0.npy"
    assert len(r.candidates) == 2


def test_ambiguous_reported_with_candidates(root):
    r = resolve_listed_path(f"{AUTHORS}/same__0.npy", FeatureRoot(root))
    assert r.found is Found.AMBIGUOUS and r.path is None
    assert set(r.candidates) == {root / "a" / "same__0.npy", root / "b" / "same__0.npy"}
    assert "2 files of that name" in r.problem() and str(root / "a" / "same__0.npy") in r.problem()
    # the Abuse duplicates listed without a distinguishing folder are ambiguous too
    assert resolve_listed_path("/elsewhere/dup__0.npy", FeatureRoot(root)).found is Found.AMBIGUOUS


def test_missing_with_and_without_root(root):
    assert resolve_listed_path(f"{AUTHORS}/nope__0.npy", FeatureRoot(root)).found is Found.MISSING
    assert resolve_listed_path(f"{AUTHORS}/v1__0.npy", None).found is Found.MISSING
    # only files with the suffix are indexed
    assert resolve_listed_path("/x/notes.txt", FeatureRoot(root)).found is Found.MISSING


def test_not_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        FeatureRoot(tmp_path / "absent")


def official_rows(n: int) -> list[str]:
    return [f"{AUTHORS}/video{i:04d}_label_A__0.npy" for i in range(n)]


def test_summary_of_800_foreign_paths_without_root():
    report = resolve_listed_paths(official_rows(800))
    summary, lines = report.error_parts("test list xd_CLIP_rgbtest.csv")
    assert summary == "test list xd_CLIP_rgbtest.csv: 800 listed files not found (of 800)"
    assert lines[:10] == [f"entry {i + 1}: {AUTHORS}/video{i:04d}_label_A__0.npy: not found" for i in range(10)]
    assert lines[10] == "... and 790 more"
    assert lines[11].startswith("likely fix: 800 listed files not found; they look like another machine's paths "
                                f"(folder {AUTHORS} does not exist here): pass --features-root DIR")
    assert len(lines) == 12
    text = report.summary_text("test list xd_CLIP_rgbtest.csv")
    assert text.splitlines()[0] == summary and text.count("\n  - ") == 12


def test_summary_with_root_names_the_root_and_ambiguity(root):
    rows = [f"{AUTHORS}/v1__0.npy", f"{AUTHORS}/gone__0.npy", f"{AUTHORS}/same__0.npy"]
    report = resolve_listed_paths(rows, root)
    assert [r.found for r in report.resolutions] == [Found.BY_NAME, Found.MISSING, Found.AMBIGUOUS]
    assert report.paths[0] == root / "test" / "v1__0.npy" and report.paths[1:] == [None, None]
    summary, lines = report.error_parts()
    assert summary == "feature list: 1 listed file not found; 1 listed file ambiguous (of 3)"
    assert lines[0] == f"entry 2: {AUTHORS}/gone__0.npy: not found"
    assert lines[1].startswith(f"entry 3: {AUTHORS}/same__0.npy: 2 files of that name")
    fix = lines[2]
    assert f"not even by name under {root}" in fix and "occurs more than once" in fix


def test_summary_for_local_relative_paths_does_not_blame_another_machine(tmp_path):
    report = resolve_listed_paths(["features/a__0.npy", "features/b__0.npy"], base=tmp_path)
    fix = report.likely_fix()
    assert "another machine" not in fix and "check the paths" in fix


def test_all_found_has_no_problems(root):
    report = resolve_listed_paths([f"{AUTHORS}/v1__0.npy", str(root / "a" / "same__0.npy")], root,
                                  wheres=["row 7", "row 8"])
    assert report.problems == [] and report.summary_text() == "" and report.likely_fix() is None


def test_root_not_walked_when_every_path_exists(root, monkeypatch):
    calls = []
    real = fr._walk_files
    monkeypatch.setattr(fr, "_walk_files", lambda *a: calls.append(a) or real(*a))
    feature_root = FeatureRoot(root)
    resolve_listed_paths([str(root / "test" / "v1__0.npy")] * 5, feature_root)
    assert calls == [] and not feature_root.indexed


def test_large_list_indexes_the_root_once(tmp_path, monkeypatch):
    """5000 rows of another machine's paths over 5000 files: one walk of the folder."""
    root = tmp_path / "big"
    for sub in range(10):
        folder = root / f"part{sub}"
        folder.mkdir(parents=True)
        for i in range(sub * 500, sub * 500 + 500):
            (folder / f"video{i:05d}__0.npy").write_bytes(b"")
    calls = []
    real = fr._walk_files
    monkeypatch.setattr(fr, "_walk_files", lambda *a: calls.append(a) or real(*a))
    rows = [f"{AUTHORS}/video{i:05d}__0.npy" for i in range(5000)]
    report = resolve_listed_paths(rows, root)
    assert len(calls) == 1
    assert report.problems == []
    assert report.paths[1234] == root / "part2" / "video01234__0.npy"
    assert len(report.root.index) == 5000


def test_looks_foreign(tmp_path):
    assert fr.looks_foreign(f"{AUTHORS}/v__0.npy")
    assert fr.looks_foreign(r"D:\XD\features\v__0.npy")
    assert not fr.looks_foreign(str(tmp_path / "v__0.npy"))          # its folder exists here
    assert not fr.looks_foreign("features/v__0.npy")                 # relative: read from the list's folder


def test_absolute_paths_can_be_refused_and_found_by_name_only(tmp_path, root):
    """A server confining paths never opens a listed absolute path; the name is still found under root."""
    outside = touch(tmp_path / "outside" / "v1__0.npy")
    trusted = resolve_listed_path(str(outside), FeatureRoot(root))
    assert trusted.found is Found.AS_LISTED and trusted.path == outside
    confined = resolve_listed_path(str(outside), FeatureRoot(root), allow_absolute=False)
    assert confined.found is Found.BY_NAME and confined.path == root / "test" / "v1__0.npy"
    secret = touch(tmp_path / "outside" / "secret__0.npy")
    report = resolve_listed_paths([str(secret), "test/v1__0.npy"], root, base=root, allow_absolute=False)
    assert [r.found for r in report.resolutions] == [Found.MISSING, Found.AS_LISTED]
