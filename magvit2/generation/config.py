"""Typed config for the token language models (masked MLM and autoregressive).

One :class:`LMConfig` describes both generators: they share the token
factorization, the embeddings, the conditioning and the transformer blocks,
and differ only in the attention mask and the training objective.

Presets:

* ``tiny``: unit tests (2 layers, width 64, grid 2x4x4, 8 bits as 4+4, 2 classes).
* ``digits``: a small model that trains on CPU (grid 3x8x8, 10 bits as 5+5, 10 classes).
* ``image-256``: ImageNet 256x256, 16x16 tokens of 18 bits (9+9), 1000 classes.
* ``video-17x128``: UCF-101 class-conditional video, 17 frames at 128x128 ->
  5x16x16 tokens of 18 bits (9+9), 24 layers, width 1024, 16 heads, 101 classes.
* ``video-17x128-fp``: the same network for unconditional frame prediction
  (Kinetics-600: the first latent frames are given as context), no classes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar
from dataclasses import dataclass

from magvit2.config.base import Config, ConfigError
from magvit2.quantizers.factorize import split_bits

__all__ = ["LMConfig", "MASK_SCHEDULES", "POS_EMBEDDINGS"]

MASK_SCHEDULES = ("cosine", "arccos", "linear")
POS_EMBEDDINGS = ("learned", "factorized")


@dataclass
class LMConfig(Config):
    """Token language model config.

    Fields:
        bits: bits per token (the tokenizer's LFQ dimension; vocabulary 2^bits).
        groups: number of sub-tokens a token is split into (18 bits, 2 groups -> 9 + 9;
            see :func:`magvit2.quantizers.factorize.split_bits`).
        grid: token grid (t, h, w); the sequence is its raster flattening, n = t * h * w.
        num_classes: number of class labels; 0 = unconditional. A "null" class with id
            ``num_classes`` is always present (classifier-free guidance, unconditional use).
        class_dropout: probability of replacing a label by the null class during training.
        class_everywhere: besides the class prefix token, add the class embedding to every
            position's input. A direct path for the class; it helps small models trained briefly
            to use it at all (the paper's models use the prefix alone, the default).
        class_modulation: also modulate every transformer block by the class embedding (adaLN,
            zero-initialised, so it starts as the unmodulated model). The class then reaches every
            layer directly, not only through attention to the prefix.
        depth, width, heads, mlp_ratio, dropout: transformer size (pre-norm blocks).
        tie_weights: each prediction head reuses its sub-token embedding table (plus a bias).
        pos_embedding: "learned" (one vector per position) or "factorized" (sum of t, h, w vectors).
        label_smoothing: label smoothing of the cross-entropy, applied per sub-token.
        mask_schedule: gamma(r) for training masks and decoding: "cosine" | "arccos" | "linear".
        init_std: std of the normal initialisation of linear and embedding weights.
    """

    added_fields: ClassVar[dict[str, Any]] = {"class_modulation": False}

    bits: int = 18
    groups: int = 2
    grid: tuple[int, int, int] = (5, 16, 16)
    num_classes: int = 0
    class_dropout: float = 0.1
    class_everywhere: bool = False
    class_modulation: bool = False
    depth: int = 24
    width: int = 1024
    heads: int = 16
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    tie_weights: bool = False
    pos_embedding: str = "learned"
    label_smoothing: float = 0.1
    mask_schedule: str = "cosine"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        self.grid = tuple(int(x) for x in self.grid)  # type: ignore[assignment]
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ConfigError(f"LMConfig.grid must be three positive ints (t, h, w), got {self.grid}")
        if not 1 <= self.bits <= 62:
            raise ConfigError(f"LMConfig.bits must be in [1, 62], got {self.bits}")
        if not 1 <= self.groups <= self.bits:
            raise ConfigError(f"LMConfig.groups must be in [1, bits={self.bits}], got {self.groups}")
        if max(self.bits_per_group) > 20:
            raise ConfigError(f"sub-tokens of {max(self.bits_per_group)} bits are too large for a softmax head; raise groups")
        if self.num_classes < 0:
            raise ConfigError(f"LMConfig.num_classes must be >= 0, got {self.num_classes}")
        if not 0.0 <= self.class_dropout < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropouts must be in [0, 1), got class_dropout={self.class_dropout}, dropout={self.dropout}")
        if self.depth < 1 or self.heads < 1 or self.width % self.heads:
            raise ConfigError(f"need depth >= 1 and width divisible by heads, got depth={self.depth} width={self.width} heads={self.heads}")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"LMConfig.mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.pos_embedding not in POS_EMBEDDINGS:
            raise ConfigError(f"LMConfig.pos_embedding must be one of {POS_EMBEDDINGS}, got {self.pos_embedding!r}")
        if self.mask_schedule not in MASK_SCHEDULES:
            raise ConfigError(f"LMConfig.mask_schedule must be one of {MASK_SCHEDULES}, got {self.mask_schedule!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"LMConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")

    @property
    def bits_per_group(self) -> tuple[int, ...]:
        """Bits of each sub-token, group 0 = lowest bits of the token index."""
        return split_bits(self.bits, self.groups)

    @property
    def seq_len(self) -> int:
        """Number of token positions n = t * h * w."""
        t, h, w = self.grid
        return t * h * w

    @property
    def null_class(self) -> int:
        """Id of the null (unconditional) class."""
        return self.num_classes


@LMConfig.register_preset("tiny")
def _tiny() -> LMConfig:
    return LMConfig(bits=8, groups=2, grid=(2, 4, 4), num_classes=2, depth=2, width=64, heads=4,
                    dropout=0.0, label_smoothing=0.0)


@LMConfig.register_preset("digits")
def _digits() -> LMConfig:
    return LMConfig(bits=10, groups=2, grid=(3, 8, 8), num_classes=10, depth=4, width=128, heads=4,
                    dropout=0.0, label_smoothing=0.0, class_everywhere=True)


@LMConfig.register_preset("image-256")
def _image_256() -> LMConfig:
    return LMConfig(bits=18, groups=2, grid=(1, 16, 16), num_classes=1000, depth=24, width=1024, heads=16)


@LMConfig.register_preset("video-17x128")
def _video_17x128() -> LMConfig:
    return LMConfig(bits=18, groups=2, grid=(5, 16, 16), num_classes=101, depth=24, width=1024, heads=16)


@LMConfig.register_preset("video-17x128-fp")
def _video_17x128_fp() -> LMConfig:
    return dataclasses.replace(_video_17x128(), num_classes=0, class_dropout=0.0)
