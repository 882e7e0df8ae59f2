from __future__ import annotations

import pytest

from magvit2 import TokenizerConfig
from magvit2.config import ConfigError


@pytest.mark.parametrize("name", ["tiny", "small", "image-128", "image-256", "video-17x128"])
def test_presets_yaml_round_trip(name: str, tmp_path) -> None:
    cfg = TokenizerConfig.preset(name)
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TokenizerConfig.from_yaml(tmp_path / "c.yaml") == cfg
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg


def test_paper_presets() -> None:
    c = TokenizerConfig.preset("image-128")
    assert (c.base_channels, c.channel_multipliers, c.bits) == (128, (1, 2, 2, 4), 18)
    assert c.latent_shape(1, 128, 128) == (1, 16, 16)
    assert TokenizerConfig.preset("image-256").latent_shape(1, 256, 256) == (1, 16, 16)


def test_overrides() -> None:
    cfg = TokenizerConfig.preset("tiny").override(["bits=10", "quantizer.temperature=0.05", "channel_multipliers=[1,2,4]"])
    assert cfg.bits == 10 and cfg.quantizer.temperature == 0.05 and cfg.channel_multipliers == (1, 2, 4)
    with pytest.raises(ConfigError, match="bad override"):
        TokenizerConfig.preset("tiny").override(["nonexistent=1"])
    with pytest.raises(ConfigError, match="bad override"):
        TokenizerConfig.preset("tiny").override(["bits=abc"])
    with pytest.raises(ConfigError, match="expected key=value"):
        TokenizerConfig.preset("tiny").override(["bits"])


def test_unknown_preset_and_keys(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown TokenizerConfig preset"):
        TokenizerConfig.preset("huge")
    with pytest.raises(ConfigError, match="unknown key"):
        TokenizerConfig.from_dict({"bitz": 3})
    with pytest.raises(ConfigError, match="not found"):
        TokenizerConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="temporal_downsample needs"):
        TokenizerConfig(channel_multipliers=(1, 2), temporal_downsample=(True, True))


def test_shipped_yaml_configs_equal_their_presets() -> None:
    """configs/<kind>/<name>.yaml is the preset of the same name, written out (so the two cannot drift)."""
    from pathlib import Path

    from magvit2.train.config import TokenizerTrainConfig
    from magvit2.train.lm_config import LMTrainConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    checked = 0
    for kind, cls in (("tokenizer", TokenizerTrainConfig), ("lm", LMTrainConfig)):
        for path in sorted((root / kind).glob("*.yaml")):
            assert cls.from_yaml(path) == cls.preset(path.stem), path.name
            checked += 1
    assert checked >= 5
