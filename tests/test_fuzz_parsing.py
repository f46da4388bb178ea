"""Property-based tests: the parsers either return well-formed results or raise their one clean
error type (never another exception), whatever text they are given."""
from __future__ import annotations

import string

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from vadclip import formats
from vadclip.checkpoint import get_tokenizer
from vadclip.prompt import tokenize_class_names, validate_class_names

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOKENIZER = get_tokenizer()

names = st.text(alphabet=string.ascii_letters + string.digits + " _-.,;!?'\"éü中\t", max_size=30)


@SETTINGS
@given(st.lists(names, max_size=12))
def test_vocabulary_parsing(vocab):
    try:
        cleaned = validate_class_names(vocab)
    except ValueError:
        return
    assert len(cleaned) >= 2 and all(cleaned) and len({n.lower() for n in cleaned}) == len(cleaned)
    try:
        t = tokenize_class_names(TOKENIZER, cleaned, 10, 10)
    except ValueError as e:
        assert "too long" in str(e)
        return
    assert t.ids.shape == (len(cleaned), 77)
    assert (t.eot_position < 77).all()
    assert (t.source_index[:, 0] == 0).all()


csv_cells = st.text(alphabet=string.ascii_letters + string.digits + "_-./,\"\n =#", max_size=25)


@SETTINGS
@given(st.lists(st.tuples(csv_cells, csv_cells), max_size=8), st.booleans(), st.sampled_from([None, "xd", "ucf"]))
def test_feature_list_parsing(tmp_path_factory, rows, header, preset):
    folder = tmp_path_factory.mktemp("fl")
    lines = (["path,label"] if header else []) + [f"{a},{b}" for a, b in rows]
    csv_path = folder / "list.csv"
    csv_path.write_text("\n".join(lines))
    try:
        entries = formats.read_feature_list(csv_path, root=folder, preset=preset)
    except formats.DataError:
        return
    for e in entries:
        assert e.path.is_absolute() and e.path.name.endswith(".npy")
        assert folder.resolve() in e.path.parents
        assert e.label


ann_tokens = st.one_of(st.integers(-5, 5000).map(str), st.sampled_from(["A", "B1", "B2", "G", "Normal", "Abuse", "-1", "x", ""]),
                       st.text(alphabet=string.ascii_letters + "_=#-.", min_size=1, max_size=12))


@SETTINGS
@given(st.lists(st.lists(ann_tokens, min_size=1, max_size=8), max_size=6), st.sampled_from([None, "xd", "ucf"]))
def test_annotation_parsing(tmp_path_factory, lines, preset):
    path = tmp_path_factory.mktemp("ann") / "ann.txt"
    path.write_text("\n".join("  ".join(tok) for tok in lines))
    try:
        ann = formats.read_annotations(path, preset=preset)
    except formats.DataError:
        return
    for name, segments in ann.items():
        assert isinstance(name, str) and name
        for s in segments:
            assert 0 <= s.start_frame < s.end_frame
            labels = formats.frame_labels([s], s.end_frame + 3)
            assert labels.sum() == s.end_frame - s.start_frame


@SETTINGS
@given(st.text(max_size=20), st.sampled_from(["xd", "ucf"]))
def test_label_parsing(label, preset):
    try:
        classes = formats.parse_label(label, preset)
    except formats.DataError:
        return
    mh = formats.multi_hot(classes, list(formats.get_preset(preset).model.class_names))
    assert mh.sum() >= 1 and set(np.unique(mh)) <= {0.0, 1.0}
