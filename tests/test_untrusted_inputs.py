"""Readers of untrusted directories: token shards (`magvit2 tokenize` output) and model directories refuse
inconsistent, damaged or absurd inputs with one line, before allocating what they describe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from magvit2.data.tokens import MANIFEST, TokenDataError, TokenDataset, shard_name


def _token_dir(path: Path, shards: int = 2, n: int = 3, grid=(2, 4, 4), bits: int = 8) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for k in range(shards):
        tokens = torch.randint(0, 2**bits, (n, *grid), generator=g, dtype=torch.int32)
        save_file({"tokens": tokens, "labels": torch.arange(n)}, str(path / shard_name(k)))
    manifest = {"num_items": shards * n, "num_shards": shards, "shard_size": n, "grid": list(grid), "bits": bits,
                "class_names": None}
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


def _edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / MANIFEST).read_text())
    m.update(changes)
    (path / MANIFEST).write_text(json.dumps(m))


def test_token_directory_loads(tmp_path: Path) -> None:
    data = TokenDataset(_token_dir(tmp_path / "ok"))
    assert len(data) == 6 and data.grid == (2, 4, 4) and data.tokens.dtype == torch.int64


@pytest.mark.parametrize("changes,match", [
    ({"grid": [2, 4]}, "grid"),
    ({"grid": [2, 4, 10**9]}, "grid"),
    ({"grid": "2x4x4"}, "grid"),
    ({"bits": "8"}, "bits"),
    ({"bits": 99}, "bits"),
    ({"num_shards": 10**12}, "num_shards"),
    ({"num_shards": 3}, "shards"),
    ({"num_items": 7}, "items"),
    ({"grid": [2, 4, 5]}, "grid"),
    ({"bits": 4}, "token ids"),
])
def test_inconsistent_manifest_is_refused(tmp_path: Path, changes: dict, match: str) -> None:
    d = _token_dir(tmp_path / "d")
    _edit_manifest(d, **changes)
    with pytest.raises(TokenDataError, match=match):
        TokenDataset(d)


def test_damaged_token_files_are_refused(tmp_path: Path) -> None:
    d = _token_dir(tmp_path / "json")
    (d / MANIFEST).write_text("[1, 2")
    with pytest.raises(TokenDataError, match="JSON"):
        TokenDataset(d)
    (d / MANIFEST).write_text("[1, 2]")
    with pytest.raises(TokenDataError, match="object"):
        TokenDataset(d)
    (d / MANIFEST).write_text(" " * (2 << 20))
    with pytest.raises(TokenDataError, match="too large"):
        TokenDataset(d)

    d = _token_dir(tmp_path / "trunc")
    blob = (d / shard_name(1)).read_bytes()
    (d / shard_name(1)).write_bytes(blob[:-8])  # safetensors: the header must cover the file exactly
    with pytest.raises(TokenDataError, match="safetensors"):
        TokenDataset(d)
    (d / shard_name(1)).write_bytes(blob + bytes(8))
    with pytest.raises(TokenDataError, match="safetensors"):
        TokenDataset(d)

    d = _token_dir(tmp_path / "extra")
    save_file({"tokens": torch.zeros(3, 2, 4, 4, dtype=torch.int32), "labels": torch.zeros(3, dtype=torch.long),
               "more": torch.zeros(1)}, str(d / shard_name(0)))
    with pytest.raises(TokenDataError, match="expected tensors"):
        TokenDataset(d)
    save_file({"tokens": torch.zeros(3, 2, 4, 4), "labels": torch.zeros(3, dtype=torch.long)}, str(d / shard_name(0)))
    with pytest.raises(TokenDataError, match="integers"):
        TokenDataset(d)
    save_file({"tokens": torch.zeros(3, 2, 4, 4, dtype=torch.int32), "labels": torch.zeros(2, dtype=torch.long)},
              str(d / shard_name(0)))
    with pytest.raises(TokenDataError, match="labels"):
        TokenDataset(d)
    (d / shard_name(5)).write_bytes(b"")
    with pytest.raises(TokenDataError, match="found 3"):
        TokenDataset(d)
