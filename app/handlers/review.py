"""The Review queue tab's handlers: who is reviewing, the filtered and paged queue, picking an
item and its history, decisions, bulk decisions with a confirmation step, exports."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vadclip.errors import UserError
from vadclip.factory import ZERO_SHOT
from vadclip.reviews_dataset import ReviewFineTune, fine_tune_from_reviews

from .. import export, media
from ..review_db import STATUSES, BulkPreview, HistoryEntry, QueueFilter, ReviewRecord
from ..reviewers import resolve_reviewer
from ..state import Session
from ..training import new_run_folder
from .context import AppContext

REVIEW_COLUMNS = ["id", "thumbnail", "video", "start (s)", "end (s)", "class", "confidence",
                  "peak score", "status", "final class", "reviewer", "note"]
ALL = "all"                                    # a filter dropdown's "no filter" value
REVIEW_FILTERS = (ALL, *STATUSES)
REVIEW_ACTIONS = {"confirm": "confirmed", "dismiss": "dismissed", "relabel": "relabelled",
                  "reset": "pending"}
SORT_CHOICES = {"score, highest first": ("score", True), "score, lowest first": ("score", False),
                "video and time": ("time", False), "newest flagged": ("flagged", True),
                "latest decided": ("decided", True)}
EXPORT_FORMATS = ("csv", "json")
DEFAULT_PAGE_SIZE = 50


# ---------------------------------------------------------------------------------------------
# who is reviewing

def reviewer_name(oauth_username: str | None = None, auth_username: str | None = None,
                  typed_name: str | None = None) -> str:
    """The reviewer recorded with a decision: Hugging Face sign-in, else the `--auth` login, else
    the typed name, else `anonymous` (UserError for an unusable typed name)."""
    return resolve_reviewer(oauth_username, auth_username, typed_name)


# ---------------------------------------------------------------------------------------------
# the queue: filters, sorting, pages

def _number(value, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"the {name} must be a number, not {value!r}") from None
    return None if math.isnan(number) else number


def queue_filter(video: str | None = ALL, label: str | None = ALL, status: str | None = ALL,
                 min_score=None, max_score=None, reviewer: str | None = ALL) -> QueueFilter:
    """The queue filter from the page's boxes (`all` or empty: no filter on that field; `video`
    is a content hash as offered by `filter_choices`)."""
    def chosen(value):
        return None if value in (None, "", ALL) else str(value)

    if chosen(status) is not None and status not in STATUSES:
        raise UserError(f"unknown review filter {status!r}; use one of {', '.join(REVIEW_FILTERS)}")
    return QueueFilter(content_hash=chosen(video), label=chosen(label), status=chosen(status),
                       min_score=_number(min_score, "minimum score"),
                       max_score=_number(max_score, "maximum score"), reviewer=chosen(reviewer))


@dataclass(frozen=True)
class FilterChoices:
    """What the filter dropdowns offer: (label, value) pairs, `all` first."""

    videos: list[tuple[str, str]]
    labels: list[str]
    reviewers: list[str]


def filter_choices(ctx: AppContext) -> FilterChoices:
    """Every video, final class and reviewer in the queue (for the filter dropdowns)."""
    videos = [(f"{name} ({n})", content_hash) for content_hash, name, n in ctx.store.videos()]
    return FilterChoices(videos=[("all videos", ALL), *videos], labels=[ALL, *ctx.store.labels()],
                         reviewers=[ALL, *ctx.store.reviewers()])


@dataclass(frozen=True)
class QueueView:
    """One page of the queue as the table shows it."""

    rows: list[list]
    ids: list[int]
    total: int
    page: int                  # 1-based, clamped to the pages that exist
    pages: int

    @property
    def caption(self) -> str:
        if not self.total:
            return "No segment matches the filter."
        return (f"**{self.total}** segment{'s' if self.total != 1 else ''} match the filter · "
                f"page **{self.page} / {self.pages}**")


def review_row(r: ReviewRecord) -> list:
    """One queue table row (thumbnail as a markdown image)."""
    return [r.id, media.thumbnail_markdown(r.thumbnail), r.video, round(r.start_s, 2),
            round(r.end_s, 2), r.label, round(r.confidence, 3), round(r.peak_score, 3), r.status,
            r.final_label, r.reviewer, r.note]


def queue_view(ctx: AppContext, filters: QueueFilter | None = None, sort: str = "score, highest first",
               page: int | float | None = 1, page_size: int = DEFAULT_PAGE_SIZE) -> QueueView:
    """Page `page` (1-based; past the end: the last page) of the filtered, sorted queue."""
    if sort not in SORT_CHOICES:
        raise UserError(f"unknown sort {sort!r}; use one of {', '.join(SORT_CHOICES)}")
    key, descending = SORT_CHOICES[sort]
    size = int(page_size)
    wanted = max(1, int(_number(page, "page") or 1))
    result = ctx.store.query(filters, sort=key, descending=descending, offset=(wanted - 1) * size, limit=size)
    pages = max(1, -(-result.total // size))
    if wanted > pages:                       # the filter shrank the queue: show its last page
        wanted = pages
        result = ctx.store.query(filters, sort=key, descending=descending, offset=(wanted - 1) * size,
                                 limit=size)
    return QueueView(rows=[review_row(r) for r in result.records], ids=[r.id for r in result.records],
                     total=result.total, page=wanted, pages=pages)


def review_rows(ctx: AppContext, status: str = ALL) -> list[list]:
    """The first page of the queue with one status (`all`: every status), highest scores first."""
    return queue_view(ctx, queue_filter(status=status)).rows


def review_records(ctx: AppContext, status: str = ALL) -> list[ReviewRecord]:
    """Every item with one status (`all`: every status), with histories."""
    return ctx.store.records(queue_filter(status=status))


# ---------------------------------------------------------------------------------------------
# one item: picking, history, decisions

def review_item(ctx: AppContext, item_id: int | str | None) -> ReviewRecord:
    """The review item picked in the table (its id is the row's first cell), with its history."""
    if item_id in (None, ""):
        raise UserError("select a segment in the table first")
    try:
        record = ctx.store.get(int(item_id))
    except (TypeError, ValueError):
        raise UserError(f"not a review item id: {item_id!r}") from None
    if record is None:
        raise UserError("this segment is no longer in the queue: refresh")
    return record


def item_markdown(record: ReviewRecord) -> str:
    """One line describing a review item and its current decision."""
    label = record.final_label if record.status == "relabelled" else f"{record.label} ({record.confidence:.2f})"
    who = f" by {record.reviewer}" if record.status != "pending" and record.reviewer else ""
    return (f"**#{record.id} · {record.video}** {record.start_s:.1f}-{record.end_s:.1f} s · "
            f"{label} · **{record.status}**{who}")


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def history_markdown(entries: list[HistoryEntry] | tuple[HistoryEntry, ...] | None) -> str:
    """A segment's decisions, oldest first, as a markdown table (who, when, what)."""
    if not entries:
        return "_No decision yet._"
    lines = ["| when (UTC) | reviewer | action | from → to | class | note |", "|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e.at:%Y-%m-%d %H:%M:%S} | {_cell(e.reviewer)} | {e.action} | "
                     f"{e.from_status} → {e.to_status} | {_cell(e.label)} | {_cell(e.note)} |")
    return "\n".join(lines)


def decide(ctx: AppContext, item_id: int | None, action: str, new_label: str = "",
           note: str = "", reviewer: str = "") -> ReviewRecord:
    """Confirm, dismiss, relabel (with `new_label`) or reset one review item, with a note, as
    `reviewer` (empty: anonymous). Returns the item with its history."""
    if item_id in (None, ""):
        raise UserError("select a segment in the table first")
    if action not in REVIEW_ACTIONS:
        raise UserError(f"unknown review action {action!r}; use one of {', '.join(REVIEW_ACTIONS)}")
    try:
        item = int(item_id)
    except (TypeError, ValueError):
        raise UserError(f"not a review item id: {item_id!r}") from None
    return ctx.store.decide(item, REVIEW_ACTIONS[action], new_label=new_label, note=note,
                            reviewer=reviewer)


# ---------------------------------------------------------------------------------------------
# bulk decisions: preview, then apply

def bulk_preview(ctx: AppContext, filters: QueueFilter, action: str, new_label: str = "") -> BulkPreview:
    """What deciding `action` on the whole filtered set would change (step 1 of 2)."""
    if action not in REVIEW_ACTIONS:
        raise UserError(f"unknown review action {action!r}; use one of {', '.join(REVIEW_ACTIONS)}")
    return ctx.store.preview_bulk(filters, REVIEW_ACTIONS[action], new_label=new_label or None)


def bulk_markdown(preview: BulkPreview) -> str:
    """The confirmation text of a bulk preview: the count and a sample."""
    target = f"relabelled to {preview.new_label!r}" if preview.status == "relabelled" else preview.status
    if not preview.count:
        return f"Nothing to change: no segment of the filtered set would become {target}."
    sample = "\n".join(f"- {item_markdown(r)}" for r in preview.sample)
    more = f"\n- … and {preview.count - len(preview.sample)} more" if preview.count > len(preview.sample) else ""
    return (f"**{preview.count} segment{'s' if preview.count != 1 else ''} will become {target}.** "
            f"Press *Apply* to confirm, or change the filter.\n\n{sample}{more}")


def bulk_apply(ctx: AppContext, filters: QueueFilter, preview: BulkPreview | None, reviewer: str = "",
               note: str = "") -> int:
    """Apply a previewed bulk decision to the same filtered set (step 2 of 2). `BulkChanged`
    (a UserError: "selection changed, preview again") when the set changed since the preview."""
    if preview is None:
        raise UserError("preview the bulk action first")
    if not preview.count:
        raise UserError("the previewed selection is empty: nothing to apply")
    return ctx.store.apply_bulk(filters, preview.status, reviewer, expected_count=preview.count,
                                new_label=preview.new_label, note=note, expected_digest=preview.digest)


# ---------------------------------------------------------------------------------------------
# exports

def export_reviews(ctx: AppContext, fmt: str, filters: QueueFilter | None = None,
                   session: Session | None = None, out_dir: Path | None = None) -> Path:
    """Write the (filtered) review queue with every segment's history as a CSV or JSON file for
    download, into `out_dir` (e.g. the session's temp folder; default a fresh temp folder)."""
    if isinstance(filters, str):                     # a status name, as older callers pass it
        filters = queue_filter(status=filters)
    try:
        return export.export_reviews_file(ctx.store, fmt, out_dir=out_dir, filters=filters,
                                          analysis=session.scores if session else None)
    except ValueError as e:
        raise UserError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# reviews become training data

def fine_tune_on_reviews(ctx: AppContext, init_key: str, preset: str, holdout: float = 0.3,
                         batch_size: int | float | None = None, max_steps: int | float | None = None,
                         on_progress=None) -> ReviewFineTune:
    """Fine-tune the VadCLIP checkpoint `init_key` on this app's reviewed videos whose features
    are in its feature cache (`vadclip.reviews_dataset`), into a new run folder in the models
    folder (so it joins the model choice); returns the held-out metrics before and after."""
    if not init_key or init_key == ZERO_SHOT:
        raise UserError("choose a VadCLIP checkpoint to start from (zero-shot cannot be fine-tuned)")
    out = new_run_folder(ctx.config.models_dir, preset, method="reviews")
    options = {}
    if batch_size:
        options["batch_size"] = int(batch_size)
    if max_steps:
        options["max_steps"] = int(max_steps)
    return fine_tune_from_reviews(ctx.config.database_url, init_key, out, cache_dir=ctx.config.cache_dir, preset=preset,
                                  holdout=float(holdout), device=ctx.device, on_progress=on_progress, **options)


def fine_tune_markdown(result: ReviewFineTune) -> str:
    """The before / after table of a fine-tune from reviews."""
    m = [("before (the starting checkpoint)", result.before), ("after fine-tuning", result.after)]
    rows = "\n".join(f"| {name} | {r['auc_c']:.4f} | {r['ap_c']:.4f} | {r['auc_a']:.4f} | {r['ap_a']:.4f} |"
                     for name, r in m)
    return (f"**{result.dataset.summary()}**; {result.steps} steps → `{result.checkpoint.parent.name}` "
            f"(now in the model choice).\n\n| held-out reviewed videos | AUC (C) | AP (C) | AUC (A) | AP (A) |\n"
            f"|---|---|---|---|---|\n{rows}")
