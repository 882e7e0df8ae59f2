"""Streaming end to end on the command line: `magvit2 info`, long videos through reconstruct and the codec."""
from __future__ import annotations

from magvit2.cli.main import main
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.tokenizer.stream import temporal_receptive_field


def test_info_prints_the_receptive_field(capsys) -> None:
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    rf = temporal_receptive_field(TokenizerConfig.preset("tiny"))
    assert f"{rf.encoder} input frames per latent frame" in out and "longer than the trained clips (17)" in out
    assert main(["info", "--preset", "nope"]) == 2
    assert "unknown TokenizerConfig preset" in capsys.readouterr().err
