"""Typed training configs: run settings shared by every trainer, and the tokenizer's recipe.

Presets: ``tiny`` (CPU minutes, used by tests), ``image-128`` and
``video-17x128`` (the paper's recipes). YAML files under ``configs/`` are the
same dataclasses written out; ``key=value`` overrides apply on top.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from magvit2.config.base import Config, ConfigError
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.data import DataConfig
from magvit2.losses.adversarial import AdversarialConfig
from magvit2.losses.perceptual import PerceptualConfig
from magvit2.losses.tokenizer_loss import TokenizerLossConfig
from magvit2.tokenizer.discriminator import DiscriminatorConfig

__all__ = ["RunConfig", "OptimConfig", "TokenizerTrainConfig"]


@dataclass
class OptimConfig(Config):
    lr: float = 1e-4
    betas: tuple[float, ...] = (0.0, 0.99)  #: the paper's Adam betas
    weight_decay: float = 0.0
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.1  #: cosine decays to this fraction of lr
    grad_clip: float = 1.0  #: max global grad norm (0 disables clipping)


@dataclass
class RunConfig(Config):
    """Settings every trainer shares (loop length, precision, logging, checkpoints, processes)."""

    steps: int = 1000
    batch_size: int = 8  #: per process, per micro-batch
    grad_accum: int = 1  #: micro-batches per optimizer step
    precision: str = "fp32"  #: "fp32" or "bf16" (autocast; the quantizer stays fp32)
    ema_decay: float = 0.999  #: 0 disables the EMA
    log_every: int = 10
    eval_every: int = 200
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    max_bad_steps: int = 10  #: abort after this many non-finite steps in a row
    out_dir: str = "runs/tokenizer"
    seed: int = 0
    num_workers: int = 0  #: DataLoader workers (exact resume is guaranteed with 0)
    device: str = "auto"
    parallel: str = "ddp"  #: "ddp", "fsdp" (FSDP2) or "none" under torchrun
    progress: bool = True  #: console progress bar

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if min(self.steps, self.batch_size, self.grad_accum, self.log_every, self.eval_every, self.ckpt_every) < 1:
            raise ConfigError("steps, batch_size, grad_accum, log_every, eval_every and ckpt_every must be >= 1")


@dataclass
class TokenizerTrainConfig(RunConfig):
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval_data: DataConfig | None = None  #: held-out data for PSNR/samples (default: ``data`` with train=False)
    loss: TokenizerLossConfig = field(default_factory=TokenizerLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    disc_optim: OptimConfig = field(default_factory=OptimConfig)
    #: tokenizer directory to start from: the same layout, the same layout with fewer bits (grown), or an image
    #: tokenizer (inflated)
    init_from: str | None = None
    eval_batch: int = 4


@TokenizerTrainConfig.register_preset("tiny")
def _tiny() -> TokenizerTrainConfig:
    return TokenizerTrainConfig(
        steps=60, batch_size=4, log_every=5, eval_every=20, ckpt_every=20, out_dir="runs/tokenizer-tiny",
        model=TokenizerConfig.preset("tiny"),
        discriminator=DiscriminatorConfig.preset("tiny"),
        data=DataConfig(source="synthetic", num_frames=5, resolution=32),
        loss=TokenizerLossConfig(
            perceptual_weight=0.1, perceptual=PerceptualConfig(frames=1),
            adversarial=AdversarialConfig(discriminator_start=30, r1_interval=4),
            entropy_anneal_steps=30),
        optim=OptimConfig(lr=1e-3, warmup_steps=5), disc_optim=OptimConfig(lr=1e-3, warmup_steps=5),
        eval_batch=4,
    )


@TokenizerTrainConfig.register_preset("small")
def _small() -> TokenizerTrainConfig:
    """The shipped general tokenizer (v2): 17x64x64 crops of the in-package clips and photos plus camera motion
    over the recipe's photos (``recipes/train_shipped.sh`` fetches them and starts from the v1 weights)."""
    return TokenizerTrainConfig(
        steps=600, batch_size=4, log_every=5, eval_every=25, ckpt_every=25, keep_checkpoints=60,
        out_dir="runs/tokenizer-small-v2", model=TokenizerConfig.preset("small"),
        discriminator=DiscriminatorConfig(base_channels=8, channel_multipliers=(1, 2, 4), dims=3,
                                          temporal_downsample=(True, True, False)),
        data=DataConfig(source="packaged-all", num_frames=17, resolution=64, image_frames="repeat", clips_per_video=16,
                        photos="runs/data/photos", photo_clips=2),
        eval_data=DataConfig(source="packaged-all", num_frames=17, resolution=64, image_frames="repeat",
                             clips_per_video=4),
        loss=TokenizerLossConfig(perceptual=PerceptualConfig(frames=1),
                                 adversarial=AdversarialConfig(discriminator_start=50, r1_interval=16),
                                 entropy_anneal_steps=200),
        optim=OptimConfig(lr=5e-4, warmup_steps=30), disc_optim=OptimConfig(lr=2e-4, warmup_steps=30),
        eval_batch=6, ema_decay=0.995, progress=False,
    )


@TokenizerTrainConfig.register_preset("digits")
def _digits() -> TokenizerTrainConfig:
    """The shipped moving-digits tokenizer: 9x32x32 clips, reconstruction + LFQ only (no GAN, no LPIPS)."""
    return TokenizerTrainConfig(
        steps=1500, batch_size=8, log_every=10, eval_every=100, ckpt_every=50, out_dir="runs/digits-tokenizer",
        model=TokenizerConfig.preset("digits"),
        discriminator=DiscriminatorConfig.preset("tiny"),
        data=DataConfig(source="digits", num_frames=9, resolution=32, digit_size=16, random_flip=False),
        loss=TokenizerLossConfig(perceptual_weight=0.0,
                                 adversarial=AdversarialConfig(discriminator_start=10**9),
                                 entropy_anneal_steps=200),
        optim=OptimConfig(lr=1e-3, warmup_steps=30), eval_batch=8, ema_decay=0.99,
    )


def _paper(model: str, disc: str, frames: int, resolution: int) -> TokenizerTrainConfig:
    return TokenizerTrainConfig(
        steps=500_000, batch_size=32, precision="bf16", out_dir=f"runs/tokenizer-{model}",
        model=TokenizerConfig.preset(model), discriminator=DiscriminatorConfig.preset(disc),
        data=DataConfig(source="packaged", num_frames=frames, resolution=resolution),
        loss=TokenizerLossConfig(adversarial=AdversarialConfig(discriminator_start=20_000, r1_interval=16)),
        optim=OptimConfig(warmup_steps=5000), disc_optim=OptimConfig(warmup_steps=5000),
        num_workers=8, log_every=50, eval_every=2000, ckpt_every=5000,
    )


@TokenizerTrainConfig.register_preset("image-128")
def _image_128() -> TokenizerTrainConfig:
    return _paper("image-128", "image-128", 1, 128)


@TokenizerTrainConfig.register_preset("video-17x128")
def _video_17x128() -> TokenizerTrainConfig:
    cfg = _paper("video-17x128", "video-17x128", 17, 128)
    return dataclasses.replace(cfg, batch_size=8)
