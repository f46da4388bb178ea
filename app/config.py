"""The app's settings, read once from environment variables (or CLI flags) into `AppConfig`.

| variable | default | what |
|---|---|---|
| `VADCLIP_MODELS_DIR` | `./models` | checkpoints offered in the model choice; training runs are written here |
| `VADCLIP_DATA_DIR` | `./data` | the app's own files: review database, feature cache, exports |
| `VADCLIP_DATA_ROOT` | `$VADCLIP_DATA_DIR` | where the Train tab looks for feature lists (`*.csv`) and annotations |
| `VADCLIP_DB_URL` | `sqlite:///$VADCLIP_DATA_DIR/reviews.sqlite` | any SQLAlchemy database URL for review decisions |
| `VADCLIP_CLIP` | `openai` | CLIP for zero-shot scoring (`openai`, `random`, a file, or `NAME:TAG`) |
| `VADCLIP_DEVICE` | `auto` | `auto` (GPU when present), `cpu`, `cuda`, `cuda:1`, ... |
| `VADCLIP_MAX_UPLOAD_MB` | `200` | largest upload accepted |
| `VADCLIP_MAX_VIDEO_S` | `600` | longest video analysed, in seconds |
| `VADCLIP_CONCURRENCY` | `1` | analyses / trainings running at once (they share the GPU) |
| `VADCLIP_QUEUE_SIZE` | `16` | requests waiting in the queue before new ones are refused |
| `VADCLIP_CACHE_MB` | `2048` | disk space of the feature cache (least recently used entries go first) |
| `VADCLIP_TEMP_MAX_AGE_MIN` | `60` | per-session temporary files (clips, exports) older than this are swept |
| `VADCLIP_AUTH` | (none) | logins `user:password`, several separated by spaces (`--auth`, repeatable); the login names the reviewer |
| `VADCLIP_ALERT_URL` | (none) | webhook receiving a JSON POST per flagged segment at or above the alert score (off when empty) |
| `VADCLIP_ALERT_MIN_SCORE` | `0.8` | peak anomaly score that triggers an alert |
| `VADCLIP_ALERT_TIMEOUT_S` | `5` | timeout of one delivery attempt |
| `VADCLIP_ALERT_ATTEMPTS` | `4` | attempts per alert (retries back off exponentially) |
| `VADCLIP_APP_URL` | (none) | the app's public address, for the link in each alert |
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from vadclip.errors import UserError

from .alerts import AlertSettings
from .reviewers import parse_auth

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class AppConfig:
    """Everything the app needs to know about its environment."""

    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    data_root: Path | None = None          # None: data_dir
    db_url: str | None = None              # None: SQLite file in data_dir
    clip: str = "openai"
    device: str = "auto"
    max_upload_mb: float = 200.0
    max_video_s: float = 600.0
    concurrency: int = 1
    queue_size: int = 16
    cache_mb: float = 2048.0
    temp_max_age_min: float = 60.0
    auth: tuple[tuple[str, str], ...] = ()             # (user, password) logins; empty: no login
    alerts: AlertSettings = field(default_factory=AlertSettings)
    assets_dir: Path = field(default=ASSETS_DIR)

    def __post_init__(self):
        if self.max_upload_mb <= 0 or self.max_video_s <= 0:
            raise ValueError("upload and duration limits must be positive")
        if self.concurrency < 1 or self.queue_size < 1:
            raise ValueError("concurrency and queue size must be at least 1")
        if self.cache_mb < 0 or self.temp_max_age_min <= 0:
            raise ValueError("the cache size must be >= 0 and the temp file age limit positive")

    @property
    def training_root(self) -> Path:
        """Folder scanned for feature lists and annotation files."""
        return self.data_root if self.data_root is not None else self.data_dir

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'reviews.sqlite').resolve()}"

    @property
    def cache_bytes(self) -> int:
        return int(self.cache_mb * 1024**2)

    @property
    def cache_dir(self) -> Path:
        """Feature cache (features of uploaded videos, keyed by content hash)."""
        return self.data_dir / "feature_cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AppConfig":
        """Settings from `VADCLIP_*` environment variables (see the module docstring)."""
        env = os.environ if env is None else env
        get = env.get
        root = get("VADCLIP_DATA_ROOT")
        try:
            return cls(
                models_dir=Path(get("VADCLIP_MODELS_DIR", "models")),
                data_dir=Path(get("VADCLIP_DATA_DIR", "data")),
                data_root=Path(root) if root else None,
                db_url=get("VADCLIP_DB_URL") or None,
                clip=get("VADCLIP_CLIP", "openai"),
                device=get("VADCLIP_DEVICE", "auto"),
                max_upload_mb=float(get("VADCLIP_MAX_UPLOAD_MB", 200)),
                max_video_s=float(get("VADCLIP_MAX_VIDEO_S", 600)),
                concurrency=int(get("VADCLIP_CONCURRENCY", 1)),
                queue_size=int(get("VADCLIP_QUEUE_SIZE", 16)),
                cache_mb=float(get("VADCLIP_CACHE_MB", 2048)),
                temp_max_age_min=float(get("VADCLIP_TEMP_MAX_AGE_MIN", 60)),
                auth=tuple(parse_auth(get("VADCLIP_AUTH", "").split())),
                alerts=AlertSettings.from_env(env),
            )
        except UserError as e:
            raise ValueError(f"bad VADCLIP_* environment variable: {e}") from None
        except ValueError as e:
            raise ValueError(f"bad VADCLIP_* environment variable: {e}") from None

    def with_args(self, args: argparse.Namespace) -> "AppConfig":
        """These settings overridden by the CLI flags that were given (see `add_arguments`)."""
        given = {f.name: getattr(args, f.name) for f in fields(self)
                 if getattr(args, f.name, None) is not None}
        if "auth" in given:
            try:
                given["auth"] = tuple(parse_auth(given["auth"]))
            except UserError as e:
                raise ValueError(str(e)) from None
        for name in ("models_dir", "data_dir", "data_root"):
            if name in given:
                given[name] = Path(given[name])
        return replace(self, **given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags mirroring the environment variables (a flag wins over its variable)."""
    parser.add_argument("--models-dir", dest="models_dir", help="checkpoints folder (VADCLIP_MODELS_DIR)")
    parser.add_argument("--data-dir", dest="data_dir", help="app data folder (VADCLIP_DATA_DIR)")
    parser.add_argument("--data-root", dest="data_root", help="feature lists for training (VADCLIP_DATA_ROOT)")
    parser.add_argument("--db-url", dest="db_url", help="SQLAlchemy URL for reviews (VADCLIP_DB_URL)")
    parser.add_argument("--clip", help="CLIP for zero-shot: openai, random, a file, NAME:TAG (VADCLIP_CLIP)")
    parser.add_argument("--device", help="auto, cpu, cuda, ... (VADCLIP_DEVICE)")
    parser.add_argument("--max-upload-mb", dest="max_upload_mb", type=float, help="(VADCLIP_MAX_UPLOAD_MB)")
    parser.add_argument("--max-video-s", dest="max_video_s", type=float, help="(VADCLIP_MAX_VIDEO_S)")
    parser.add_argument("--concurrency", type=int, help="(VADCLIP_CONCURRENCY)")
    parser.add_argument("--queue-size", dest="queue_size", type=int, help="(VADCLIP_QUEUE_SIZE)")
    parser.add_argument("--cache-mb", dest="cache_mb", type=float, help="(VADCLIP_CACHE_MB)")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="require a login; repeat for several moderators (VADCLIP_AUTH)")
    parser.add_argument("--temp-max-age-min", dest="temp_max_age_min", type=float,
                        help="(VADCLIP_TEMP_MAX_AGE_MIN)")
