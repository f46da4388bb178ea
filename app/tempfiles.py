"""Per-session temporary files (segment clips, exports) with a bounded lifetime.

Every browser session writes its files into its own folder under one root in the system temp
dir (where Gradio may serve them from). A session's folder is removed when the session ends
(`gr.Blocks.unload`), and anything older than `max_age_s` is swept on each new request and at
start-up, so files of crashed or abandoned sessions do not pile up.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_root(data_dir: Path) -> Path:
    """A temp folder named after the app's data folder (stable across restarts, so a restarted
    app sweeps what a killed one left)."""
    digest = hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vadclip-app-{digest}"


class TempFiles:
    """Folders of temporary files, one per session id, under `root`."""

    def __init__(self, root: str | Path, max_age_s: float = 3600.0):
        self.root = Path(root)
        self.max_age_s = float(max_age_s)
        self.root.mkdir(parents=True, exist_ok=True)

    def session_dir(self, session_id: str | None) -> Path:
        """The (created) folder of one session; `None` -> a shared "anonymous" folder."""
        path = self._path(session_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove(self, session_id: str | None) -> None:
        """Delete a session's folder and everything in it (the session ended)."""
        shutil.rmtree(self._path(session_id), ignore_errors=True)

    def _path(self, session_id: str | None) -> Path:
        return self.root / (_UNSAFE.sub("_", session_id or "")[:64] or "anonymous")

    def sweep(self, now: float | None = None) -> int:
        """Delete files older than `max_age_s` (and folders left empty); returns files deleted."""
        now = time.time() if now is None else now
        removed = 0
        for path in sorted(self.root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            try:
                if path.is_dir():
                    if not any(path.iterdir()) and now - path.stat().st_mtime > self.max_age_s:
                        path.rmdir()
                elif now - path.stat().st_mtime > self.max_age_s:
                    path.unlink()
                    removed += 1
            except OSError:        # removed meanwhile by another request
                continue
        return removed

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
