"""Model I/O, one on-disk format for every model: ``config.json`` (format tag + config) beside
``model.safetensors``. The models' ``save_pretrained`` / ``from_pretrained`` use these functions.

Every exported model (tokenizer, language models) uses these two functions, so
a model can be rebuilt from its directory alone. Writes are atomic per file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from magvit2.errors import UserError
from magvit2.files import atomic_write

__all__ = ["CheckpointError", "save_pretrained", "load_pretrained", "load_state_strict", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(UserError):
    """A path is not a loadable magvit2 model directory."""


def save_pretrained(path: str | Path, fmt: str, config: dict[str, Any], state: dict[str, torch.Tensor],
                    extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format": fmt, "config": config, **(extra or {})}
    with atomic_write(path / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_write(path / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": fmt})
    return path


def load_pretrained(path: str | Path, fmt: str, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(meta, state)``; ``meta["config"]`` is the config dict. Clear errors for anything else."""
    path = Path(path)
    cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not path.is_dir():
        raise CheckpointError(f"model directory not found: {path}")
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(f"{path} is not a magvit2 model: expected {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != fmt or not isinstance(meta.get("config"), dict):
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{cfg_file} does not describe a {fmt} checkpoint (found format {found!r})")
    try:
        state = load_file(str(weights), device=str(map_location))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{weights} is not a readable safetensors file ({e.__class__.__name__})") from e
    return meta, state


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path | str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match its config: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}")
