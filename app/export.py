"""Export of flagged segments, moderator decisions and their history as CSV and JSON files.

Each segment's `history` (its decisions, oldest first, as `{at, reviewer, action, from_status,
to_status, label, note}`) is a list in the JSON and that list as JSON text in the CSV's `history`
column (null / empty where the records were read without history).
"""
from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from vadclip.results import VideoScores

from .review_db import SORT_KEYS, QueueFilter, ReviewRecord, ReviewStore

EXPORT_COLUMNS = ("video", "content_hash", "start_s", "end_s", "start_frame", "end_frame",
                  "label", "confidence", "peak_score", "status", "new_label", "final_label",
                  "note", "reviewer", "decided_at", "model", "random_weights", "history")
EXPORT_FORMATS = ("csv", "json")
PRETTY_UP_TO = 500        # larger JSON exports are written compact (the indenting encoder is slow)


def export_row(record: ReviewRecord) -> dict:
    """One segment and its decision as a dict of plain values (no thumbnail); `history` is a list
    of dicts (None when the record was read without it)."""
    row = {name: getattr(record, name) for name in EXPORT_COLUMNS if name not in ("final_label", "history")}
    row["final_label"] = record.final_label
    row["decided_at"] = record.decided_at.isoformat() if record.decided_at else ""
    row["new_label"] = record.new_label or ""
    row["start_s"], row["end_s"] = round(record.start_s, 3), round(record.end_s, 3)
    row["confidence"], row["peak_score"] = round(record.confidence, 4), round(record.peak_score, 4)
    row["history"] = None if record.history is None else [h.to_dict() for h in record.history]
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
        for record in records:
            row = export_row(record)
            row["history"] = "" if row["history"] is None else json.dumps(row["history"])
            writer.writerow(row)
    return path


def write_json(records: list[ReviewRecord], analysis: VideoScores | None = None,
               stem: str = "vadclip-review", out_dir: Path | None = None,
               filters: QueueFilter | None = None) -> Path:
    """Write the records (and, when given, the full current analysis and the filter that chose
    the records) as one JSON document."""
    doc = {
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "segments": [export_row(r) for r in records],
    }
    if filters is not None:
        doc["filters"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(filters).items()}
    if any(r.random_weights for r in records) or (analysis is not None and analysis.random_weights):
        doc["warning"] = "Some scores come from a CLIP with RANDOM WEIGHTS: they are meaningless."
    if analysis is not None:
        doc["analysis"] = analysis.to_dict()
    path = _export_path(stem, ".json", out_dir)
    path.write_text(json.dumps(doc, indent=2 if len(records) <= PRETTY_UP_TO else None), encoding="utf-8")
    return path


def export_reviews_file(store: ReviewStore, fmt: str, out_dir: Path | None = None,
                        filters: QueueFilter | None = None, sort: str = "time",
                        analysis: VideoScores | None = None) -> Path:
    """The review queue (all of it, or what `filters` selects), with every segment's history, as a
    CSV or JSON file in `out_dir` (default: a fresh temp folder); what the app's documented
    `/export_reviews(format)` endpoint returns. ValueError for an unknown format or sort."""
    fmt = (fmt or "").strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use csv or json")
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)}")
    records = store.records(filters, sort=sort, with_history=True)
    if fmt == "csv":
        return write_csv(records, out_dir=out_dir)
    return write_json(records, analysis=analysis, out_dir=out_dir, filters=filters)
