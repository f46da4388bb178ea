"""One helper for the tests that run the real app: `AppServer`, a `python app.py` subprocess on a
free 127.0.0.1 port with its folders (models, data, training data root) under one root.

The models folder holds the fixture checkpoint; it is also the app's CLIP (VADCLIP_CLIP) unless a
test passes another one. Used by tests/test_load.py, tests/test_reliability_faults.py,
tests/test_browser.py and benchmarks/bench_load.py.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from shared_paths import OFFICIAL

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = "official_xd.pth"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_root(root: Path) -> str:
    """models/ with the fixture checkpoint; returns the checkpoint's model key (absolute path)."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    target = root / "models" / CHECKPOINT
    if not target.exists():
        shutil.copy(OFFICIAL / CHECKPOINT, target)
    return str(target.resolve())


class AppServer:
    """One `python app.py` process with its folders under `root`."""

    def __init__(self, root: Path, concurrency: int = 2, queue_size: int = 64, **env):
        self.root = Path(root)
        self.model_key = prepare_root(self.root)
        self.env = {**os.environ,
                    "VADCLIP_MODELS_DIR": str(self.root / "models"),
                    "VADCLIP_DATA_DIR": str(self.root / "data"),
                    "VADCLIP_DATA_ROOT": str(self.root / "training"),
                    "VADCLIP_CLIP": str(self.root / "models" / CHECKPOINT),
                    "VADCLIP_DEVICE": "cpu", "VADCLIP_MAX_VIDEO_S": "120",
                    "VADCLIP_CONCURRENCY": str(concurrency), "VADCLIP_QUEUE_SIZE": str(queue_size),
                    "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
                    **{k: str(v) for k, v in env.items()}}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._log = None

    def start(self, timeout: float = 120.0) -> "AppServer":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self._log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
                                     cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise TimeoutError(f"the app did not answer at {self.url} within {timeout:.0f} s")

    def log_tail(self, n: int = 3000) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash or an OOM kill)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def config(self):
        """The server's settings as an `AppConfig` (to open its folders in this process)."""
        from app.config import AppConfig

        return AppConfig.from_env(self.env)

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)
