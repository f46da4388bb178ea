"""Seeds as an axis: parsing, the summary maths (hand-computed), the JSON file and the table."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from dataclasses import dataclass
from types import SimpleNamespace

from vadclip.seeds import (SUMMARY_FILE, format_seeds_table, parse_seeds, summarise_runs, train_seeds,
                           write_seeds_summary)


@pytest.mark.parametrize("text, seeds", [
    ("0,1,2", (0, 1, 2)), ("0-4", (0, 1, 2, 3, 4)), ("0..2", (0, 1, 2)), (" 3 , 1 ", (3, 1)),
    ("0-2,7", (0, 1, 2, 7)), ("5-5", (5,)), ("234", (234,)),
])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("", "no seeds given"), ("1,,2", "empty item"), ("a", "'a' is not a seed"), ("-1", "is not a seed"),
    ("4-2", "runs backwards; write 2-4"), ("0-2,1", "seed(s) 1 given more than once"),
    (str(2 ** 32), "too large"), ("1.5", "is not a seed"),
])
def test_parse_seeds_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_seeds(text)


def reports():
    # the shape of `vadclip train`'s report.json (best_metrics) and of plain metric dicts
    return [
        {"seed": 0, "best_metrics": {"ap_a": 0.5, "auc_c": 0.75, "map_avg": None, "n_videos": 10,
                                     "random_weights": True}},
        {"seed": 1, "best_metrics": {"ap_a": 0.75, "auc_c": 0.5, "map_avg": 2.0, "n_videos": 10,
                                     "random_weights": True}},
        {"seed": 2, "metrics": {"ap_a": 1.0, "auc_c": float("nan"), "map_avg": 4.0, "n_videos": 10}},
    ]


def test_summary_maths_by_hand():
    s = summarise_runs(reports())
    assert s["n_runs"] == 3 and s["seeds"] == [0, 1, 2]
    ap = s["metrics"]["ap_a"]
    # mean (0.5 + 0.75 + 1) / 3 = 0.75; deviations -0.25, 0, 0.25; sample var = 0.125 / 2 = 0.0625
    assert ap == {"mean": 0.75, "std": 0.25, "min": 0.5, "max": 1.0, "n": 3}
    auc = s["metrics"]["auc_c"]          # NaN dropped: 0.75, 0.5 -> mean 0.625, std sqrt(0.03125)
    assert auc["n"] == 2 and auc["mean"] == 0.625 and auc["std"] == pytest.approx(math.sqrt(0.03125), abs=1e-15)
    m = s["metrics"]["map_avg"]          # None dropped: 2, 4 -> mean 3, std sqrt(2)
    assert (m["mean"], m["n"], m["min"], m["max"]) == (3.0, 2, 2.0, 4.0) and m["std"] == pytest.approx(math.sqrt(2))
    assert s["metrics"]["n_videos"] == {"mean": 10.0, "std": 0.0, "min": 10.0, "max": 10.0, "n": 3}
    assert "random_weights" not in s["metrics"]                  # booleans are not metrics
    assert s["runs"][1]["metrics"]["ap_a"] == 0.75 and s["runs"][2]["seed"] == 2


def test_summary_agrees_with_numpy_on_random_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=7)
    s = summarise_runs([{"seed": i, "metrics": {"x": float(v)}} for i, v in enumerate(values)])["metrics"]["x"]
    assert s["mean"] == pytest.approx(values.mean(), abs=1e-15)
    assert s["std"] == pytest.approx(values.std(ddof=1), abs=1e-15)


def test_single_run_has_no_std_and_errors_are_clear():
    assert summarise_runs([{"metrics": {"x": 1.0}}])["metrics"]["x"]["std"] is None
    with pytest.raises(ValueError, match="no runs"):
        summarise_runs([])
    with pytest.raises(ValueError, match="run report without metrics"):
        summarise_runs([{"seed": 0}])


def test_written_json_round_trips_without_nan(tmp_path):
    s = summarise_runs(reports())
    path = write_seeds_summary(s, tmp_path / "runs")
    assert path == tmp_path / "runs" / SUMMARY_FILE
    text = path.read_text()
    assert "NaN" not in text
    back = json.loads(text)
    assert back["metrics"]["ap_a"]["std"] == 0.25
    assert back["runs"][2]["metrics"]["auc_c"] is None          # the NaN of run 2


def test_table():
    table = format_seeds_table(summarise_runs(reports()), metrics=["ap_a", "map_avg", "absent"], scale=100, digits=2)
    lines = table.splitlines()
    assert lines[0] == "3 run(s)"
    assert lines[1].split()[:2] == ["metric", "mean"] and lines[1].endswith("seed 2")
    ap = lines[3].split()
    assert ap == ["ap_a", "75.00", "±", "25.00", "50.00", "100.00", "50.00", "75.00", "100.00"]
    assert lines[4].split()[:7] == ["map_avg", "300.00", "±", "141.42", "200.00", "400.00", "n/a"]
    assert lines[5].split() == ["absent", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]


@dataclass
class FakeConfig:
    preset: str = "xd"
    seed: int | None = None
    out_dir: str = "runs"


def test_train_seeds_runs_each_seed_in_its_folder_and_writes_the_summary(tmp_path):
    seen = []

    def fake_train(config, on_progress=None):
        seen.append((config.seed, config.out_dir, on_progress))
        return SimpleNamespace(best_metrics={"ap_a": 0.5 + 0.25 * config.seed}, cancelled=False,
                               best_path=f"{config.out_dir}/best.safetensors")

    summary = train_seeds(FakeConfig(out_dir=str(tmp_path)), (0, 1, 2), fake_train, on_progress=print)
    assert seen == [(s, str(tmp_path / f"seed_{s}"), print) for s in (0, 1, 2)]
    assert summary["metrics"]["ap_a"] == {"mean": 0.75, "std": 0.25, "min": 0.5, "max": 1.0, "n": 3}
    assert summary["runs"][2]["out_dir"] == str(tmp_path / "seed_2") and not summary["cancelled"]
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["seeds"] == [0, 1, 2]


def test_train_seeds_stops_at_a_cancelled_run(tmp_path):
    def fake_train(config):
        return SimpleNamespace(best_metrics={"x": 1.0}, cancelled=config.seed == 1)

    summary = train_seeds(FakeConfig(out_dir=str(tmp_path)), (0, 1, 2), fake_train)
    assert summary["cancelled"] and summary["seeds"] == [0]
