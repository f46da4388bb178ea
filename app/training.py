"""Training from the app: feature lists under the data root, one background run at a time.

`Trainer.start(config, seeds=None)` runs `vadclip.train` (VadCLIP or AnomalyCLIP, by the config's
type) in a daemon thread, or one run per seed (`methods.train_seeds`), and records its progress
events; the UI polls `Trainer.snapshot()` (a gr.Timer) for curves and logs, and `cancel()` asks the
run to stop at the next step (`should_stop`). The finished run folder (best.safetensors, ...) is
written into the models folder, so it appears in the model choice.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vadclip.errors import UserError
from vadclip.methods import train, train_seeds
from vadclip.paths import confine, is_inside
from vadclip.seeds import format_seeds_table

MAX_LISTED = 500           # feature lists / annotation files offered in the dropdowns
MAX_LOG_LINES = 400
BUG_LINE = "the training stopped on an unexpected error (a bug); the details are in the server log"

log = logging.getLogger("vadclip.app")


def list_files(root: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Files under `root` (recursively, hidden folders skipped) with one of `suffixes`, as paths
    relative to `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in suffixes:
            continue
        if path.is_file() and is_inside(rel, root):
            found.append(rel.as_posix())
            if len(found) >= MAX_LISTED:
                break
    return found


def resolve_in_root(choice: str | None, root: Path, what: str, required: bool = True) -> Path | None:
    """A user's choice of file, resolved inside `root`; UserError if missing or outside it."""
    if not choice:
        if required:
            raise UserError(f"choose a {what}")
        return None
    path = confine(choice, root)            # PathEscapeError (a UserError) names the path
    if not path.is_file():
        raise UserError(f"{what} {choice!r} does not exist under the data root")
    return path


def list_folders(root: Path, limit: int = MAX_LISTED) -> list[str]:
    """Folders under `root` (recursively, hidden ones skipped) as paths relative to it, sorted;
    "." is the root itself (for a features root)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = ["."]
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() and not any(part.startswith(".") for part in rel.parts) and is_inside(rel, root):
            found.append(rel.as_posix())
            if len(found) >= limit:
                break
    return found


def resolve_folder_in_root(choice: str | None, root: Path, what: str, required: bool = True) -> Path | None:
    """A user's choice of folder, resolved inside `root`; UserError if missing or outside it."""
    if not choice:
        if required:
            raise UserError(f"choose a {what}")
        return None
    path = confine(choice, root)
    if not path.is_dir():
        raise UserError(f"{what} {choice!r} is not a folder under the data root")
    return path


def run_folder_name(preset: str, now: datetime | None = None, method: str = "vadclip") -> str:
    now = now or datetime.now(timezone.utc)
    kind = "" if method == "vadclip" else f"{method}-"
    return f"run-{kind}{preset}-{now.strftime('%Y%m%d-%H%M%S')}"


def new_run_folder(models_dir: Path, preset: str, method: str = "vadclip") -> Path:
    """A run folder in `models_dir` that does not exist yet (two runs within one second get
    `-2`, `-3`, ... rather than sharing a folder)."""
    base = run_folder_name(preset, method=method)
    path, n = models_dir / base, 2
    while path.exists():
        path, n = models_dir / f"{base}-{n}", n + 1
    return path


@dataclass
class TrainingJob:
    """One training run (or one run per seed): its settings, progress events, log and outcome."""

    config: Any                        # vadclip.TrainConfig or vadclip.anomalyclip.TrainConfig
    seeds: tuple[int, ...] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    events: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    result: Any = None                 # the trainer's TrainResult (the latest run's, with seeds)
    summary: dict | None = None        # with seeds: `seeds.train_seeds`' summary
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def state(self) -> str:
        if self.running:
            return "stopping" if self.stop.is_set() else "running"
        if self.error:
            return "failed"
        if (self.result is not None and self.result.cancelled) or (self.summary or {}).get("cancelled"):
            return "cancelled"
        return "finished" if self.result is not None or self.summary is not None else "starting"


@dataclass(frozen=True)
class TrainingSnapshot:
    """A copy of a job's progress that the UI can render without holding locks."""

    state: str
    events: list[dict]
    log: str
    checkpoint: Path | None
    out_dir: Path | None
    elapsed_s: float

    @property
    def running(self) -> bool:
        return self.state in ("running", "stopping", "starting")


class Trainer:
    """Runs at most one training at a time in a background thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def start(self, config, seeds: tuple[int, ...] | None = None) -> TrainingJob:
        """Start `config` (either method) in the background; with `seeds`, one run per seed in
        ``<out_dir>/seed_<s>`` and a summary."""
        with self._lock:
            if self.job is not None and self.job.running:
                raise UserError("a training is already running; cancel it or wait for it to finish")
            job = TrainingJob(config=config, seeds=tuple(seeds) if seeds else None)
            job.thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                          name="vadclip-train")
            self.job = job
            job.thread.start()
        return job

    def _run(self, job: TrainingJob) -> None:
        def on_progress(event: dict) -> None:
            with self._lock:
                job.events.append(dict(event))
                line = format_event(event)
                if line:
                    job.log.append(line)
                    del job.log[:-MAX_LOG_LINES]

        def train_and_keep(config, **kwargs):
            job.result = train(config, **kwargs)
            return job.result

        try:
            if job.seeds:
                job.summary = train_seeds(job.config, job.seeds, on_progress=on_progress,
                                          should_stop=job.stop.is_set, train_fn=train_and_keep)
                if job.summary["n_runs"]:
                    with self._lock:
                        job.log.extend(format_seeds_table(job.summary).splitlines())
            else:
                train_and_keep(job.config, on_progress=on_progress, should_stop=job.stop.is_set)
        except UserError as e:     # bad data or settings: its message goes to the page
            job.error = str(e)
        except Exception:          # a bug: the traceback goes to the server log only
            log.exception("training run %s failed", job.config.out_dir)
            job.error = BUG_LINE
        finally:
            if job.error:
                with self._lock:
                    job.log.append(f"error: {job.error}")
            job.finished = time.time()

    def cancel(self) -> bool:
        """Ask the running job to stop; True if one was running."""
        job = self.job
        if job is None or not job.running:
            return False
        job.stop.set()
        return True

    def wait(self, timeout: float | None = None) -> None:
        job = self.job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)

    def snapshot(self) -> TrainingSnapshot | None:
        job = self.job
        if job is None:
            return None
        with self._lock:
            events, log = list(job.events), "\n".join(job.log)
        result = job.result
        checkpoint = None
        if result is not None:
            checkpoint = result.best_path or result.last_path
        end = job.finished or time.time()
        return TrainingSnapshot(state=job.state, events=events, log=log,
                                checkpoint=Path(checkpoint) if checkpoint else None,
                                out_dir=Path(job.config.out_dir), elapsed_s=end - job.started)


def format_event(event: dict) -> str:
    """One log line for a progress event of `vadclip.train.train`."""
    kind = event.get("kind")
    step = event.get("step", "?")
    if kind == "step":
        total = event.get("total_steps")
        loss = event.get("loss")
        lr = event.get("lr")
        epoch = event.get("epoch")
        return (f"step {step}/{total or '?'}  epoch {epoch + 1 if isinstance(epoch, int) else '?'}"
                + (f"  loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
                + (f"  lr {lr:.2e}" if isinstance(lr, (int, float)) else ""))
    if kind == "eval":
        metrics = event.get("metrics") or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                          if isinstance(v, (int, float)) and k not in ("n_videos", "random_weights"))
        return f"eval at step {step}: {shown}"
    if kind == "done":
        return "done" + (f": {event['message']}" if event.get("message") else "")
    if kind == "log":
        return str(event.get("message", ""))
    return ""
