"""Loading tensors from files without executing code from them.

`.pth`/`.pt` files are read with ``torch.load(weights_only=True)``, which refuses anything but
tensors and plain containers; a file that would run code on a plain ``torch.load`` is refused with
`UnsafeCheckpointError`. `.safetensors` files hold tensors only.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors

from .errors import UserError


class CheckpointError(UserError):
    """A weights file that cannot be used; the message names the file and the reason."""


class UnsafeCheckpointError(CheckpointError):
    """A file that contains Python objects beyond tensors (it could run code when unpickled)."""


# Wrappers that training scripts commonly put around a state dict.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from a `.safetensors` or `.pth`/`.pt` file, on CPU.

    Common wrappers (``{"state_dict": ...}``, ``{"model_state_dict": ...}``) and a ``module.``
    prefix (DataParallel) are removed. Raises `CheckpointError` (or `UnsafeCheckpointError`).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise CheckpointError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name}: empty file")
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{name}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" not in text:            # garbage, not an attempt to import Python objects
            raise CheckpointError(f"{name}: not a PyTorch checkpoint (unreadable pickle data)") from None
        detail = next((l.strip() for l in text.splitlines() if "GLOBAL" in l), "")
        raise UnsafeCheckpointError(
            f"{name}: refused: the file contains Python objects other than tensors, which could "
            f"execute code when loaded. Only plain state dicts are accepted. ({detail})"
        ) from None
    except Exception as e:  # torch.load raises many types (RuntimeError, KeyError, EOFError...)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{name}: not a PyTorch checkpoint ({reason})") from None
    return _unwrap(obj, name)


def _unwrap(obj, name: str) -> dict[str, torch.Tensor]:
    for _ in range(2):
        if isinstance(obj, dict):
            for key in _WRAPPER_KEYS:
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{name}: not a state dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{name}: no tensors in the file")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors
