"""Training checkpoints: full state, written atomically, carrying their config.

A checkpoint is one file ``step_XXXXXXX.pt`` (plus ``latest.pt`` pointing at the
newest) holding model, EMA, optimizers, schedulers, step, RNG states, data
position and the config as a plain dict. It is written to a temporary file and
renamed, so a crash never leaves a half-written checkpoint. Exported models use
``save_pretrained`` (safetensors + config.json) instead.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from magvit2.layers.model_io import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], directory: str | Path, step: int, keep: int = 2) -> Path:
    """Atomically write ``state`` as ``step_{step:07d}.pt`` and update ``latest.pt``; keep the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:07d}.pt"
    tmp = directory / f".{path.name}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    latest_tmp = directory / ".latest.tmp"
    latest_tmp.write_text(path.name)
    os.replace(latest_tmp, directory / "latest")
    if keep > 0:
        for old in sorted(directory.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    directory = Path(directory)
    marker = directory / "latest"
    if marker.is_file():
        p = directory / marker.read_text().strip()
        if p.is_file():
            return p
    found = sorted(directory.glob("step_*.pt")) if directory.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # RNG states hold numpy arrays and Python tuples, so full unpickling is needed;
        # only load training checkpoints you wrote yourself.
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path} is not a readable magvit2 training checkpoint ({e.__class__.__name__})") from e
