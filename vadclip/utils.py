"""Small helpers shared across the library."""
from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


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


def partial_writes(folder: str | os.PathLike, name: str = "*") -> Iterator[Path]:
    """The temporary files that `atomic_write`s of `name` (a file name or a glob) into `folder`
    left behind without finishing (a killed process)."""
    return Path(folder).glob(f".{name}.*.tmp")


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


def in_groups(fn: Callable[[int, int], T], n: int, group: int, device) -> tuple[list[T], int]:
    """`fn(start, stop)` over [0, n) in slices of at most `group` items, in order.

    On an out-of-memory error the group halves (down to one item) and the same slice is retried.
    Returns the results and the group size that worked (pass it on to the next call).
    """
    group = max(1, min(n, group))
    results, start = [], 0
    while start < n:
        try:
            results.append(fn(start, min(n, start + group)))
        except RuntimeError as error:            # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(error) or group == 1:
                raise
            group //= 2
            release_cached_memory(device)
            continue
        start += group
    return results, group


def keep_freed_memory() -> bool:
    """Make glibc serve large blocks from its heap and keep freed memory for reuse (process-wide).

    By default glibc maps every block over 32 MiB fresh from the kernel and unmaps it when it is
    freed, so each wide activation of a batched CPU training step is page-faulted and zeroed again
    on every step (measured on a 96-video step: ~0.9 M page faults, 2-2.6 s of system time). With
    mmap off and trimming raised, that memory is reused instead; the cost is that the process keeps
    its peak memory until it exits. Only `vadclip train` calls this (its process does nothing
    else); the library and the app never do. Returns False where it does not apply (not glibc).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4                      # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))
