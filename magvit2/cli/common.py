"""Helpers shared by the subcommands: model resolution, devices, safe output writing."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

__all__ = ["load_tokenizer", "pick_device", "atomic_output", "add_model_arg", "data_config"]


def add_model_arg(parser, kind: str = "tokenizer") -> None:
    parser.add_argument("--model", default=None, metavar="DIR",
                        help=f"{kind} directory (config.json + model.safetensors); default: the shipped {kind}")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but CUDA is not available")
    return torch.device(name)


def load_tokenizer(model: str | None, device: torch.device | str = "cpu", kind: str = "tokenizer"):
    from magvit2.pretrained import default_model_dir
    from magvit2.tokenizer import VideoTokenizer

    path = Path(model) if model else default_model_dir(kind)
    return VideoTokenizer.from_pretrained(path).to(device).eval()


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it.

    An existing output is therefore never replaced by a partial or failed one.
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory; expected a file path")
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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
