"""Video -> CLIP features in the official VadCLIP (snippet) and AnomalyCLIP (per-frame) layouts,
and a feature cache.

Snippet rows (`ExtractSettings.frames_per_row` 16, VadCLIP): a video of `n_frames` frames has
N = n_frames // 16 snippets (the last partial one is dropped). A snippet's feature is the mean of
CLIP's `encode_image` output (not L2-normalised, as the official features) over
`samples_per_snippet` evenly spaced frames of its 16 (`video.snippet_frame_indices`); 16 encodes
every frame, as the official features do.

Per-frame rows (`frames_per_row` 1, AnomalyCLIP's layout): N = n_frames rows, row i = CLIP's
`encode_image` output of frame i (not normalised). Both layouts run through the same decode /
preprocess / encode path below; `snippet_means` turns per-frame rows into the 16-frame snippet
features of `samples_per_snippet` 16 (equal up to float32 summation order: the same frames are
encoded in the same batches).

Preprocessing is open_clip's eval transform done in torch on whole batches (on the GPU when
there is one): resize the shorter side to S with PIL-style antialiased bicubic, centre crop S,
scale to [0, 1], normalise with CLIP's mean and std. On CPU the resize is torch's uint8
antialiased bicubic (PIL's algorithm, vectorised; ~5 ms per 480p frame); elsewhere a horizontal
then a vertical float pass, each rounded to 8 bits as PIL does. Against open_clip's own PIL
transform the resized pixels differ by at most 2 grey levels (uint8; 1 for the float passes) on
under 1% of the values (PIL uses fixed-point weights).

Ten-crop (`ExtractSettings.ten_crop`) takes five S x S crops of the same resized frame and their
horizontal mirror images, in this order (index = the official ``__N.npy`` suffix):

=====  =============  =====  =========================
index  crop           index  crop
=====  =============  =====  =========================
0      centre         5      centre, flipped
1      top-left       6      top-left, flipped
2      top-right      7      top-right, flipped
3      bottom-left    8      bottom-left, flipped
4      bottom-right   9      bottom-right, flipped
=====  =============  =====  =========================

Crop 0 is exactly the single-crop input. Because the shorter side is resized to S, the corner
crops along the shorter side coincide (a landscape frame gives top-left == bottom-left).

Memory: frames are decoded in batches of at most `DECODE_BYTES` (background thread, two batches
ahead), preprocessed, and encoded `batch_size` at a time; only the [N, D] result grows with the
video's length (28 KB per minute of 30 fps video for D = 512, ten times that for ten-crop).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from .errors import OptionError
from .clip_backbone import ClipInfo
from .utils import atomic_write, in_groups, partial_writes, resolve_device
from .video import (SNIPPET_FRAMES, Backend, VideoInfo, content_hash as file_content_hash, iter_frames,
                    prefetch, probe, snippet_frame_indices)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SAMPLES_PER_SNIPPET = (SNIPPET_FRAMES, 8, 4, 2, 1)   # SNIPPET_FRAMES: every frame, as official
FRAMES_PER_ROW = (SNIPPET_FRAMES, 1)     # 16: snippet means (VadCLIP); 1: per-frame rows (AnomalyCLIP)
DECODE_BYTES = 24 << 20          # most bytes of decoded RGB frames in one decode batch
CACHE_FORMAT = "vadclip-features-v1"
STALE_TEMP_S = 3600.0            # a cache write's temp file this old belongs to a dead process

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ExtractSettings:
    """How features are extracted; `frames_per_row`, `samples_per_snippet` and `ten_crop` change
    the features."""

    samples_per_snippet: int = SNIPPET_FRAMES   # frames encoded per 16-frame snippet: 16, 8, 4, 2 or 1
    ten_crop: bool = False          # [10, N, D]: centre, 4 corners and their flips; 0 = centre
    batch_size: int = 64            # images per CLIP encode batch (ten-crop: batch_size // 10 frames)
    precision: str = "auto"         # "auto" (fp16 autocast on CUDA, fp32 on CPU), "fp32", "fp16", "bf16"
    frames_per_row: int = SNIPPET_FRAMES        # 16: one row per snippet; 1: one row per frame

    def __post_init__(self) -> None:
        if self.samples_per_snippet not in SAMPLES_PER_SNIPPET:
            raise OptionError(f"samples_per_snippet must be one of {SAMPLES_PER_SNIPPET}, "
                             f"got {self.samples_per_snippet}")
        if self.frames_per_row not in FRAMES_PER_ROW:
            raise OptionError(f"frames_per_row must be one of {FRAMES_PER_ROW}, got {self.frames_per_row}")
        if self.frames_per_row == 1 and self.samples_per_snippet != SNIPPET_FRAMES:
            raise OptionError("per-frame features encode every frame: samples_per_snippet applies to "
                              "16-frame snippets only")
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def n_crops(self) -> int:
        return 10 if self.ten_crop else 1

    @property
    def samples_per_row(self) -> int:
        """Frames encoded per row: `samples_per_snippet` for snippets, 1 per frame."""
        return self.samples_per_snippet if self.frames_per_row == SNIPPET_FRAMES else 1

    def for_rows(self, frames_per_row: int) -> "ExtractSettings":
        """These settings for rows of `frames_per_row` frames (per-frame rows encode every frame,
        so `samples_per_snippet` goes back to its default there)."""
        if frames_per_row == self.frames_per_row:
            return self
        samples = self.samples_per_snippet if frames_per_row == SNIPPET_FRAMES else SNIPPET_FRAMES
        return replace(self, frames_per_row=frames_per_row, samples_per_snippet=samples)

    @property
    def frames_per_batch(self) -> int:
        return max(1, self.batch_size // self.n_crops)


@dataclass
class VideoFeatures:
    """Features of one video, one row per `snippet_frames` frames: float32 [N, D], or [10, N, D]
    with ten-crop."""

    features: np.ndarray
    info: VideoInfo
    settings: ExtractSettings
    snippet_frames: int = SNIPPET_FRAMES

    @property
    def n_snippets(self) -> int:
        return int(self.features.shape[-2])


# ---------------------------------------------------------------------------------------------
# preprocessing


RESIZE_METHODS = ("auto", "uint8", "float")


def _resize_uint8(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torch's uint8 antialiased bicubic (CPU; PIL-like, vectorised) -> float levels 0..255."""
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True)
    return x.float()


def _resize_pass(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if x.shape[-2:] == (height, width):
        return x
    x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255)


def _resize_float(x: torch.Tensor, height: int, width: int,
                  columns: tuple[int, int] | None = None) -> torch.Tensor:
    """Any device: a horizontal then a vertical float pass, each rounded to 8 bits as in PIL.
    `columns` keeps only those columns before the vertical pass (it treats columns apart)."""
    x = _resize_pass(x.float(), x.shape[-2], width)
    if columns is not None:
        x = x[..., columns[0]:columns[1]]
    return _resize_pass(x, height, x.shape[-1])


def resized_size(height: int, width: int, image_size: int) -> tuple[int, int]:
    """Size after open_clip's shortest-side resize (torchvision's rule: the long side truncated)."""
    if height <= width:
        return image_size, int(image_size * width / height)
    return int(image_size * height / width), image_size


def crop_boxes(height: int, width: int, image_size: int, ten_crop: bool) -> list[tuple[int, int]]:
    """(top, left) of each S x S crop in a (height, width) resized frame: centre, then corners."""
    s = image_size
    centre = (int(round((height - s) / 2.0)), int(round((width - s) / 2.0)))
    if not ten_crop:
        return [centre]
    return [centre, (0, 0), (0, width - s), (height - s, 0), (height - s, width - s)]


def preprocess_frames(frames: torch.Tensor, image_size: int, ten_crop: bool = False,
                      method: str = "auto") -> torch.Tensor:
    """uint8 [b, H, W, 3] RGB -> float32 [b, 3, S, S] (or [b, 10, 3, S, S]) CLIP input.

    open_clip's eval transform (shortest side to S with antialiased bicubic, centre crop, CLIP
    mean/std), batched on the frames' device. Ten-crop order: see the module docstring.
    `method` picks the resize: "uint8" (CPU only, fastest), "float" (any device), "auto" (uint8
    on CPU, float elsewhere); both stay within two grey levels of open_clip's PIL resize.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [b, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if method not in RESIZE_METHODS:
        raise ValueError(f"method must be one of {RESIZE_METHODS}, got {method!r}")
    if method == "auto":
        method = "uint8" if frames.device.type == "cpu" else "float"
    s = image_size
    new_h, new_w = resized_size(frames.shape[1], frames.shape[2], s)
    boxes = crop_boxes(new_h, new_w, s, ten_crop)
    x = frames.permute(0, 3, 1, 2)
    if method == "uint8":
        x = _resize_uint8(x, new_h, new_w)
    elif ten_crop:
        x = _resize_float(x, new_h, new_w)
    else:
        (top, left), = boxes
        x, boxes = _resize_float(x, new_h, new_w, columns=(left, left + s)), [(top, 0)]
    crops = torch.stack([x[..., t:t + s, l:l + s] for t, l in boxes], dim=1)   # [b, k, 3, S, S]
    if ten_crop:
        crops = torch.cat([crops, crops.flip(-1)], dim=1)
    mean = torch.tensor(open_clip.constants.OPENAI_DATASET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(open_clip.constants.OPENAI_DATASET_STD, device=x.device).view(3, 1, 1)
    crops = (crops / 255.0 - mean) / std
    return crops if ten_crop else crops[:, 0]


# ---------------------------------------------------------------------------------------------
# extraction


def backbone_id(clip_info: ClipInfo, clip_model: nn.Module | None = None) -> str:
    """A stable string naming the CLIP, for cache keys: source, sizes and, given the model, a
    fingerprint of its visual weights (so that two random inits or an edited file differ)."""
    source = clip_info.source
    if os.path.exists(source):
        source = os.path.abspath(source)
    parts = [source, f"S{clip_info.image_size}", f"D{clip_info.embed_dim}",
             f"W{clip_info.text_width}", "random" if clip_info.random_weights else "trained"]
    if clip_model is not None:
        parts.append(_weights_fingerprint(clip_model))
    return "|".join(parts)


def same_image_tower(a: nn.Module, b: nn.Module) -> bool:
    """Whether two CLIPs' image towers have equal weights (the same tensors, dtype included), so
    that they make the same image features (e.g. the OpenAI CLIP inside a VadCLIP and an
    AnomalyCLIP checkpoint). Stops at the first differing tensor."""
    if a is b:
        return True
    va, vb = a.visual.state_dict(), b.visual.state_dict()
    return va.keys() == vb.keys() and all(
        va[k].shape == vb[k].shape and va[k].dtype == vb[k].dtype and torch.equal(va[k], vb[k].to(va[k].device))
        for k in va)


def _weights_fingerprint(clip_model: nn.Module) -> str:
    digest = hashlib.sha256()
    visual = clip_model.visual
    for tensor in (visual.conv1.weight, visual.proj):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _decode_batch_size(info: VideoInfo, batch_size: int) -> int:
    return max(1, min(batch_size, DECODE_BYTES // max(1, info.width * info.height * 3)))


def _rebatch(chunks: Iterable[tuple[torch.Tensor, torch.Tensor]], size: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Regroup (ids [b], x [b, ...]) chunks into batches of exactly `size` (the last may be less)."""
    ids_parts: list[torch.Tensor] = []
    x_parts: list[torch.Tensor] = []
    held = 0
    for ids, x in chunks:
        ids_parts.append(ids)
        x_parts.append(x)
        held += len(ids)
        while held >= size:
            ids_all, x_all = torch.cat(ids_parts), torch.cat(x_parts)
            yield ids_all[:size], x_all[:size]
            ids_parts, x_parts = [ids_all[size:]], [x_all[size:]]
            held -= size
    if held:
        yield torch.cat(ids_parts), torch.cat(x_parts)


def extract_video_features(
    clip_model: nn.Module,
    clip_info: ClipInfo,
    path: str | os.PathLike,
    settings: ExtractSettings = ExtractSettings(),
    device: str | torch.device = "cpu",
    info: VideoInfo | None = None,
    on_progress: ProgressFn | None = None,
    prefetch_depth: int = 2,
    backend: Backend = "auto",
) -> VideoFeatures:
    """CLIP features of every row (16-frame snippet, or frame: `settings.frames_per_row`) of a
    video, streamed in bounded memory.

    `clip_model` must already be on `device`. Decoding (and, on CPU, preprocessing) runs in a
    background thread ahead of the encoder. `on_progress(done, total)` is called in rows.
    `backend` is the decoder used when `info` is None (`video.probe`; `info` fixes it).
    Raises `VideoError` for a file that cannot be read or decoded.
    """
    device = torch.device(resolve_device(str(device) if device is not None else None))
    if info is None:
        info = probe(path, backend=backend)
    s, k, size = settings.samples_per_row, settings.n_crops, clip_info.image_size
    f = settings.frames_per_row
    indices = snippet_frame_indices(info.n_frames, f, s).reshape(-1)
    n = info.n_frames // f
    sums = torch.zeros(n, k, clip_info.embed_dim, dtype=torch.float32)
    if on_progress is not None:
        on_progress(0, n)
    if n == 0:
        return _video_features(sums, info, settings)

    prep_on_decoder = device.type == "cpu"   # on CUDA the GPU preprocesses; on CPU overlap it

    def decoded() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for frame_ids, frames in iter_frames(path, _decode_batch_size(info, settings.frames_per_batch),
                                             indices=indices, info=info):
            x = torch.from_numpy(frames)
            if prep_on_decoder:
                x = preprocess_frames(x, size, settings.ten_crop)
            elif device.type == "cuda":
                x = x.pin_memory()
            yield torch.from_numpy(frame_ids // f), x

    def prepared() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for snippet_ids, x in prefetch(decoded(), prefetch_depth):
            if not prep_on_decoder:
                x = preprocess_frames(x.to(device, non_blocking=True), size, settings.ten_crop)
            yield snippet_ids, x

    dtype = _autocast_dtype(settings.precision, device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    done_frames, max_batch = 0, None
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for snippet_ids, x in _rebatch(prepared(), settings.frames_per_batch):
            x = x.to(device, non_blocking=True).reshape(-1, 3, size, size)
            feats, max_batch = encode_images(clip_model, x.contiguous(memory_format=memory_format),
                                             device, max_batch)
            sums.index_add_(0, snippet_ids, feats.float().reshape(len(snippet_ids), k, -1).cpu())
            done_frames += len(snippet_ids)
            if on_progress is not None:
                on_progress(done_frames // s, n)
    return _video_features(sums / s, info, settings)


def encode_images(clip_model: nn.Module, x: torch.Tensor, device: torch.device,
                  max_batch: int | None = None) -> tuple[torch.Tensor, int]:
    """`clip_model.encode_image(x)` [b, D] in groups of at most `max_batch` images; on an
    out-of-memory error the group size halves (down to one image) and the same images are
    retried. Returns the features and the group size that worked (pass it to the next call)."""
    parts, batch = in_groups(lambda start, stop: clip_model.encode_image(x[start:stop]), len(x),
                             max_batch or len(x), device)
    return (parts[0] if len(parts) == 1 else torch.cat(parts)), batch


def _video_features(means: torch.Tensor, info: VideoInfo, settings: ExtractSettings) -> VideoFeatures:
    """[N, k, D] -> VideoFeatures with [N, D] (single crop) or [10, N, D]."""
    arr = means.permute(1, 0, 2).contiguous().numpy()
    return VideoFeatures(features=arr if settings.ten_crop else arr[0], info=info, settings=settings,
                         snippet_frames=settings.frames_per_row)


def snippet_means(per_frame: np.ndarray, frames_per_snippet: int = SNIPPET_FRAMES) -> np.ndarray:
    """Per-frame rows [..., F, D] -> snippet rows [..., F // 16, D]: the mean of each 16 frames
    (the last partial snippet dropped), i.e. the snippet features of `samples_per_snippet` 16."""
    per_frame = np.asarray(per_frame, dtype=np.float32)
    n = per_frame.shape[-2] // frames_per_snippet
    rows = per_frame[..., :n * frames_per_snippet, :]
    shape = (*rows.shape[:-2], n, frames_per_snippet, rows.shape[-1])
    return rows.reshape(shape).mean(axis=-2, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# cache

_KEY = re.compile(r"^[0-9a-f]{64}$")


class FeatureCache:
    """Feature arrays on disk, keyed by video content + CLIP + feature settings (row layout
    included: per-frame and snippet features of one video are separate entries).

    One ``<key>.npy`` file per entry under `root`. Reading an entry marks it used; after each
    `put`, the least recently used entries are deleted until the total is at most `max_bytes`
    (the entry just written is always kept). Safe to share between processes: files are
    written atomically and a vanished file is a miss.
    """

    def __init__(self, root: str | os.PathLike, max_bytes: int | None = None):
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must be non-negative")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep_partial()

    def sweep_partial(self, max_age_s: float = STALE_TEMP_S) -> int:
        """Delete temporary files of writes that never finished (a killed process) once they are
        `max_age_s` old (younger ones may belong to a write in progress); returns how many."""
        removed, now = 0, time.time()
        for path in partial_writes(self.root, "*.npy"):
            try:
                if now - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    @staticmethod
    def key(content_hash: str, backbone: str, settings: ExtractSettings) -> str:
        """Cache key; `batch_size` and `precision` are left out (they do not change the features
        beyond rounding)."""
        record = {"format": CACHE_FORMAT, "content": content_hash, "backbone": backbone,
                  "samples_per_snippet": settings.samples_per_snippet,
                  "ten_crop": settings.ten_crop, "snippet_frames": settings.frames_per_row}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a feature-cache key: {key!r}")
        return self.root / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array, or None. An unreadable entry is removed and counts as a miss."""
        path = self.path(key)
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except Exception:  # truncated or garbage file: drop it
            path.unlink(missing_ok=True)
            return None
        if arr.dtype != np.float32 or arr.ndim not in (2, 3):
            path.unlink(missing_ok=True)
            return None
        _touch(path)
        return arr

    def put(self, key: str, features: np.ndarray) -> Path:
        """Store `features` atomically, then evict least recently used entries over `max_bytes`."""
        path = self.path(key)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
        _touch(path)
        self.evict(keep=path)
        return path

    def entries(self) -> list[tuple[Path, int, int]]:
        """(path, size in bytes, last use in ns) of every entry, least recently used first."""
        found = []
        for path in self.root.glob("*.npy"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((path, stat.st_size, stat.st_mtime_ns))
        return sorted(found, key=lambda e: e[2])

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Path | None = None) -> None:
        """Delete least recently used entries until the total is at most `max_bytes`."""
        if self.max_bytes is None:
            return
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size


def _touch(path: Path) -> None:
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except FileNotFoundError:
        pass


def cached_video_features(
    clip_model: nn.Module,
    clip_info: ClipInfo,
    path: str | os.PathLike,
    settings: ExtractSettings = ExtractSettings(),
    device: str | torch.device = "cpu",
    cache: FeatureCache | None = None,
    info: VideoInfo | None = None,
    content_hash: str | None = None,
    on_progress: ProgressFn | None = None,
    backend: Backend = "auto",
    backbone: str | None = None,
) -> tuple[VideoFeatures, bool]:
    """`extract_video_features` through `cache` -> (features, cache_hit).

    Without a cache this simply extracts. A cached array of the wrong shape for this video is
    ignored and replaced. `backbone` is `backbone_id(clip_info, clip_model)` when the caller has
    it already (it hashes CLIP weights).
    """
    if info is None:
        info = probe(path, backend=backend)
    if cache is None:
        return extract_video_features(clip_model, clip_info, path, settings, device, info,
                                      on_progress), False
    if content_hash is None:
        content_hash = file_content_hash(path)
    key = FeatureCache.key(content_hash, backbone or backbone_id(clip_info, clip_model), settings)
    n = info.n_frames // settings.frames_per_row
    expected = (10, n, clip_info.embed_dim) if settings.ten_crop else (n, clip_info.embed_dim)
    cached = cache.get(key)
    if cached is not None and cached.shape == expected:
        if on_progress is not None:
            on_progress(n, n)
        return VideoFeatures(features=cached, info=info, settings=settings), True
    result = extract_video_features(clip_model, clip_info, path, settings, device, info, on_progress)
    cache.put(key, result.features)
    return result, False
