"""Small helpers shared across the library."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A crash or an exception leaves `path` as it was (old content or absent), never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_device(device: str | None) -> str:
    """"auto" or None -> "cuda" when available, else "cpu"; anything else is returned as is."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator out-of-memory error (worth retrying with a smaller batch)."""
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def release_cached_memory(device) -> None:
    """Return cached blocks of `device`'s allocator to the driver (no-op on CPU)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
