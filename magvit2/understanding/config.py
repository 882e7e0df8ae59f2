"""Typed configs for video understanding: the classifier network, its training, masked pre-training.

One :class:`ClassifierConfig` describes both inputs the paper compares:

* ``inputs="tokens"``: the frozen tokenizer's token grid ``(t', h', w')``, each d-bit token
  factorized into ``groups`` sub-tokens and embedded with the generator's
  :class:`~magvit2.generation.transformer.SubTokenEmbedding`;
* ``inputs="pixels"``: tubelet patches of ``tubelet = (pt, ph, pw)`` pixels, cut causally like the
  tokenizer (the first frame is its own tubelet), so the patch grid equals the token grid and
  masked pre-training can predict the token of each patch;
* ``inputs="frame"``: the pixel model shown only the middle frame (a single-frame baseline).

``grid`` and ``bits`` are filled in by the trainers from the data and the tokenizer.

Presets (all three configs): ``tiny`` (unit tests), ``motion`` (the CPU benchmark on
9x32x32 motion digits with the shipped digits tokenizer), ``video-17x128`` (UCF-101 on GPUs).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from magvit2.config.base import Config, ConfigError
from magvit2.data import DataConfig
from magvit2.quantizers.factorize import split_bits
from magvit2.train.config import OptimConfig, RunConfig

__all__ = ["INPUTS", "TARGETS", "MASKINGS", "ClassifierConfig", "ClassifierTrainConfig", "PretrainConfig"]

INPUTS = ("tokens", "pixels", "frame")
TARGETS = ("tokens", "pixels")
MASKINGS = ("random", "tube")


@dataclass
class ClassifierConfig(Config):
    """A small video transformer with a class head.

    Fields:
        inputs: "tokens", "pixels" or "frame" (see the module docstring).
        num_classes: size of the class head.
        grid: (t', h', w') positions: the token grid, or the tubelet grid of the pixels.
        bits, groups: token bits and sub-token groups (tokens only; 10 bits, 2 groups -> 5 + 5).
        tubelet: (pt, ph, pw) pixels per patch (pixels/frame); pt = the tokenizer's temporal factor.
        channels: colour channels of the pixels.
        depth, width, heads, mlp_ratio, dropout: transformer size (the generator's pre-norm blocks).
        pos_embedding: "learned" or "factorized" (as the generator's).
        init_std: std of the normal initialisation.
    """

    inputs: str = "tokens"
    num_classes: int = 10
    grid: tuple[int, int, int] = (3, 8, 8)
    bits: int = 10
    groups: int = 2
    tubelet: tuple[int, int, int] = (4, 4, 4)
    channels: int = 3
    depth: int = 4
    width: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    pos_embedding: str = "factorized"
    init_std: float = 0.02

    def __post_init__(self) -> None:
        self.grid = tuple(int(x) for x in self.grid)  # type: ignore[assignment]
        self.tubelet = tuple(int(x) for x in self.tubelet)  # type: ignore[assignment]
        if self.inputs not in INPUTS:
            raise ConfigError(f"ClassifierConfig.inputs: expected one of {INPUTS}, got {self.inputs!r}")
        if len(self.grid) != 3 or min(self.grid) < 1 or len(self.tubelet) != 3 or min(self.tubelet) < 1:
            raise ConfigError(f"ClassifierConfig.grid and tubelet: expected three positive ints, got {self.grid}, {self.tubelet}")
        if self.num_classes < 1:
            raise ConfigError(f"ClassifierConfig.num_classes: expected >= 1, got {self.num_classes}")
        if not 1 <= self.groups <= self.bits <= 62:
            raise ConfigError(f"ClassifierConfig: expected 1 <= groups <= bits <= 62, got groups={self.groups} bits={self.bits}")
        if self.depth < 1 or self.heads < 1 or self.width % self.heads:
            raise ConfigError(f"ClassifierConfig: need depth >= 1 and width divisible by heads, got {self.depth}, {self.width}, {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ClassifierConfig.dropout: expected [0, 1), got {self.dropout}")

    @property
    def bits_per_group(self) -> tuple[int, ...]:
        return split_bits(self.bits, self.groups)

    @property
    def patch_dim(self) -> int:
        """Pixel values per tubelet (c * pt * ph * pw)."""
        pt, ph, pw = self.tubelet
        return self.channels * pt * ph * pw

    @property
    def input_grid(self) -> tuple[int, int, int]:
        """Positions the transformer sees: the grid, with one frame for ``inputs="frame"``."""
        return (1, *self.grid[1:]) if self.inputs == "frame" else self.grid


@dataclass
class _UnderstandingRun(RunConfig):
    """What classifier training and masked pre-training share."""

    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(source="motion", num_frames=9, resolution=32,
                                                                random_flip=False))
    tokenizer: str = ""  #: frozen tokenizer (default: the one in a ``tokens`` manifest, else the shipped digits one)
    cache: bool = True  #: hold the clips (and their tokens) in memory, encoded once; off for large data
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05,
                                                                     warmup_steps=50, grad_clip=1.0))


@dataclass
class ClassifierTrainConfig(_UnderstandingRun):
    """Supervised training (from scratch, fine-tuning ``init_from``, or a linear probe of it).

    Fields:
        eval_data: held-out data (default: ``data`` with ``train=False``).
        tokens: a token directory from ``magvit2 tokenize`` to train on instead of ``data`` (tokens inputs).
        label_fraction: fraction of the training items whose labels are used (a fixed subset, seeded by
            ``data.seed``, the same for every run).
        init_from: a pre-trained backbone directory (``magvit2 train pretrain``) to start from.
        linear_probe: freeze the backbone and train only the class head (needs ``init_from``).
        eval_items: held-out items evaluated at each ``eval_every``.
    """

    eval_data: DataConfig | None = None
    tokens: str = ""
    label_fraction: float = 1.0
    init_from: str = ""
    linear_probe: bool = False
    eval_items: int = 500
    eval_batch: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.label_fraction <= 1.0:
            raise ConfigError(f"label_fraction: expected (0, 1], got {self.label_fraction}")
        if self.linear_probe and not self.init_from:
            raise ConfigError("linear_probe=true needs init_from=DIR (a pre-trained backbone)")
        if self.init_from and self.model.inputs == "tokens":
            raise ConfigError("init_from: masked pre-training gives a pixel-input backbone; set model.inputs=pixels")


@dataclass
class PretrainConfig(_UnderstandingRun):
    """Masked pre-training of the pixel-input transformer on unlabelled clips (BEVT- or MAE-style).

    Fields:
        targets: "tokens" (predict the frozen tokenizer's token at each masked tubelet, BEVT) or
            "pixels" (regress the masked tubelet's pixels, MAE).
        mask_ratio: fraction of positions masked in every clip.
        masking: "random" positions, or "tube" (the same spatial positions in every latent frame).
        normalize_pixels: regress per-tubelet normalised pixels (MAE's better variant).
    """

    targets: str = "tokens"
    mask_ratio: float = 0.5
    masking: str = "random"
    normalize_pixels: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.targets not in TARGETS:
            raise ConfigError(f"targets: expected one of {TARGETS}, got {self.targets!r}")
        if self.masking not in MASKINGS:
            raise ConfigError(f"masking: expected one of {MASKINGS}, got {self.masking!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio: expected (0, 1), got {self.mask_ratio}")
        if self.model.inputs != "pixels":
            raise ConfigError(f"masked pre-training trains a pixel-input model; got model.inputs={self.model.inputs!r}")


# ----- presets -------------------------------------------------------------------
@ClassifierConfig.register_preset("tiny")
def _tiny_model() -> ClassifierConfig:
    return ClassifierConfig(depth=2, width=64, heads=4)


@ClassifierConfig.register_preset("motion")
def _motion_model() -> ClassifierConfig:
    return ClassifierConfig(depth=4, width=128, heads=4)


@ClassifierConfig.register_preset("video-17x128")
def _video_model() -> ClassifierConfig:
    """ViT-B-sized, on 17x128x128 clips: 5x16x16 tokens of 18 bits, or 4x8x8 tubelets; UCF-101."""
    return ClassifierConfig(num_classes=101, grid=(5, 16, 16), bits=18, groups=2, tubelet=(4, 8, 8),
                            depth=12, width=768, heads=12, dropout=0.1, pos_embedding="learned")


def _tiny_data() -> DataConfig:
    return DataConfig(source="motion", num_frames=9, resolution=32, num_samples=200, random_flip=False,
                      random_crop=False, random_offset=False)


def _video_data() -> DataConfig:
    """A class-folder video dataset (one folder per class, e.g. UCF-101): set ``data.source=DIR``."""
    return DataConfig(source="data/ucf101", kind="classes", num_frames=17, resolution=128, random_flip=True, probe=True)


_TINY_RUN = dict(steps=60, batch_size=32, log_every=10, eval_every=60, ckpt_every=60, ema_decay=0.0, progress=False,
                 optim=OptimConfig(lr=2e-3, betas=(0.9, 0.98), weight_decay=0.0, warmup_steps=5))
_MOTION_RUN = dict(steps=600, batch_size=32, log_every=50, eval_every=300, ckpt_every=300, ema_decay=0.0)
_VIDEO_RUN = dict(steps=50_000, batch_size=16, precision="bf16", num_workers=8, log_every=50, eval_every=2000,
                  ckpt_every=2000, ema_decay=0.0, cache=False,
                  optim=OptimConfig(lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05, warmup_steps=2000))


@ClassifierTrainConfig.register_preset("tiny")
def _tiny_train() -> ClassifierTrainConfig:
    return ClassifierTrainConfig(model=_tiny_model(), data=_tiny_data(), eval_items=100, out_dir="runs/classifier-tiny",
                                 **_TINY_RUN)


@ClassifierTrainConfig.register_preset("motion")
def _motion_train() -> ClassifierTrainConfig:
    data = DataConfig(source="motion", num_frames=9, resolution=32, num_samples=2000, random_flip=False)
    return ClassifierTrainConfig(model=_motion_model(), data=data, out_dir="runs/classifier-motion", **_MOTION_RUN)


@ClassifierTrainConfig.register_preset("video-17x128")
def _video_train() -> ClassifierTrainConfig:
    """Set ``data.source=`` to a class-folder video dataset (UCF-101) and ``tokenizer=`` to a video tokenizer."""
    return ClassifierTrainConfig(model=_video_model(), data=_video_data(), out_dir="runs/classifier-video-17x128",
                                 **_VIDEO_RUN)


@PretrainConfig.register_preset("tiny")
def _tiny_pretrain() -> PretrainConfig:
    return PretrainConfig(model=dataclasses.replace(_tiny_model(), inputs="pixels"), data=_tiny_data(),
                          out_dir="runs/pretrain-tiny", **_TINY_RUN)


@PretrainConfig.register_preset("motion")
def _motion_pretrain() -> PretrainConfig:
    data = DataConfig(source="motion", num_frames=9, resolution=32, num_samples=2000, random_flip=False, seed=1)
    return PretrainConfig(model=dataclasses.replace(_motion_model(), inputs="pixels"), data=data,
                          out_dir="runs/pretrain-motion", **_MOTION_RUN)


@PretrainConfig.register_preset("video-17x128")
def _video_pretrain() -> PretrainConfig:
    return PretrainConfig(model=dataclasses.replace(_video_model(), inputs="pixels"), data=_video_data(),
                          out_dir="runs/pretrain-video-17x128", mask_ratio=0.4, masking="tube", **_VIDEO_RUN)
