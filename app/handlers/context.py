"""What one running app shares between all its browser tabs: `AppContext`, and `SessionJobs`
(one long job per browser session at a time)."""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from vadclip.errors import UserError
from vadclip.features import FeatureCache
from vadclip.utils import resolve_device

from ..alerts import Alerter
from ..config import AppConfig
from ..models import ModelRegistry
from ..review_db import ReviewStore
from ..tempfiles import TempFiles, default_root
from ..training import Trainer


class SessionJobs:
    """Which sessions are running a long job: one job per session at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}

    @contextlib.contextmanager
    def hold(self, session_id: str | None, what: str) -> Iterator[None]:
        """Mark `session_id` busy with `what` while the block runs; UserError if it already is."""
        if session_id is None:
            yield
            return
        with self._lock:
            if session_id in self._running:
                raise UserError(f"this session is already running {self._running[session_id]}: "
                                f"wait for it to finish before starting {what}")
            self._running[session_id] = what
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(session_id, None)

    def running(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)


@dataclass
class AppContext:
    """What one running app shares between all its browser tabs (created by `build_demo`)."""

    config: AppConfig
    device: str
    registry: ModelRegistry
    store: ReviewStore
    cache: FeatureCache
    vocabularies: dict[str, list[str]]
    trainer: Trainer
    temp: TempFiles
    alerter: Alerter = field(default_factory=Alerter)        # webhook alerts (off by default)
    jobs: SessionJobs = field(default_factory=SessionJobs)

    @classmethod
    def create(cls, config: AppConfig) -> "AppContext":
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.models_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            device=resolve_device(config.device),
            registry=ModelRegistry(config.clip),
            store=ReviewStore(config.database_url),
            cache=FeatureCache(config.cache_dir, max_bytes=config.cache_bytes),
            vocabularies=load_vocabularies(config.assets_dir / "vocabularies.json"),
            trainer=Trainer(),
            temp=_start_temp(config),
            alerter=Alerter(config.alerts),
        )

    def close(self) -> None:
        self.trainer.cancel()
        self.alerter.close(wait=False)
        self.store.close()
        self.temp.sweep()

    def session_dir(self, session_id: str | None) -> Path:
        """A browser session's own temporary folder (old files of every session swept first)."""
        self.temp.sweep()
        return self.temp.session_dir(session_id)

    def end_session(self, session_id: str | None) -> None:
        """A browser session ended: delete its temporary files."""
        self.temp.remove(session_id)


def _start_temp(config: AppConfig) -> TempFiles:
    temp = TempFiles(default_root(config.data_dir), max_age_s=config.temp_max_age_min * 60)
    temp.sweep()                 # what a killed or crashed run left behind
    return temp


def load_vocabularies(path: Path) -> dict[str, list[str]]:
    """Preset vocabularies {name: [normal, anomaly classes...]} from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read the vocabularies file {path}: {e}") from None
    return {str(k): [str(n) for n in v] for k, v in data.items()}
