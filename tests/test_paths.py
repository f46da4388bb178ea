import os

import pytest
from hypothesis import given, settings, strategies as st

from vadclip.paths import PathEscapeError, confine, is_inside


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "sub" / "a.npy").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    return r


def test_relative_and_absolute_paths_inside_are_accepted(root):
    assert confine("sub/a.npy", root) == (root / "sub" / "a.npy").resolve()
    assert confine(root / "sub" / "a.npy", root) == (root / "sub" / "a.npy").resolve()
    assert confine(".", root) == root.resolve()
    assert confine("sub/../sub/a.npy", root) == (root / "sub" / "a.npy").resolve()
    assert confine("new/file.csv", root) == (root / "new" / "file.csv").resolve()


@pytest.mark.parametrize("bad", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", ".."])
def test_escapes_are_refused(root, bad):
    with pytest.raises(PathEscapeError, match="outside the allowed folder"):
        confine(bad, root)
    assert not is_inside(bad, root)


def test_symlink_leading_out_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "sub" / "link.npy")
    os.symlink(tmp_path, root / "up")
    with pytest.raises(PathEscapeError):
        confine("sub/link.npy", root)
    with pytest.raises(PathEscapeError):
        confine("up/secret.txt", root)


def test_symlink_staying_inside_is_accepted(root):
    os.symlink(root / "sub" / "a.npy", root / "alias.npy")
    assert confine("alias.npy", root) == (root / "sub" / "a.npy").resolve()


def test_sibling_with_common_prefix_is_outside(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data-evil").mkdir()
    with pytest.raises(PathEscapeError):
        confine(tmp_path / "data-evil" / "x", tmp_path / "data")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "sub", "a.npy", "x", "/", "~", "//"]), max_size=6))
def test_confined_paths_never_leave_the_root(tmp_path_factory, parts):
    root = tmp_path_factory.getbasetemp() / "fuzzroot"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    path = "/".join(parts)
    try:
        resolved = confine(path, root)
    except PathEscapeError:
        return
    assert resolved == root.resolve() or root.resolve() in resolved.parents

