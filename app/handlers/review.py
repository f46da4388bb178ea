"""The Review queue tab's handlers: the queue table, picking an item, decisions, exports."""
from __future__ import annotations

from pathlib import Path

from vadclip.errors import UserError

from .. import export, media
from ..review_db import STATUSES, ReviewRecord
from ..state import Session
from .context import AppContext

REVIEW_COLUMNS = ["id", "thumbnail", "video", "start (s)", "end (s)", "class", "confidence",
                  "status", "final class", "note"]
REVIEW_FILTERS = ("all", *STATUSES)
REVIEW_ACTIONS = {"confirm": "confirmed", "dismiss": "dismissed", "relabel": "relabelled",
                  "reset": "pending"}
EXPORT_FORMATS = ("csv", "json")


def review_records(ctx: AppContext, status: str = "all") -> list[ReviewRecord]:
    if status not in REVIEW_FILTERS:
        raise UserError(f"unknown review filter {status!r}")
    return ctx.store.items(status=None if status == "all" else status)


def review_rows(ctx: AppContext, status: str = "all") -> list[list]:
    """The review queue table: one row per flagged segment (thumbnail as a markdown image)."""
    return [[r.id, media.thumbnail_markdown(r.thumbnail), r.video, round(r.start_s, 2),
             round(r.end_s, 2), r.label, round(r.confidence, 3), r.status, r.final_label, r.note]
            for r in review_records(ctx, status)]


def review_item(ctx: AppContext, item_id: int | str | None) -> ReviewRecord:
    """The review item picked in the table (its id is the row's first cell)."""
    if item_id in (None, ""):
        raise UserError("select a segment in the table first")
    record = ctx.store.get(int(item_id))
    if record is None:
        raise UserError("this segment is no longer in the queue: refresh")
    return record


def item_markdown(record: ReviewRecord) -> str:
    """One line describing a review item and its current decision."""
    label = record.final_label if record.status == "relabelled" else f"{record.label} ({record.confidence:.2f})"
    return (f"**#{record.id} · {record.video}** {record.start_s:.1f}-{record.end_s:.1f} s · "
            f"{label} · **{record.status}**")


def decide(ctx: AppContext, item_id: int | None, action: str, new_label: str = "",
           note: str = "") -> ReviewRecord:
    """Confirm, dismiss, relabel (with `new_label`) or reset one review item, with a note."""
    if item_id is None:
        raise UserError("select a segment in the table first")
    if action not in REVIEW_ACTIONS:
        raise UserError(f"unknown review action {action!r}; use one of {', '.join(REVIEW_ACTIONS)}")
    return ctx.store.decide(int(item_id), REVIEW_ACTIONS[action], new_label=new_label, note=note)


def export_reviews(ctx: AppContext, fmt: str, status: str = "all",
                   session: Session | None = None, out_dir: Path | None = None) -> Path:
    """Write the review queue (optionally one status) as a CSV or JSON file for download, into
    `out_dir` (e.g. the session's temp folder; default a fresh temp folder)."""
    records = review_records(ctx, status)
    if fmt == "csv":
        return export.write_csv(records, out_dir=out_dir)
    if fmt == "json":
        return export.write_json(records, analysis=session.scores if session else None, out_dir=out_dir)
    raise UserError(f"unknown export format {fmt!r}; use {' or '.join(EXPORT_FORMATS)}")
