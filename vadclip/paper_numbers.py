"""The numbers the VadCLIP and AnomalyCLIP papers report, as data, each with its source.

Only values that can be read in the project's specifications are recorded; every other metric a
paper's table reports is listed with ``value=None`` and shown as "n/a (paper value not recorded)"
until someone copies it from the paper (and names the table as its source). Values are percent.
Metric keys are those of our evaluators: VadCLIP's `evaluate.EvalResult.as_dict` (``auc_c``,
``ap_a``, ``anoauc_c``, ``map@0.1`` ... ``map_avg``) and AnomalyCLIP's official metric names
(``auc_roc``, ``auc_pr``, ``mean_mc_auroc``, ``mean_mc_aupr``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

VADCLIP_PAPER = "VadCLIP (Wu et al., AAAI 2024)"
ANOMALYCLIP_PAPER = "AnomalyCLIP (Zanella et al., CVIU 2024)"
VADCLIP_SOURCE = "shared/spec/official-vadclip.md (first paragraph)"
ANOMALYCLIP_SOURCE = "shared/spec/official-anomalyclip.md (\"Reported numbers\")"
NOT_RECORDED = "n/a (paper value not recorded)"
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class PaperNumber:
    """One reported number: `value` in percent, None where it is not recorded here."""

    metric: str         # key in our metrics dict
    label: str          # what the paper's table calls it
    value: float | None
    source: str         # where the value was read ("" when not recorded)


def _not_recorded(metric: str, label: str) -> PaperNumber:
    return PaperNumber(metric, label, None, "")


def _vadclip_map_rows() -> list[PaperNumber]:
    rows = [_not_recorded(f"map@{t:.1f}", f"mAP@IoU {t:.1f}") for t in IOU_THRESHOLDS]
    return rows + [_not_recorded("map_avg", "mAP@IoU AVG")]


def _anomalyclip_classwise() -> list[PaperNumber]:
    return [_not_recorded("mean_mc_auroc", "class-wise mAUC"), _not_recorded("mean_mc_aupr", "class-wise mAP")]


# (method, preset) -> the rows of the paper's table for that dataset, in the paper's order.
PAPER_NUMBERS: dict[tuple[str, str], tuple[PaperNumber, ...]] = {
    ("vadclip", "xd"): (
        PaperNumber("ap_a", "AP (XD-Violence, A-branch)", 84.51, f"{VADCLIP_PAPER}; {VADCLIP_SOURCE}"),
        *_vadclip_map_rows(),
    ),
    ("vadclip", "ucf"): (
        PaperNumber("auc_c", "AUC (UCF-Crime, C-branch)", 88.02, f"{VADCLIP_PAPER}; {VADCLIP_SOURCE}"),
        _not_recorded("anoauc_c", "AnoAUC (UCF-Crime)"),
        *_vadclip_map_rows(),
    ),
    ("anomalyclip", "sht"): (
        PaperNumber("auc_roc", "AUC (ShanghaiTech)", 98.07, f"{ANOMALYCLIP_PAPER}; {ANOMALYCLIP_SOURCE}"),
        *_anomalyclip_classwise(),
    ),
    ("anomalyclip", "ucf"): (
        PaperNumber("auc_roc", "AUC (UCF-Crime)", 86.36, f"{ANOMALYCLIP_PAPER}; {ANOMALYCLIP_SOURCE}"),
        *_anomalyclip_classwise(),
    ),
    ("anomalyclip", "xd"): (
        PaperNumber("auc_pr", "AP (XD-Violence)", 78.51, f"{ANOMALYCLIP_PAPER}; {ANOMALYCLIP_SOURCE}"),
        *_anomalyclip_classwise(),
    ),
}


def paper_numbers(method: str, preset: str) -> dict[str, PaperNumber]:
    """The paper's rows for `method` ("vadclip" / "anomalyclip") on `preset`, keyed by metric."""
    try:
        rows = PAPER_NUMBERS[(method, preset)]
    except KeyError:
        known = ", ".join(f"{m} {p}" for m, p in PAPER_NUMBERS)
        raise ValueError(f"no paper numbers for method {method!r} with preset {preset!r}; known: {known}") from None
    return {row.metric: row for row in rows}


def as_percent(metric: str, value: float | None) -> float | None:
    """Our metric value in percent: mAP keys (``map*``) already are, AUC / AP are fractions."""
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        return None
    return float(value) if metric.startswith("map") else 100.0 * float(value)


def format_comparison(ours: Mapping[str, float | None], paper: Mapping[str, PaperNumber]) -> str:
    """A text table: each paper row, our value beside it (percent), the difference, the source.

    `ours` holds metric values as our evaluators return them (see `as_percent`); a metric we did
    not compute shows "n/a (not computed)", a paper value not recorded here
    "n/a (paper value not recorded)".
    """
    rows = [("metric", "ours", "paper", "ours - paper", "paper source")]
    for metric, number in paper.items():
        mine = as_percent(metric, ours.get(metric))
        mine_text = "n/a (not computed)" if mine is None else f"{mine:.2f}"
        if number.value is None:
            rows.append((number.label, mine_text, NOT_RECORDED, "", ""))
            continue
        diff = "" if mine is None else f"{mine - number.value:+.2f}"
        rows.append((number.label, mine_text, f"{number.value:.2f}", diff, number.source))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join([r[0].ljust(widths[0]), *(r[i].rjust(widths[i]) for i in (1, 2, 3)), r[4]]).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
