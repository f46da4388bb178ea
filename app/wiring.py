"""What every tab uses to wire handlers to Gradio events: `guard` (errors become messages in the
page), `PRIVATE` (events that are not part of the app's API), the session id, `@spaces.GPU`."""
from __future__ import annotations

import functools
import logging
from typing import Callable, Literal

import gradio as gr

from vadclip.errors import UserError

from .models import ModelChoice

log = logging.getLogger("vadclip.app")

BUG_MESSAGE = ("Something went wrong on the server (a bug, not a problem with your input). "
               "The details are in the server log.")
PRIVATE = {"api_visibility": "private"}        # internal events: not listed in the app's API


def guard(fn: Callable, n_outputs: int = 0, user_errors: Literal["warning", "error"] = "warning") -> Callable:
    """Run a handler; show a failure as one clear line in the page, never a traceback.

    A `UserError` (a problem the user can fix) shows its message: as a warning toast that leaves
    the `n_outputs` outputs as they were, or (`user_errors="error"`, for API callers) as an
    error. Anything else is a bug: its traceback goes to the server log and the page says only
    `BUG_MESSAGE`.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as e:
            if user_errors == "error":
                raise gr.Error(str(e), print_exception=False) from None
            gr.Warning(str(e))
            return skip(n_outputs)
        except Exception:
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(BUG_MESSAGE, print_exception=False) from None

    return wrapper


def skip(n_outputs: int):
    """Leave `n_outputs` outputs as they are."""
    if n_outputs == 0:
        return None
    return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))


def session_id(request: gr.Request | None) -> str | None:
    """The browser session of a request (None outside one, e.g. in tests)."""
    return getattr(request, "session_hash", None) if request is not None else None


def options(choices: list[ModelChoice]) -> list[tuple[str, str]]:
    """Model choices as dropdown (label, value) pairs."""
    return [(c.label, c.key) for c in choices]


def gpu_decorator(duration: int = 120) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` on a ZeroGPU Space (when the `spaces` package imports), else
    the identity."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)
