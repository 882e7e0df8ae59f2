"""Token shards on disk and a dataset over them.

A token directory holds ``shard_XXXXX.safetensors`` files, each with
``tokens`` (int32 ``[n, t', h', w']``) and ``labels`` (int64 ``[n]``), and a
``manifest.json`` describing the tokenizer, grid and bits. Shards are written
atomically, so a shard file that exists is complete. Whole videos tokenized as
streams (``"layout": "gops"`` in the manifest) have one shard per video, one item
per group of pictures, and a third tensor ``frames`` (int64 ``[n]``): each GOP's
real frame count.

Token directories may come from elsewhere, so the reader trusts nothing: the
manifest must be a small JSON object with well-typed fields, the shards must be
exactly the ones it lists, and each shard's tensor names, dtypes and shapes are
checked from its safetensors header before any data is read (safetensors itself
refuses a file its header does not cover exactly, and no tensor can be larger
than the file holding it). Token ids must lie in ``[0, 2**bits)``. Anything
else is a one-line :class:`TokenDataError`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch.utils.data import Dataset

from magvit2.errors import UserError

__all__ = ["TokenDataset", "TokenDataError", "read_manifest", "MANIFEST", "shard_name"]

MANIFEST = "manifest.json"
LAYOUTS = ("clips", "gops")  #: fixed clips of a dataset / whole videos as groups of pictures
MAX_MANIFEST_BYTES = 1 << 20  #: a manifest is a few hundred bytes; refuse anything past 1 MiB unread
MAX_SHARDS = 1 << 20
_INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32"}


class TokenDataError(UserError):
    """A token directory (``magvit2 tokenize`` output) is missing, inconsistent or damaged."""


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def _is_int(x: Any, low: int, high: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The checked manifest of a token directory: ``num_shards``, ``grid`` (t', h', w') and ``bits`` at least."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a token directory: {MANIFEST} missing "
                                "(run `magvit2 tokenize` first)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise TokenDataError(f"{path}: {path.stat().st_size} bytes is too large for a manifest "
                             f"(at most {MAX_MANIFEST_BYTES})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenDataError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise TokenDataError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    grid = manifest.get("grid")
    if not _is_int(manifest.get("num_shards"), 1, MAX_SHARDS):
        raise TokenDataError(f"{path}: num_shards must be an integer in [1, {MAX_SHARDS}], "
                             f"got {manifest.get('num_shards')!r}")
    if not isinstance(grid, list) or len(grid) != 3 or not all(_is_int(x, 1, 1 << 16) for x in grid):
        raise TokenDataError(f"{path}: grid must be three integers in [1, 65536] (t', h', w'), got {grid!r}")
    if not _is_int(manifest.get("bits"), 1, 62):
        raise TokenDataError(f"{path}: bits must be an integer in [1, 62], got {manifest.get('bits')!r}")
    if "num_items" in manifest and not _is_int(manifest["num_items"], 0, 1 << 40):
        raise TokenDataError(f"{path}: num_items must be a non-negative integer, got {manifest['num_items']!r}")
    if manifest.get("layout", "clips") not in LAYOUTS:
        raise TokenDataError(f"{path}: layout must be one of {list(LAYOUTS)}, got {manifest.get('layout')!r}")
    if manifest.get("layout") == "gops" and not _is_int(manifest.get("gop"), 1, 1 << 30):
        raise TokenDataError(f"{path}: a 'gops' layout needs gop, a positive integer, got {manifest.get('gop')!r}")
    return manifest


def _check_shard(path: Path, grid: tuple[int, ...], names: set[str]) -> int:
    """Names, dtypes and shapes of one shard from its header alone; returns its number of items."""
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if keys != names:
                raise TokenDataError(f"{path}: expected tensors {sorted(names)}, got {sorted(keys)}")
            t_shape = tuple(f.get_slice("tokens").get_shape())
            per_item = {k: tuple(f.get_slice(k).get_shape()) for k in sorted(names - {"tokens"})}
            dtypes = {f.get_slice(k).get_dtype() for k in names}
    except SafetensorError as e:
        raise TokenDataError(f"{path} is not a readable safetensors file ({e})") from e
    if not dtypes <= _INT_DTYPES:
        raise TokenDataError(f"{path}: {' and '.join(sorted(names))} must be integers, got {sorted(dtypes)}")
    if t_shape[1:] != grid or any(shape != (t_shape[0],) for shape in per_item.values()):
        shapes = ", ".join(f"{k} {list(v)}" for k, v in per_item.items())
        raise TokenDataError(f"{path}: tokens {list(t_shape)} and {shapes} do not match the manifest's grid "
                             f"{list(grid)} ([n, {', '.join(map(str, grid))}] and [n] expected)")
    return t_shape[0]


class TokenDataset(Dataset):
    """All shards of a token directory in memory: items ``{"tokens": [t', h', w'] int64, "label": int, "index": int}``
    (plus ``"frames": int``, the real frames of a group of pictures, in the ``gops`` layout).

    Raises :class:`TokenDataError` for a directory whose shards do not match its manifest.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        expected = [self.dir / shard_name(k) for k in range(self.manifest["num_shards"])]
        shards = sorted(self.dir.glob("shard_*.safetensors"))
        if shards != expected:
            raise TokenDataError(f"{self.dir}: manifest lists {len(expected)} shards "
                                 f"({expected[0].name} .. {expected[-1].name}), found {len(shards)}")
        grid = self.grid
        names = {"tokens", "labels", "frames"} if self.layout == "gops" else {"tokens", "labels"}
        counts = [_check_shard(p, grid, names) for p in shards]  # every header before any data is read
        if "num_items" in self.manifest and sum(counts) != self.manifest["num_items"]:
            raise TokenDataError(f"{self.dir}: shards hold {sum(counts)} items, "
                                 f"the manifest says {self.manifest['num_items']}")
        parts = [load_file(str(p)) for p in shards]
        self.tokens = torch.cat([p["tokens"] for p in parts]).long()
        self.labels = torch.cat([p["labels"] for p in parts]).long()
        self.frames = torch.cat([p["frames"] for p in parts]).long() if self.layout == "gops" else None
        if self.tokens.numel() and (int(self.tokens.min()) < 0 or int(self.tokens.max()) >= 2**self.bits):
            raise TokenDataError(f"{self.dir}: token ids must lie in [0, 2**{self.bits}), got "
                                 f"[{int(self.tokens.min())}, {int(self.tokens.max())}]")

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(self.manifest["grid"])  # type: ignore[return-value]

    @property
    def bits(self) -> int:
        return int(self.manifest["bits"])

    @property
    def layout(self) -> str:
        """``"clips"`` (fixed clips of a dataset) or ``"gops"`` (whole videos, one item per group of pictures)."""
        return self.manifest.get("layout", "clips")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"tokens": self.tokens[i], "label": int(self.labels[i]), "index": i}
        if self.frames is not None:
            item["frames"] = int(self.frames[i])
        return item
