"""The normal centroid c: the mean CLIP feature of every frame of the normal training videos.

Official AnomalyCLIP does not store it in the checkpoint; it saves `ncentroid.pt` next to the run
and recomputes it from the normal training list when that file is missing.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from ..formats import DataError
from ..safe_load import CheckpointError


def normal_centroid(features: Sequence[ArrayLike]) -> np.ndarray:
    """c [D] (float32) from the normal training videos' features, one [F_i, D] array per video.

    As the official code computes it: a float32 sum of each video's frames, accumulated in list
    order, divided by the total frame count.
    """
    if isinstance(features, np.ndarray) and features.ndim == 2:
        raise DataError("normal_centroid takes a list of per-video [F_i, D] arrays, not one array")
    if len(features) == 0:
        raise DataError("normal_centroid needs at least one normal training video")
    total, count, width = None, 0, None
    for i, f in enumerate(features):
        f = np.asarray(f, dtype=np.float32)
        if f.ndim != 2 or f.shape[0] == 0:
            raise DataError(f"video {i}: features must be [F >= 1, D], got shape {f.shape}")
        if width is not None and f.shape[1] != width:
            raise DataError(f"video {i}: features are {f.shape[1]}-d but earlier videos are {width}-d")
        if not np.isfinite(f).all():
            raise DataError(f"video {i}: features contain NaN or infinite values")
        width = f.shape[1]
        part = torch.from_numpy(f).sum(dim=0)
        total = part if total is None else total + part
        count += f.shape[0]
    return (total / count).numpy()


def load_centroid(centroid, dim: int = 512) -> torch.Tensor:
    """A [dim] float32 centroid from an array / tensor, or a file: `ncentroid.pt` (a torch-saved
    tensor, read with weights_only=True) or a `.npy` array. Raises CheckpointError (a UserError) naming the problem."""
    if isinstance(centroid, (str, os.PathLike)):
        path = Path(centroid)
        if not path.is_file():
            raise CheckpointError(f"centroid file {path}: no such file")
        if path.suffix == ".npy":
            try:
                value = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise CheckpointError(f"{path.name}: not a readable .npy array ({e})") from None
        else:
            try:
                value = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                raise CheckpointError(f"{path.name}: refused: not a plain torch-saved tensor "
                                      "(it holds other Python objects)") from None
            except Exception as e:
                raise CheckpointError(f"{path.name}: not a torch-saved centroid tensor ({type(e).__name__})") from None
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{path.name}: holds a {type(value).__name__}, not a centroid tensor")
        name = path.name
    else:
        value, name = centroid, "centroid"
    value = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                                       dtype=np.float32))
    if value.ndim == 2 and value.shape[0] == 1:
        value = value[0]
    if tuple(value.shape) != (dim,):
        raise CheckpointError(f"{name}: the centroid must be a [{dim}] vector, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise CheckpointError(f"{name}: the centroid contains NaN or infinite values")
    return value.contiguous()
