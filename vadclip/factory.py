"""One loader for every detector: `load_model(path_or_ref)` -> `LoadedModel`.

`path_or_ref` is one of
- an official VadCLIP checkpoint (`.pth` / `.pt`; the preset is read from its tensor shapes
  when `preset="auto"`: a wrong preset fails on them, e.g. 2 temporal layers = ucf);
- one of our `.safetensors` checkpoints, or a `vadclip train` run folder (its best checkpoint);
- a `vadclip train --seeds` output folder (``seeds_summary.json`` and a run folder per seed): the
  checkpoint ensemble of its runs (`VadCLIPEnsemble`);
- ``hf://OWNER/REPO/FILE`` or ``hf://OWNER/REPO/FILE@REVISION``: a file of a Hugging Face
  repository, downloaded with `huggingface_hub` into its cache; offline (``HF_HUB_OFFLINE=1``)
  or when the Hub cannot be reached, the cached copy is used;
- ``"zero-shot"`` (`ZERO_SHOT`): CLIP zero-shot on the CLIP named by `clip` (default "openai"),
  with the vocabulary of `preset` ("auto": xd) as default;
- an AnomalyCLIP checkpoint (registered by `vadclip.anomalyclip.detector`, imported below): an
  official Lightning ``last.ckpt`` (preset from `preset` or tried xd / ucf / sht by shape; its
  normal centroid from `centroid=` or an ``ncentroid.pt`` beside it) or one of our AnomalyCLIP
  ``.safetensors`` files / run folders (centroid inside).

Checkpoint kinds form a small registry: each `CheckpointKind` has a `sniff(path)` test and a
`load(path, preset, device)` function (also `centroid=` when `takes_centroid`). A new model
family adds its kind with `register_checkpoint_kind(...)` from its own package; nothing else
changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import (CHECKPOINT_FILES, get_tokenizer, load_official_checkpoint, load_vadclip_checkpoint,
                         resolve_checkpoint_path)
from .clip_backbone import DEFAULT_CLIP, load_clip
from .anomalyclip.config import PRESETS as ANOMALYCLIP_PRESETS
from .config import PRESETS, get_preset
from .detectors import Detector, VadCLIPDetector, VadCLIPEnsemble, ZeroShotDetector
from .errors import OptionError
from .model import VadCLIP
from .safe_load import CheckpointError
from .seeds import SUMMARY_FILE, seed_checkpoints

ZERO_SHOT = "zero-shot"
HF_PREFIX = "hf://"
OFFICIAL_SUFFIXES = (".pth", ".pt")
PRESET_CHOICES = ("auto", *PRESETS, *(p for p in ANOMALYCLIP_PRESETS if p not in PRESETS))


@dataclass
class LoadedModel:
    """A ready detector and where it came from."""

    detector: Detector
    kind: str                   # checkpoint kind: "official", "ours", "zero-shot", ...
    preset: str | None = None   # the preset used (None when it does not apply)
    path: Path | None = None    # the file read (None for zero-shot)
    metadata: dict = field(default_factory=dict)   # the checkpoint's metadata (ours: training results)


@dataclass(frozen=True)
class CheckpointKind:
    """A checkpoint format: `sniff(path)` says whether a file or folder is one, `load` reads it.

    `takes_centroid`: `load` also takes `centroid=` (AnomalyCLIP's normal centroid: an array or a
    file; None = find it beside the checkpoint).
    """

    name: str
    sniff: Callable[[Path], bool]
    load: Callable[..., LoadedModel]
    takes_centroid: bool = False


def preset_candidates(path: Path, preset: str) -> list[str]:
    """Presets to try for an official checkpoint: the chosen one, or a guess from the file name
    first and then the others."""
    if preset != "auto":
        get_preset(preset)                      # OptionError for an unknown preset
        return [preset]
    name = path.name.lower()
    hinted = [p for p in PRESETS if p in name]
    return hinted + [p for p in PRESETS if p not in hinted]


def _is_official(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in OFFICIAL_SUFFIXES


def _load_official(path: Path, preset: str, device: str | torch.device) -> LoadedModel:
    errors = []
    for candidate in preset_candidates(path, preset):
        try:
            model = load_official_checkpoint(path, preset=candidate, device=device)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        return LoadedModel(VadCLIPDetector(model), "official", preset=candidate, path=path)
    raise CheckpointError(errors[0] if len(errors) == 1 else " / ".join(errors))


def _is_ours(path: Path) -> bool:
    if path.is_dir():
        return any((path / name).is_file() for name in CHECKPOINT_FILES)
    return path.is_file() and path.suffix == ".safetensors"


def _load_ours(path: Path, preset: str, device: str | torch.device) -> LoadedModel:
    file = resolve_checkpoint_path(path)
    model, header = load_vadclip_checkpoint(file, device=device)
    if preset != "auto" and preset != model.config.preset:
        raise CheckpointError(f"{file.name}: a {model.config.preset!r} checkpoint, not {preset!r}")
    return LoadedModel(VadCLIPDetector(model), "ours", preset=model.config.preset, path=file,
                       metadata=header["metadata"])


def _is_seeds_folder(path: Path) -> bool:
    """A `--seeds` output folder of VadCLIP runs (an AnomalyCLIP one is not an ensemble we make)."""
    if not (path.is_dir() and (path / SUMMARY_FILE).is_file()):
        return False
    try:
        runs = seed_checkpoints(path)
    except ValueError:
        return True                      # loading it says what is wrong with the summary
    return not runs or checkpoint_kind(runs[0]) in (None, "ours")


def _load_seeds_folder(path: Path, preset: str, device: str | torch.device) -> LoadedModel:
    try:
        runs = seed_checkpoints(path)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    if not runs:
        raise CheckpointError(f"{path.name}: its {SUMMARY_FILE} lists no finished run")
    members = []
    for run in runs:
        if not _is_ours(run):
            raise CheckpointError(f"{path.name}: run folder {run.name} has no VadCLIP checkpoint "
                                  f"({' or '.join(CHECKPOINT_FILES)}); ensembles are a VadCLIP option")
        members.append(_load_ours(run, preset, device).detector)
    try:
        detector = VadCLIPEnsemble(members)
    except CheckpointError as err:
        raise CheckpointError(f"{path.name}: {err}") from None
    return LoadedModel(detector, "seeds", preset=members[0].model.config.preset, path=path,
                       metadata={"members": [str(r) for r in runs]})


_KINDS: list[CheckpointKind] = [
    CheckpointKind("official", _is_official, _load_official),
    CheckpointKind("ours", _is_ours, _load_ours),
    CheckpointKind("seeds", _is_seeds_folder, _load_seeds_folder),
]


def register_checkpoint_kind(kind: CheckpointKind, first: bool = False) -> None:
    """Add a checkpoint format to `load_model` (replacing one of the same name). `first`: try it
    before the others (for a sniff that reads the file's content, e.g. a safetensors header,
    ahead of one that goes by the file's suffix)."""
    others = [k for k in _KINDS if k.name != kind.name]
    _KINDS[:] = [kind, *others] if first else [*others, kind]


def checkpoint_kinds() -> list[CheckpointKind]:
    """The registered checkpoint formats, in the order they are tried."""
    return list(_KINDS)


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The name of the registered kind that `path` is, or None."""
    path = Path(path)
    return next((k.name for k in _KINDS if k.sniff(path)), None)


def parse_hf_ref(ref: str) -> tuple[str, str, str | None]:
    """``hf://OWNER/REPO/FILE[@REVISION]`` -> (repo_id, filename, revision)."""
    body = ref[len(HF_PREFIX):]
    revision = None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
    parts = body.split("/")
    if len(parts) < 3 or not all(parts) or (revision is not None and not revision):
        raise CheckpointError(f"{ref}: not a Hugging Face reference (hf://OWNER/REPO/FILE[@REVISION])")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def hf_download(ref: str) -> Path:
    """The local path of an ``hf://`` file: downloaded into the Hugging Face cache, or the
    cached copy when offline or the Hub is unreachable. CheckpointError (one line) otherwise."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    repo_id, filename, revision = parse_hf_ref(ref)
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    reason = "offline (HF_HUB_OFFLINE)"
    if not offline:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision))
        except Exception as e:   # network, authentication, missing file: fall back to the cache
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'download failed'}"
    cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    raise CheckpointError(f"{ref}: cannot download it ({reason[:200]}) and there is no cached copy")


def load_model(path_or_ref: str | os.PathLike, preset: str = "auto", device: str | torch.device = "cpu",
               clip: str | None = None, centroid=None) -> LoadedModel:
    """Load any detector (see the module docstring) in eval mode on `device`.

    `clip` names the CLIP of zero-shot (see `load_clip`); checkpoints carry their own CLIP.
    `centroid` is the normal centroid of an official AnomalyCLIP checkpoint (a [512] array or
    ``ncentroid.pt`` / ``.npy``; None: ``ncentroid.pt`` beside the checkpoint).
    Raises a `UserError` (CheckpointError, ClipError, OptionError) naming the problem.
    """
    if preset not in PRESET_CHOICES:
        raise OptionError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_CHOICES)}")
    ref = os.fspath(path_or_ref)
    if ref == ZERO_SHOT:
        clip_model, info = load_clip(clip or DEFAULT_CLIP, device=device)
        names = list(get_preset("xd" if preset == "auto" else preset).model.class_names)
        detector = ZeroShotDetector(clip_model, info, get_tokenizer(), default_class_names=names)
        return LoadedModel(detector, ZERO_SHOT, preset=None if preset == "auto" else preset)
    if clip is not None:
        raise OptionError("clip is only for zero-shot: a checkpoint has its own CLIP")
    if centroid is not None and isinstance(centroid, (str, os.PathLike)) and not Path(centroid).is_file():
        raise OptionError(f"centroid file {os.fspath(centroid)}: no such file")
    path = hf_download(ref) if ref.startswith(HF_PREFIX) else Path(ref)
    if not path.exists():
        raise CheckpointError(f"{ref}: no such file or folder")
    for kind in _KINDS:
        if kind.sniff(path):
            if kind.takes_centroid:
                return kind.load(path, preset, device, centroid=centroid)
            if centroid is not None:
                raise OptionError(f"{path.name}: a {kind.name} checkpoint has no normal centroid; "
                                  "centroid is only for AnomalyCLIP checkpoints")
            return kind.load(path, preset, device)
    names = ", ".join(k.name for k in _KINDS)
    raise CheckpointError(f"{path.name}: not a checkpoint of a known kind ({names}): expected an official "
                          "VadCLIP .pth/.pt or AnomalyCLIP .ckpt, a .safetensors file or a run folder")


def load_vadclip_model(path_or_ref: str | os.PathLike, preset: str = "auto",
                       device: str | torch.device = "cpu") -> VadCLIP:
    """The bare VadCLIP model of a checkpoint (to train or evaluate it); CheckpointError for
    a checkpoint of another model family."""
    loaded = load_model(path_or_ref, preset=preset, device=device)
    if not isinstance(loaded.detector, VadCLIPDetector):
        raise CheckpointError(f"{os.fspath(path_or_ref)}: a {loaded.kind} checkpoint, not a VadCLIP one")
    return loaded.detector.model


def load_vadclip_members(paths_or_refs: list[str], preset: str = "auto",
                         device: str | torch.device = "cpu") -> list[VadCLIP]:
    """The bare VadCLIP models of one or several checkpoints, a `--seeds` folder counting as its runs
    (to evaluate them as a checkpoint ensemble). Several members must share the CLIP and the preset
    (`VadCLIPEnsemble`'s checks, CheckpointError otherwise)."""
    members: list[VadCLIPDetector] = []
    for ref in paths_or_refs:
        loaded = load_model(ref, preset=preset, device=device)
        if isinstance(loaded.detector, VadCLIPEnsemble):
            members.extend(loaded.detector.members)
        elif isinstance(loaded.detector, VadCLIPDetector):
            members.append(loaded.detector)
        else:
            raise CheckpointError(f"{os.fspath(ref)}: a {loaded.kind} checkpoint, not a VadCLIP one")
    return [m.model for m in VadCLIPEnsemble(members).members]


# AnomalyCLIP's checkpoint kinds register themselves here, so `load_model` knows them without the
# caller importing anything (the import is last: that module uses the names above).
from .anomalyclip import detector as _anomalyclip_detector  # noqa: E402,F401
