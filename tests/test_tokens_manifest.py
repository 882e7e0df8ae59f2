"""Facts travel with the data: ``tokenize`` records the label names and count, and ``train lm`` takes
the grid, bits and number of classes from the token manifest unless set, refusing a conflicting setting."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from magvit2.cli.main import main
from magvit2.config.base import ConfigError
from magvit2.data.tokens import read_manifest
from magvit2.data.synthetic import SHAPES, MovingShapes
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer
from magvit2.train.lm_config import LMTrainConfig, config_from_tokens
from magvit2.train.tokenize import tokenize_dataset


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig.preset("tiny")).eval()
    out = tmp_path_factory.mktemp("tok") / "tokens"
    return tokenize_dataset(tok, MovingShapes(6, 5, 16, 0), out, shard_size=6, batch_size=3, progress=False)


def test_tokenize_keeps_label_names_and_count(tokens: Path) -> None:
    m = read_manifest(tokens)
    assert m["class_names"] == list(SHAPES) and m["num_classes"] == len(SHAPES)
    assert m["grid"] == [2, 4, 4] and m["bits"] == 8


def test_lm_config_comes_from_the_manifest(tokens: Path) -> None:
    cfg = LMTrainConfig.preset("tiny", tokens=str(tokens))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, grid=(5, 8, 8), bits=10, num_classes=0))
    got = config_from_tokens(cfg)
    assert (got.model.grid, got.model.bits, got.model.num_classes) == ((2, 4, 4), 8, len(SHAPES))
    assert config_from_tokens(cfg.override(["model.bits=8"]), ["model.bits=8"]).model.bits == 8  # agrees: fine
    with pytest.raises(ConfigError, match=r"model.grid=\[5, 8, 8\] conflicts with the tokens") as e:
        config_from_tokens(cfg, ["model.grid=[5,8,8]"])
    assert "\n" not in str(e.value)


def test_train_lm_cli_refuses_a_conflicting_setting(tokens: Path, tmp_path: Path, capsys) -> None:
    args = ["train", "lm", "--config", "tiny", f"tokens={tokens}", f"out_dir={tmp_path / 'lm'}", "steps=1"]
    assert main(args + ["model.num_classes=7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.num_classes=7 conflicts with the tokens" in err[0]
    assert not (tmp_path / "lm").exists()
