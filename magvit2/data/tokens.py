"""Token shards on disk and a dataset over them.

A token directory holds ``shard_XXXXX.safetensors`` files, each with
``tokens`` (int32 ``[n, t', h', w']``) and ``labels`` (int64 ``[n]``), and a
``manifest.json`` describing the tokenizer, grid and bits. Shards are written
atomically, so a shard file that exists is complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset

__all__ = ["TokenDataset", "read_manifest", "MANIFEST", "shard_name"]

MANIFEST = "manifest.json"


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a token directory: {MANIFEST} missing (run `magvit2 tokenize` first)")
    return json.loads(path.read_text())


class TokenDataset(Dataset):
    """All shards of a token directory in memory: items ``{"tokens": [t', h', w'] int64, "label": int, "index": int}``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        shards = sorted(self.dir.glob("shard_*.safetensors"))
        if len(shards) != self.manifest["num_shards"]:
            raise ValueError(f"{self.dir}: manifest lists {self.manifest['num_shards']} shards, found {len(shards)}")
        parts = [load_file(str(p)) for p in shards]
        self.tokens = torch.cat([p["tokens"] for p in parts]).long()
        self.labels = torch.cat([p["labels"] for p in parts]).long()
        grid = tuple(self.manifest["grid"])
        if tuple(self.tokens.shape[1:]) != grid:
            raise ValueError(f"{self.dir}: tokens have grid {tuple(self.tokens.shape[1:])}, manifest says {grid}")

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(self.manifest["grid"])  # type: ignore[return-value]

    @property
    def bits(self) -> int:
        return int(self.manifest["bits"])

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"tokens": self.tokens[i], "label": int(self.labels[i]), "index": i}
