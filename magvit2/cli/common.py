"""Helpers shared by the subcommands: the --model argument, devices, data specs.

Loading models and writing outputs are library code (:mod:`magvit2.models`, :mod:`magvit2.data.writers`,
:mod:`magvit2.files`); ``load_tokenizer`` is re-exported here for the subcommands."""
from __future__ import annotations

import torch

from magvit2.errors import UserError
from magvit2.models import load_tokenizer

__all__ = ["load_tokenizer", "pick_device", "add_model_arg", "data_config"]


def add_model_arg(parser, kind: str = "tokenizer") -> None:
    parser.add_argument("--model", default=None, metavar="DIR",
                        help=f"{kind} directory (config.json + model.safetensors); default: the shipped {kind}")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} requested but CUDA is not available; expected --device cpu or auto")
    return torch.device(name)


def data_config(spec: str, frames: int | None = None, resolution: int | None = None, num_samples: int | None = None):
    """A DataConfig from a preset name, a YAML file, or a path/built-in source, plus optional overrides."""
    import dataclasses
    from pathlib import Path

    from magvit2.data import BUILTIN_SOURCES, DataConfig

    if spec in DataConfig.preset_names():
        cfg = DataConfig.preset(spec)
    elif spec.endswith((".yaml", ".yml")):
        cfg = DataConfig.from_yaml(spec)
    elif spec in BUILTIN_SOURCES or Path(spec).exists():
        cfg = DataConfig(source=spec)
    else:
        raise FileNotFoundError(f"data source not found: {spec} (expected a folder, list file, YAML, or one of "
                                f"{sorted(set(DataConfig.preset_names()) | set(BUILTIN_SOURCES))})")
    changes = {k: v for k, v in (("num_frames", frames), ("resolution", resolution), ("num_samples", num_samples)) if v}
    return dataclasses.replace(cfg, **changes) if changes else cfg
