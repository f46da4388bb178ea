"""Export of flagged segments and moderator decisions as CSV and JSON files."""
from __future__ import annotations

import csv
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from vadclip.results import VideoScores

from .review_db import ReviewRecord

EXPORT_COLUMNS = ("video", "content_hash", "start_s", "end_s", "start_frame", "end_frame",
                  "label", "confidence", "peak_score", "status", "new_label", "final_label",
                  "note", "reviewer", "decided_at", "model", "random_weights")


def export_row(record: ReviewRecord) -> dict:
    """One segment and its decision as a flat dict of plain values (no thumbnail)."""
    row = {name: getattr(record, name) for name in EXPORT_COLUMNS if name != "final_label"}
    row["final_label"] = record.final_label
    row["decided_at"] = record.decided_at.isoformat() if record.decided_at else ""
    row["new_label"] = record.new_label or ""
    row["start_s"], row["end_s"] = round(record.start_s, 3), round(record.end_s, 3)
    row["confidence"], row["peak_score"] = round(record.confidence, 4), round(record.peak_score, 4)
    return {name: row[name] for name in EXPORT_COLUMNS}


def _export_path(stem: str, suffix: str, out_dir: Path | None) -> Path:
    out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="vadclip-export-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return out_dir / f"{stem}-{stamp}{suffix}"


def write_csv(records: list[ReviewRecord], stem: str = "vadclip-review",
              out_dir: Path | None = None) -> Path:
    """Write the records as CSV (header = EXPORT_COLUMNS) into a fresh temp folder or `out_dir`."""
    path = _export_path(stem, ".csv", out_dir)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(export_row(r) for r in records)
    return path


def write_json(records: list[ReviewRecord], analysis: VideoScores | None = None,
               stem: str = "vadclip-review", out_dir: Path | None = None) -> Path:
    """Write the records (and, when given, the full current analysis) as one JSON document."""
    doc = {
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "segments": [export_row(r) for r in records],
    }
    if any(r.random_weights for r in records) or (analysis is not None and analysis.random_weights):
        doc["warning"] = "Some scores come from a CLIP with RANDOM WEIGHTS: they are meaningless."
    if analysis is not None:
        doc["analysis"] = analysis.to_dict()
    path = _export_path(stem, ".json", out_dir)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path
