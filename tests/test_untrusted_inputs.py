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


# ----- model directories -------------------------------------------------------------------------


def _edit_config(path: Path, **changes) -> None:
    meta = json.loads((path / "config.json").read_text())
    meta["config"].update(changes)
    (path / "config.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    from magvit2.generation.config import LMConfig
    from magvit2.generation.pipeline import VideoGenerator, build_lm
    from magvit2.tokenizer import TokenizerConfig, VideoTokenizer

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig.preset("tiny"))
    tok.save_pretrained(root / "tok")
    lm = build_lm(LMConfig.preset("tiny", bits=tok.config.token_bits), "mlm")
    VideoGenerator(lm, tok).save_pretrained(root / "gen")
    return {"tok": root / "tok", "gen": root / "gen"}


@pytest.mark.parametrize("changes,match", [
    ({"base_channels": 10**7}, "shape"),  # built for real: 10**14 weights per conv
    ({"num_res_blocks": 10**7}, "modules"),  # built for real: hours of constructing layers (cap lowered below)
    ({"channel_multipliers": [1, 2, 2], "temporal_downsample": [True, False]}, "shape|describes"),
])
def test_tokenizer_directory_with_absurd_sizes_fails_fast(model_dirs, tmp_path: Path, monkeypatch, changes,
                                                          match) -> None:
    import shutil

    import magvit2.layers.model_io as model_io

    from magvit2.layers.model_io import CheckpointError
    from magvit2.tokenizer import VideoTokenizer

    d = tmp_path / "tok"
    shutil.copytree(model_dirs["tok"], d)
    VideoTokenizer.from_pretrained(d)  # intact
    monkeypatch.setattr(model_io, "MAX_MODULES", 300)  # the tiny preset has about 100; reach the cap quickly
    _edit_config(d, **changes)
    with pytest.raises(CheckpointError, match=match):
        VideoTokenizer.from_pretrained(d)


@pytest.mark.parametrize("changes,match", [({"width": 2**20, "heads": 1}, "shape"), ({"depth": 10**7}, "modules")])
def test_generator_directory_with_absurd_sizes_fails_fast(model_dirs, tmp_path: Path, monkeypatch, changes,
                                                          match) -> None:
    import shutil

    import magvit2.layers.model_io as model_io

    from magvit2.generation.pipeline import VideoGenerator
    from magvit2.layers.model_io import CheckpointError

    d = tmp_path / "gen"
    shutil.copytree(model_dirs["gen"], d)
    VideoGenerator.from_pretrained(d)
    monkeypatch.setattr(model_io, "MAX_MODULES", 300)
    _edit_config(d, **changes)
    with pytest.raises(CheckpointError, match=match):
        VideoGenerator.from_pretrained(d)
