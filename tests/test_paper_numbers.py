"""The papers' reported numbers: traceable to the specs, and the comparison table."""
from __future__ import annotations

import pytest

from conftest import SHARED
from vadclip.paper_numbers import (NOT_RECORDED, PAPER_NUMBERS, as_percent, format_comparison,
                                   paper_numbers)


def spec_text(name: str) -> str:
    path = SHARED / "spec" / name
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is absent)")
    return path.read_text()


def test_every_recorded_number_appears_in_its_source_spec():
    specs = {"vadclip": spec_text("official-vadclip.md"), "anomalyclip": spec_text("official-anomalyclip.md")}
    recorded = 0
    for (method, _), rows in PAPER_NUMBERS.items():
        for row in rows:
            if row.value is None:
                assert row.source == ""
                continue
            recorded += 1
            assert f"{row.value:.2f}" in specs[method], (method, row)
            assert f"official-{method}.md" in row.source
    assert recorded == 5


def test_the_headline_numbers():
    assert paper_numbers("vadclip", "xd")["ap_a"].value == 84.51
    assert paper_numbers("vadclip", "ucf")["auc_c"].value == 88.02
    assert paper_numbers("anomalyclip", "sht")["auc_roc"].value == 98.07
    assert paper_numbers("anomalyclip", "ucf")["auc_roc"].value == 86.36
    assert paper_numbers("anomalyclip", "xd")["auc_pr"].value == 78.51
    assert paper_numbers("vadclip", "ucf")["anoauc_c"].value is None
    assert paper_numbers("anomalyclip", "xd")["mean_mc_auroc"].value is None


def test_unknown_combination_is_a_clear_error():
    with pytest.raises(ValueError, match="no paper numbers for method 'vadclip' with preset 'sht'"):
        paper_numbers("vadclip", "sht")


def test_as_percent():
    assert as_percent("ap_a", 0.8451) == pytest.approx(84.51)
    assert as_percent("map_avg", 12.5) == 12.5
    assert as_percent("auc_c", None) is None and as_percent("auc_c", float("nan")) is None


def test_format_comparison_rows():
    ours = {"ap_a": 0.832, "map@0.1": 40.0, "auc_c": 0.9}
    text = format_comparison(ours, paper_numbers("vadclip", "xd"))
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["metric", "ours"] and set(lines[1]) == {"-"}
    ap = next(line for line in lines if line.startswith("AP (XD-Violence"))
    assert "83.20" in ap and "84.51" in ap and "-1.31" in ap and "official-vadclip.md" in ap
    m01 = next(line for line in lines if line.startswith("mAP@IoU 0.1"))
    assert "40.00" in m01 and NOT_RECORDED in m01
    m05 = next(line for line in lines if line.startswith("mAP@IoU 0.5"))
    assert "n/a (not computed)" in m05 and NOT_RECORDED in m05
    assert "auc_c" not in text and len(lines) == 2 + 7
