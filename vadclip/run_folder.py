"""A training run's output folder: never overwrite another run; on resume, the state to continue.

Both trainers (VadCLIP's `vadclip.train`, AnomalyCLIP's `vadclip.anomalyclip.train`) keep their
checkpoints and a `torch.save`d run state in one folder; this is the one check before either starts.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .errors import TrainError


def saved_run_state(out_dir: Path, resume: bool, outputs: Sequence[str], state_file: str, *,
                    expected: Mapping[str, object], config: Mapping[str, object],
                    recipe: Mapping[str, object], resumable: Sequence[str] = (),
                    recipe_free: Sequence[str] = (), what: str = "a training state") -> dict | None:
    """Refuse to overwrite another run's `outputs`; on `resume`, the saved state (None: a fresh start).

    `expected` items must match the saved state (format version, method); `config` and `recipe`
    (JSON values) must equal those the run started with, except the keys in `resumable` and
    `recipe_free`. Raises `TrainError` naming what is wrong.
    """
    existing = [name for name in (*outputs, state_file) if (out_dir / name).exists()]
    if not resume:
        if existing:
            raise TrainError(f"{out_dir} already holds {', '.join(existing)}; pass resume=True (--resume) "
                             f"to continue that run, or choose another output folder")
        return None
    path = out_dir / state_file
    if not path.is_file():
        if existing:
            raise TrainError(f"{out_dir}: cannot resume, {state_file} is missing (found {', '.join(existing)})")
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainError(f"{path}: unreadable training state ({err})") from None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in expected.items()):
        raise TrainError(f"{path}: not {what} of this vadclip version")
    saved = json.loads(state["config"])
    changed = [f"{k} ({saved.get(k)!r} -> {config[k]!r})" for k in config
               if k not in resumable and saved.get(k) != config[k]]
    if changed:
        raise TrainError(f"{out_dir}: cannot resume with different settings: {'; '.join(changed)}")
    saved_recipe = {k: v for k, v in json.loads(state["recipe"]).items() if k not in recipe_free}
    if saved_recipe != {k: v for k, v in recipe.items() if k not in recipe_free}:
        raise TrainError(f"{out_dir}: cannot resume, the preset's recipe changed since the run started")
    return state
