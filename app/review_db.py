"""Moderators' review decisions, stored with SQLAlchemy (SQLite file by default, any URL works;
PostgreSQL is tested).

Two tables:
- `review_items`: each segment flagged by an analysis, keyed by (video content hash, start frame,
  end frame, label), with its scores and thumbnail.
- `review_history`: every decision (who, when in UTC, action, from-status, to-status, resulting
  label, note), appended and never rewritten.

An item's current decision is its latest history row (highest id; none: pending). The columns
`status`, `new_label`, `note`, `reviewer` and `decided_at` of `review_items` are a cache of that
row, so the queue can filter and sort with indexes: they are written only in the transaction that
appends the row (`decide`, `apply_bulk`, the migration backfill), and `status_cache_mismatches`
checks that they agree.

Concurrency: a decision is one transaction that first locks its item (PostgreSQL: `SELECT ... FOR
UPDATE`; SQLite: `BEGIN IMMEDIATE`, the database's write lock). Two decisions on one item at once
are therefore serialised: both are appended, the second one's from-status is the first one's
to-status, and the later one wins the status.

Re-analysing a video with other settings replaces its never-decided items with the new segments;
items with any history (even reset to pending) are kept, so no decision is ever lost.

Opening an older database (a `review_items` table only) adds the history table and the indexes
and backfills one `migrated` history row per already-decided item.
"""
from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        Text, UniqueConstraint, create_engine, event, func, insert, literal,
                        or_, select, text, update)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.schema import CreateIndex

from vadclip.errors import UserError
from vadclip.results import DetectedSegment, VideoScores

from .reviewers import ANONYMOUS, normalize_reviewer

STATUSES = ("pending", "confirmed", "dismissed", "relabelled")
ACTIONS = {"confirmed": "confirm", "dismissed": "dismiss", "relabelled": "relabel", "pending": "reset"}
MIGRATED = "migrated"             # the history action of decisions made before history existed
SORT_KEYS = ("score", "time", "flagged", "decided")
MAX_PAGE = 1000
_CHUNK = 500                      # ids per IN (...) list in bulk statements
_MIGRATION_LOCK = 7_262_014       # PostgreSQL advisory lock key: one process migrates at a time


class Base(DeclarativeBase):
    pass


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("content_hash", "start_frame", "end_frame", "label", name="uq_review_segment"),
        Index("ix_review_status_score", "status", "peak_score"),
        Index("ix_review_score", "peak_score"),
        Index("ix_review_position", "video", "content_hash", "start_s"),
        Index("ix_review_reviewer", "reviewer"),
        Index("ix_review_created", "created_at"),
        Index("ix_review_decided", "decided_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    video: Mapped[str] = mapped_column(String(512))
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(256))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    peak_score: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(Text, default="")
    random_weights: Mapped[bool] = mapped_column(Boolean, default=False)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)   # small JPEG
    # the cache of the latest history row (see the module docstring)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    new_label: Mapped[str | None] = mapped_column(String(256), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


FINAL_LABEL = func.coalesce(ReviewItem.new_label, ReviewItem.label)   # new_label is set only when relabelled
Index("ix_review_final_label", FINAL_LABEL)


class ReviewHistory(Base):
    __tablename__ = "review_history"
    __table_args__ = (Index("ix_history_item", "item_id", "id"),
                      Index("ix_history_reviewer", "reviewer"),
                      Index("ix_history_at", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(256))          # the item's class after the decision
    note: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class HistoryEntry:
    """One decision on one item, as appended to the history."""

    id: int
    item_id: int
    at: datetime
    reviewer: str
    action: str
    from_status: str
    to_status: str
    label: str
    note: str

    def to_dict(self) -> dict:
        """The exported form: `{at, reviewer, action, from_status, to_status, label, note}`."""
        return {"at": self.at.isoformat(), "reviewer": self.reviewer, "action": self.action,
                "from_status": self.from_status, "to_status": self.to_status, "label": self.label,
                "note": self.note}


@dataclass(frozen=True)
class ReviewRecord:
    """A read-only copy of one review item (no database session attached). `history` is the
    item's decisions, oldest first, or None where it was not loaded (queue pages)."""

    id: int
    content_hash: str
    video: str
    start_frame: int
    end_frame: int
    label: str
    start_s: float
    end_s: float
    confidence: float
    peak_score: float
    model: str
    random_weights: bool
    thumbnail: bytes | None
    status: str
    new_label: str | None
    note: str
    reviewer: str
    created_at: datetime
    decided_at: datetime | None
    history: tuple[HistoryEntry, ...] | None = None

    @property
    def final_label(self) -> str:
        """The label after review: the new one when relabelled."""
        return self.new_label if self.status == "relabelled" and self.new_label else self.label


@dataclass(frozen=True)
class QueueFilter:
    """Which review items to show or act on; every field left at None matches everything.

    `label` matches the final class (the new one when relabelled); `min_score`/`max_score` bound
    the segment's peak anomaly score (inclusive); `reviewer` is who made the current decision;
    `status` is one status or several."""

    content_hash: str | None = None
    video: str | None = None
    label: str | None = None
    status: str | tuple[str, ...] | None = None
    min_score: float | None = None
    max_score: float | None = None
    reviewer: str | None = None

    def __post_init__(self) -> None:
        statuses = (self.status,) if isinstance(self.status, str) else tuple(self.status or ())
        for status in statuses:
            if status not in STATUSES:
                raise UserError(f"unknown review status {status!r}; use one of {', '.join(STATUSES)}")
        object.__setattr__(self, "status", statuses or None)
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise UserError(f"{name} must be a number, not {value!r}") from None
                if value != value:
                    raise UserError(f"{name} must be a number, not NaN")
                object.__setattr__(self, name, value)
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise UserError(f"the score range is empty: min {self.min_score} > max {self.max_score}")
        for name in ("content_hash", "video", "label", "reviewer"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value.strip() or None) if isinstance(value, str) else value)

    def clauses(self) -> list:
        """The SQL conditions on `review_items`."""
        where = []
        if self.content_hash:
            where.append(ReviewItem.content_hash == self.content_hash)
        if self.video:
            where.append(ReviewItem.video == self.video)
        if self.label:
            where.append(FINAL_LABEL == self.label)
        if self.status:
            where.append(ReviewItem.status.in_(self.status))
        if self.min_score is not None:
            where.append(ReviewItem.peak_score >= self.min_score)
        if self.max_score is not None:
            where.append(ReviewItem.peak_score <= self.max_score)
        if self.reviewer:
            where.append(ReviewItem.reviewer == self.reviewer)
        return where


@dataclass(frozen=True)
class QueuePage:
    """One page of the review queue and the size of the whole filtered queue."""

    records: list[ReviewRecord]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class BulkPreview:
    """What `apply_bulk` would change: `count` items (a `sample` of them, highest scores first).
    Items already in the target state are not part of the set. `digest` fingerprints the set (ids
    and current decisions) for `apply_bulk(expected_digest=...)`."""

    status: str
    new_label: str | None
    count: int
    sample: list[ReviewRecord] = field(default_factory=list)
    digest: str = ""


class BulkChanged(UserError):
    """The filtered set changed between `preview_bulk` and `apply_bulk`."""


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back (we store UTC), PostgreSQL the session's zone."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _entry(row) -> HistoryEntry:
    return HistoryEntry(id=row.id, item_id=row.item_id, at=_utc(row.at), reviewer=row.reviewer,
                        action=row.action, from_status=row.from_status, to_status=row.to_status,
                        label=row.label, note=row.note or "")


_ITEM_FIELDS = [name for name in ReviewRecord.__dataclass_fields__ if name != "history"]


def _record(item: ReviewItem, history: Sequence[HistoryEntry] | None = None) -> ReviewRecord:
    values = {name: getattr(item, name) for name in _ITEM_FIELDS}
    values["created_at"], values["decided_at"] = _utc(item.created_at), _utc(item.decided_at)
    return ReviewRecord(**values, history=None if history is None else tuple(history))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None          # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock when their transaction starts (BEGIN IMMEDIATE), so what
    they read before writing cannot change under them; readers begin a plain snapshot."""
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


def _check_decision(status: str, new_label: str | None) -> str | None:
    if status not in STATUSES:
        raise UserError(f"unknown review status {status!r}; use one of {', '.join(STATUSES)}")
    new_label = (new_label or "").strip() or None
    if status == "relabelled" and not new_label:
        raise UserError("relabelling needs the new class name")
    return new_label if status == "relabelled" else None


def _digest(rows: Iterable) -> str:
    h = hashlib.sha256()
    for item_id, status, new_label in rows:
        h.update(f"{item_id}:{status}:{new_label or ''};".encode())
    return h.hexdigest()


def _chunks(ids: list[int], size: int = _CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


class ReviewStore:
    """Review items and their history in the database at `url` (tables created or migrated on
    first use). Several stores (processes) may share one database."""

    def __init__(self, url: str):
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self.url = parsed.render_as_string(hide_password=True)
        try:
            self._migrate()
        except Exception:
            self.engine.dispose()
            raise

    # ----------------------------------------------------------------------------- schema

    def _migrate(self) -> None:
        """Create missing tables and indexes; backfill history for decisions made before it."""
        with self._writer.begin() as conn:
            if self.backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            Base.metadata.create_all(conn)
            for index in ReviewItem.__table__.indexes:          # tables made by older versions
                conn.execute(CreateIndex(index, if_not_exists=True))
            undocumented = select(ReviewItem).where(
                ReviewItem.status != "pending",
                ~select(ReviewHistory.id).where(ReviewHistory.item_id == ReviewItem.id).exists())
            rows = [{"item_id": item.id, "at": item.decided_at or item.created_at,
                     "reviewer": (item.reviewer or "").strip() or ANONYMOUS, "action": MIGRATED,
                     "from_status": "pending", "to_status": item.status,
                     "label": item.new_label if item.status == "relabelled" and item.new_label
                     else item.label, "note": item.note or ""}
                    for item in conn.execute(undocumented)]
            if rows:
                conn.execute(insert(ReviewHistory), rows)

    # ----------------------------------------------------------------------------- analyses

    def sync_segments(self, scores: VideoScores,
                      thumbnails: dict[int, bytes] | None = None) -> list[ReviewRecord]:
        """Make the video's queue match `scores.segments`; return their items in segment order.

        New segments become pending items; pending items of this video that the new analysis no
        longer flags are removed unless someone ever decided them; decided items are never touched.
        """
        thumbnails = thumbnails or {}
        keys = [(s.start_frame, s.end_frame, s.label) for s in scores.segments]
        with Session(self._writer) as db, db.begin():
            if self.backend == "postgresql":        # two processes analysing one video at once
                db.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:h, 0))"),
                           {"h": scores.content_hash})
            of_video = ReviewItem.content_hash == scores.content_hash
            existing = {(i.start_frame, i.end_frame, i.label): i for i in db.scalars(
                select(ReviewItem).where(of_video).order_by(ReviewItem.id).with_for_update())}
            reviewed = set(db.scalars(select(ReviewHistory.item_id).join(ReviewItem).where(of_video)))
            for key, item in existing.items():
                if key not in keys and item.status == "pending" and item.id not in reviewed:
                    db.delete(item)
            items = []
            for n, (key, seg) in enumerate(zip(keys, scores.segments)):
                item = existing.get(key)
                if item is None:
                    item = ReviewItem(content_hash=scores.content_hash, created_at=_now(),
                                      status="pending", note="", reviewer="",
                                      start_frame=seg.start_frame, end_frame=seg.end_frame,
                                      label=seg.label)
                    db.add(item)
                if item.status == "pending" or item.thumbnail is None:
                    _fill(item, scores, seg, thumbnails.get(n))
                items.append(item)
            db.flush()
            history = self._history(db, ReviewHistory.item_id.in_([i.id for i in items]))
            return [_record(i, history.get(i.id, ())) for i in items]

    # ----------------------------------------------------------------------------- decisions

    def decide(self, item_id: int, status: str, new_label: str | None = None, note: str = "",
               reviewer: str = "") -> ReviewRecord:
        """Record a moderator's decision on one item (appended to its history; the later of two
        simultaneous decisions wins). `reviewer` empty: anonymous. UserError for an impossible
        decision. Returns the item with its history."""
        new_label = _check_decision(status, new_label)
        who = normalize_reviewer(reviewer)
        try:
            item_id = operator.index(item_id)
        except TypeError:
            raise UserError(f"a review item id is a whole number, not {item_id!r}") from None
        with Session(self._writer) as db, db.begin():
            item = db.scalars(select(ReviewItem).where(ReviewItem.id == item_id)
                              .with_for_update()).one_or_none()
            if item is None:
                raise UserError(f"review item {item_id} does not exist (was the video re-analysed?)")
            if status == "relabelled" and new_label == item.label:
                raise UserError(f"the segment is already labelled {new_label!r}; choose another class")
            at = _now()
            db.add(ReviewHistory(item_id=item.id, at=at, reviewer=who, action=ACTIONS[status],
                                 from_status=item.status, to_status=status,
                                 label=new_label or item.label, note=(note or "").strip()))
            item.status, item.new_label = status, new_label
            item.note, item.reviewer = (note or "").strip(), who
            item.decided_at = None if status == "pending" else at
            db.flush()
            history = self._history(db, ReviewHistory.item_id == item.id)
            return _record(item, history.get(item.id, ()))

    def preview_bulk(self, filters: QueueFilter | None, status: str, new_label: str | None = None,
                     sample: int = 5) -> BulkPreview:
        """How many items of the filtered set a bulk decision would change, with a sample (step
        one of a bulk action; step two is `apply_bulk` with the count)."""
        new_label = _check_decision(status, new_label)
        where = self._bulk_clauses(filters, status, new_label)
        with Session(self.engine) as db:
            rows = db.execute(select(ReviewItem.id, ReviewItem.status, ReviewItem.new_label)
                              .where(*where).order_by(ReviewItem.id)).all()
            shown = db.scalars(select(ReviewItem).where(*where).order_by(
                ReviewItem.peak_score.desc(), ReviewItem.id).limit(max(0, sample))).all()
            return BulkPreview(status=status, new_label=new_label, count=len(rows),
                               sample=[_record(i) for i in shown], digest=_digest(rows))

    def apply_bulk(self, filters: QueueFilter | None, status: str, reviewer: str, expected_count: int,
                   new_label: str | None = None, note: str = "",
                   expected_digest: str | None = None) -> int:
        """Decide every item of the filtered set at once (one transaction, one history row per
        item). BulkChanged, and nothing written, when the set no longer has `expected_count` items
        (or, when given, `expected_digest`) as shown by `preview_bulk`. Returns the items changed."""
        new_label = _check_decision(status, new_label)
        who = normalize_reviewer(reviewer)
        note = (note or "").strip()
        where = self._bulk_clauses(filters, status, new_label)
        with Session(self._writer) as db, db.begin():
            rows = db.execute(select(ReviewItem.id, ReviewItem.status, ReviewItem.new_label)
                              .where(*where).order_by(ReviewItem.id).with_for_update()).all()
            if len(rows) != expected_count or (expected_digest and _digest(rows) != expected_digest):
                raise BulkChanged(f"the selection changed since it was previewed ({expected_count} "
                                  f"items then, {len(rows)} now): preview the bulk action again")
            at = _now()
            label = literal(new_label, String) if new_label else ReviewItem.label
            columns = ["item_id", "at", "reviewer", "action", "from_status", "to_status", "label", "note"]
            for ids in _chunks([r.id for r in rows]):
                db.execute(insert(ReviewHistory).from_select(columns, select(
                    ReviewItem.id, literal(at, DateTime(timezone=True)), literal(who, String),
                    literal(f"bulk {ACTIONS[status]}", String), ReviewItem.status,
                    literal(status, String), label, literal(note, Text),
                ).where(ReviewItem.id.in_(ids)).order_by(ReviewItem.id)))
                db.execute(update(ReviewItem).where(ReviewItem.id.in_(ids)).values(
                    status=status, new_label=new_label, note=note, reviewer=who,
                    decided_at=None if status == "pending" else at))
            return len(rows)

    @staticmethod
    def _bulk_clauses(filters: QueueFilter | None, status: str, new_label: str | None) -> list:
        """The filter, less the items a bulk decision would not change (already in that state,
        or relabelled to their own class)."""
        where = (filters or QueueFilter()).clauses()
        if status == "relabelled":
            where += [ReviewItem.label != new_label,
                      or_(ReviewItem.status != "relabelled", ReviewItem.new_label != new_label)]
        else:
            where.append(ReviewItem.status != status)
        return where

    # ----------------------------------------------------------------------------- reading

    def get(self, item_id: int) -> ReviewRecord | None:
        """One item with its history, or None."""
        with Session(self.engine) as db:
            item = db.get(ReviewItem, item_id)
            if item is None:
                return None
            return _record(item, self._history(db, ReviewHistory.item_id == item_id).get(item_id, ()))

    def history(self, item_id: int) -> list[HistoryEntry]:
        """The item's decisions, oldest first (empty for an unknown item)."""
        with Session(self.engine) as db:
            return list(self._history(db, ReviewHistory.item_id == item_id).get(item_id, ()))

    def items(self, content_hash: str | None = None, status: str | None = None,
              with_history: bool = True) -> list[ReviewRecord]:
        """Items, optionally of one video and/or one status, by video then time."""
        return self.records(QueueFilter(content_hash=content_hash, status=status or None),
                            sort="time", with_history=with_history)

    def records(self, filters: QueueFilter | None = None, sort: str = "time", descending: bool = False,
                with_history: bool = True) -> list[ReviewRecord]:
        """Every item matching `filters` (e.g. for an export), with their histories."""
        where = (filters or QueueFilter()).clauses()
        with Session(self.engine) as db:
            items = db.scalars(select(ReviewItem).where(*where).order_by(*_order(sort, descending))).all()
            if not with_history:
                return [_record(i) for i in items]
            history = self._history(db, ReviewHistory.item_id.in_(select(ReviewItem.id).where(*where)))
            return [_record(i, history.get(i.id, ())) for i in items]

    def query(self, filters: QueueFilter | None = None, sort: str = "score", descending: bool = True,
              offset: int = 0, limit: int = 50, with_history: bool = False) -> QueuePage:
        """One page of the filtered queue, sorted by `sort` (one of SORT_KEYS: peak score, position
        in the video, time flagged, time decided; ties by id), and the filtered total."""
        if not 1 <= limit <= MAX_PAGE:
            raise UserError(f"a page holds 1 to {MAX_PAGE} items, not {limit}")
        if offset < 0:
            raise UserError(f"the page offset cannot be negative ({offset})")
        where = (filters or QueueFilter()).clauses()
        with Session(self.engine) as db:
            total = db.scalar(select(func.count()).select_from(ReviewItem).where(*where))
            items = db.scalars(select(ReviewItem).where(*where).order_by(*_order(sort, descending))
                               .offset(offset).limit(limit)).all()
            history = (self._history(db, ReviewHistory.item_id.in_([i.id for i in items]))
                       if with_history and items else None)
            return QueuePage(records=[_record(i, None if history is None else history.get(i.id, ()))
                                      for i in items], total=int(total), offset=offset, limit=limit)

    def videos(self) -> list[tuple[str, str, int]]:
        """(content hash, video name, items) of every video in the queue, by name (for a filter)."""
        with Session(self.engine) as db:
            rows = db.execute(select(ReviewItem.content_hash, func.max(ReviewItem.video), func.count())
                              .group_by(ReviewItem.content_hash)).all()
        return sorted(((h, v, int(n)) for h, v, n in rows), key=lambda r: (r[1], r[0]))

    def labels(self) -> list[str]:
        """The final classes present in the queue (for a filter)."""
        with Session(self.engine) as db:
            return list(db.scalars(select(FINAL_LABEL).distinct().order_by(FINAL_LABEL)))

    def reviewers(self) -> list[str]:
        """Everyone who ever decided something (for a filter)."""
        with Session(self.engine) as db:
            return list(db.scalars(select(ReviewHistory.reviewer).distinct().order_by(ReviewHistory.reviewer)))

    def status_cache_mismatches(self) -> list[int]:
        """Ids of items whose cached status/label disagree with their latest history row (none
        while the invariant holds; a row-less item must be pending)."""
        latest = (select(ReviewHistory.item_id, func.max(ReviewHistory.id).label("last"))
                  .group_by(ReviewHistory.item_id).subquery())
        query = (select(ReviewItem.id, ReviewItem.status, FINAL_LABEL, ReviewHistory.to_status,
                        ReviewHistory.label)
                 .outerjoin(latest, latest.c.item_id == ReviewItem.id)
                 .outerjoin(ReviewHistory, ReviewHistory.id == latest.c.last))
        with Session(self.engine) as db:
            return [item_id for item_id, status, label, to_status, history_label in db.execute(query)
                    if status != (to_status or "pending") or (to_status and label != history_label)]

    @staticmethod
    def _history(db: Session, where) -> dict[int, list[HistoryEntry]]:
        found: dict[int, list[HistoryEntry]] = {}
        table = ReviewHistory.__table__                  # plain rows: thousands per export
        for row in db.execute(select(table).where(where).order_by(table.c.item_id, table.c.id)):
            found.setdefault(row.item_id, []).append(_entry(row))
        return found

    def close(self) -> None:
        self.engine.dispose()


def _order(sort: str, descending: bool) -> list:
    keys = {"score": [ReviewItem.peak_score],
            "time": [ReviewItem.video, ReviewItem.content_hash, ReviewItem.start_s, ReviewItem.label],
            "flagged": [ReviewItem.created_at],
            "decided": [ReviewItem.decided_at]}
    if sort not in keys:
        raise UserError(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)}")
    columns = keys[sort] + [ReviewItem.id]
    ordered = [c.desc() if descending else c.asc() for c in columns]
    if sort == "decided":                      # undecided items last either way, on every backend
        ordered[0] = ordered[0].nulls_last()
    return ordered


def _fill(item: ReviewItem, scores: VideoScores, seg: DetectedSegment, thumbnail: bytes | None) -> None:
    item.video = scores.video
    item.start_s, item.end_s = float(seg.start_s), float(seg.end_s)
    item.confidence, item.peak_score = float(seg.confidence), float(seg.peak_score)
    item.model = scores.model
    item.random_weights = bool(scores.random_weights)
    if thumbnail is not None:
        item.thumbnail = thumbnail
