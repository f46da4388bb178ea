"""Training batches: cached snippet features as fixed-length clips, and the official batch order.

A training set is a list of feature files (`formats.FeatureListEntry`), read from an official
``path,label`` CSV or a class-folder layout. Ten-crop files are separate rows, as in the official
lists. Each file becomes one clip of T snippets (spec "Training clip"):

- more than T snippets: averaged over T bins with integer edges ``linspace(0, N, T+1)`` (the
  official ``uniform_extract``; an empty bin takes the feature at its left edge); length T;
- otherwise zero-padded to T; length N.

Batches follow the preset: xd shuffles all files into batches of `batch_size` (the last one
smaller); ucf (``recipe.balanced``) takes `batch_size` normal and `batch_size` abnormal files per
step, each group shuffled on its own, incomplete batches dropped, so an epoch ends when the
shorter group runs out. The order of an epoch is a function of (seed, epoch) alone, so a resumed
run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import formats
from .config import get_preset


def uniform_extract(features: np.ndarray, length: int) -> np.ndarray:
    """Average `features [N, D]` over `length` bins with edges ``int32(linspace(0, N, length+1))``.

    Bit-identical to the official loop of `np.mean` calls: each bin's rows are gathered into a
    zero-padded ``[length, K, D]`` block and summed in order in float32 (as `np.mean` sums along
    axis 0), then divided by the bin size; an empty bin takes the row at its left edge.
    """
    n = len(features)
    edges = np.linspace(0, n, length + 1, dtype=np.int32)
    counts = np.maximum(np.diff(edges), 1)                                  # empty bin: 1 row
    offsets = np.arange(counts.max())
    rows = edges[:-1, None] + offsets[None, :]                              # [length, K]
    inside = offsets[None, :] < counts[:, None]
    block = np.where(inside[..., None], features[np.minimum(rows, n - 1)], np.float32(0))
    return (block.sum(axis=1, dtype=np.float32) / counts[:, None]).astype(np.float32, copy=False)


def resample_features(features: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Official `process_feat`: ([length, D] float32 clip, number of valid positions)."""
    features = np.asarray(features, dtype=np.float32)
    n = features.shape[0]
    if n > length:
        return uniform_extract(features, length), length
    clip = np.zeros((length, features.shape[1]), dtype=np.float32)
    clip[:n] = features
    return clip, n


def read_train_entries(source: str | os.PathLike, preset: str, root: str | os.PathLike | None = None,
                       check_labels: bool = True, features_root: str | os.PathLike | None = None
                       ) -> list[formats.FeatureListEntry]:
    """Entries of a training set: an official ``path,label`` CSV, or a class-folder layout.

    With `root`, every file must resolve inside it. CSV labels are checked against the preset
    unless `check_labels` is False; `features_root` finds a CSV's missing files by name under it
    (`formats.read_feature_list`). Raises `formats.DataError` listing every problem.
    """
    source = Path(source)
    if source.is_dir():
        if root is not None and not source.resolve().is_relative_to(Path(root).resolve()):
            raise formats.DataError(f"feature folder {source}: outside the data root {root}")
        return formats.scan_feature_folder(source, preset)
    return formats.read_feature_list(source, root=root, preset=preset if check_labels else None,
                                     features_root=features_root)


class FeatureClips(Dataset):
    """One training clip per feature file: (features [T, D], multi-hot [C], length)."""

    def __init__(self, entries: Sequence[formats.FeatureListEntry], preset: str, visual_length: int = 256):
        names = get_preset(preset).model.class_names
        self.entries = list(entries)
        self.visual_length = visual_length
        self.targets = np.stack([formats.multi_hot(formats.parse_label(e.label, preset), names)
                                 for e in self.entries]) if self.entries else np.zeros((0, len(names)), np.float32)
        self.is_normal = np.array([formats.is_normal_label(e.label) for e in self.entries], dtype=bool)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        clip, length = resample_features(formats.load_features(self.entries[index].path), self.visual_length)
        return torch.from_numpy(clip), torch.from_numpy(self.targets[index]), length


def _permutation(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch * 101 + stream)
    return torch.randperm(n, generator=generator).numpy()


def epoch_batches(is_normal: np.ndarray, batch_size: int, balanced: bool, seed: int,
                  epoch: int) -> list[np.ndarray]:
    """The batches (dataset indices) of one epoch; each file appears at most once.

    Shuffled (xd): a permutation of all files cut into batches, the last one smaller.
    Balanced (ucf): `batch_size` normal then `batch_size` abnormal files per batch, each group
    shuffled separately, incomplete batches dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if not balanced:
        order = _permutation(len(is_normal), seed, epoch, 0)
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    normal, abnormal = np.flatnonzero(is_normal), np.flatnonzero(~is_normal)
    normal = normal[_permutation(len(normal), seed, epoch, 1)]
    abnormal = abnormal[_permutation(len(abnormal), seed, epoch, 2)]
    steps = min(len(normal), len(abnormal)) // batch_size
    return [np.concatenate([normal[i * batch_size:(i + 1) * batch_size],
                            abnormal[i * batch_size:(i + 1) * batch_size]]) for i in range(steps)]


def check_batching(is_normal: np.ndarray, batch_size: int, balanced: bool) -> list[str]:
    """Problems that would leave an epoch without a single batch (empty list when fine)."""
    if len(is_normal) == 0:
        return ["the training set is empty"]
    if not balanced:
        return []
    n_normal, n_abnormal = int(is_normal.sum()), int((~is_normal).sum())
    if min(n_normal, n_abnormal) < batch_size:
        return [f"balanced batches need at least batch_size={batch_size} normal and {batch_size} "
                f"abnormal files; the list has {n_normal} normal and {n_abnormal} abnormal "
                f"(lower the batch size)"]
    return []


def batch_loader(dataset: FeatureClips, batches: Sequence[np.ndarray], num_workers: int = 0) -> DataLoader:
    """A DataLoader over the given batches, in order, yielding (features [B,T,D], multi_hot [B,C], lengths [B])."""
    return DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=num_workers)
