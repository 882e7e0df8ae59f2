"""Helpers shared by the subcommands: the --model argument, devices, data specs.

Loading models, data specs and writing outputs are library code (:mod:`magvit2.models`,
:func:`magvit2.data.config.data_config`, :mod:`magvit2.data.writers`, :mod:`magvit2.files`);
``load_tokenizer`` and ``data_config`` are re-exported here for the subcommands."""
from __future__ import annotations

import torch

from magvit2.data.config import data_config
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
