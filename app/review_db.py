"""Moderators' review decisions, stored with SQLAlchemy (SQLite file by default, any URL works).

One table, `review_items`: each segment flagged by an analysis, keyed by (video content hash,
start frame, end frame, label), with its moderator decision. Re-analysing a video with other
settings replaces its undecided (pending) items with the new segments; decided items are kept
whatever happens, so a decision survives re-analysis, page reloads and restarts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (Boolean, DateTime, Float, Integer, LargeBinary, String, Text,
                        UniqueConstraint, create_engine, event, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vadclip.errors import UserError
from vadclip.results import DetectedSegment, VideoScores

STATUSES = ("pending", "confirmed", "dismissed", "relabelled")


class Base(DeclarativeBase):
    pass


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = (UniqueConstraint("content_hash", "start_frame", "end_frame", "label",
                                       name="uq_review_segment"),)

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
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    new_label: Mapped[str | None] = mapped_column(String(256), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class ReviewRecord:
    """A read-only copy of one review item (no database session attached)."""

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

    @property
    def final_label(self) -> str:
        """The label after review: the new one when relabelled."""
        return self.new_label if self.status == "relabelled" and self.new_label else self.label


def _record(item: ReviewItem) -> ReviewRecord:
    return ReviewRecord(**{name: getattr(item, name) for name in ReviewRecord.__dataclass_fields__})


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class ReviewStore:
    """Review items in the database at `url` (tables created on first use)."""

    def __init__(self, url: str):
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.url = parsed.render_as_string(hide_password=True)

    def sync_segments(self, scores: VideoScores,
                      thumbnails: dict[int, bytes] | None = None) -> list[ReviewRecord]:
        """Make the video's queue match `scores.segments`; return their items in segment order.

        New segments become pending items; pending items of this video that the new analysis no
        longer flags are removed; decided items are never touched.
        """
        thumbnails = thumbnails or {}
        keys = [(s.start_frame, s.end_frame, s.label) for s in scores.segments]
        with Session(self.engine) as db, db.begin():
            existing = {(i.start_frame, i.end_frame, i.label): i for i in db.scalars(
                select(ReviewItem).where(ReviewItem.content_hash == scores.content_hash))}
            for key, item in existing.items():
                if key not in keys and item.status == "pending":
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
            return [_record(i) for i in items]

    def decide(self, item_id: int, status: str, new_label: str | None = None, note: str = "",
               reviewer: str = "") -> ReviewRecord:
        """Record a moderator's decision on one item. UserError for an impossible decision."""
        if status not in STATUSES:
            raise UserError(f"unknown review status {status!r}; use one of {', '.join(STATUSES)}")
        new_label = (new_label or "").strip() or None
        if status == "relabelled" and not new_label:
            raise UserError("relabelling needs the new class name")
        with Session(self.engine) as db, db.begin():
            item = db.get(ReviewItem, item_id)
            if item is None:
                raise UserError(f"review item {item_id} does not exist (was the video re-analysed?)")
            if status == "relabelled" and new_label == item.label:
                raise UserError(f"the segment is already labelled {new_label!r}; choose another class")
            item.status = status
            item.new_label = new_label if status == "relabelled" else None
            item.note = (note or "").strip()
            item.reviewer = (reviewer or "").strip()
            item.decided_at = None if status == "pending" else _now()
            db.flush()
            return _record(item)

    def get(self, item_id: int) -> ReviewRecord | None:
        with Session(self.engine) as db:
            item = db.get(ReviewItem, item_id)
            return _record(item) if item is not None else None

    def items(self, content_hash: str | None = None, status: str | None = None) -> list[ReviewRecord]:
        """Items, optionally of one video and/or one status, by video then time."""
        query = select(ReviewItem).order_by(ReviewItem.video, ReviewItem.content_hash,
                                            ReviewItem.start_frame, ReviewItem.label)
        if content_hash:
            query = query.where(ReviewItem.content_hash == content_hash)
        if status:
            query = query.where(ReviewItem.status == status)
        with Session(self.engine) as db:
            return [_record(i) for i in db.scalars(query)]

    def close(self) -> None:
        self.engine.dispose()


def _fill(item: ReviewItem, scores: VideoScores, seg: DetectedSegment, thumbnail: bytes | None) -> None:
    item.video = scores.video
    item.start_s, item.end_s = float(seg.start_s), float(seg.end_s)
    item.confidence, item.peak_score = float(seg.confidence), float(seg.peak_score)
    item.model = scores.model
    item.random_weights = bool(scores.random_weights)
    if thumbnail is not None:
        item.thumbnail = thumbnail
