"""Typed config for training the token language models (masked or autoregressive)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

from magvit2.config.base import ConfigError
from magvit2.generation.config import LMConfig
from magvit2.train.config import OptimConfig, RunConfig

__all__ = ["LMTrainConfig", "config_from_tokens"]

#: what a token manifest says about the model that reads its tokens: manifest key -> LMConfig field
MANIFEST_FIELDS = {"grid": "grid", "bits": "bits", "num_classes": "num_classes"}


@dataclass
class LMTrainConfig(RunConfig):
    model: LMConfig = field(default_factory=LMConfig)
    kind: str = "mlm"  #: "mlm" (MaskGIT-style, the paper's) or "ar"
    tokens: str = ""  #: token directory written by `magvit2 tokenize`
    tokenizer: str = ""  #: tokenizer directory, bundled into the exported generator (default: the manifest's)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, betas=(0.9, 0.96), weight_decay=0.045,
                                                                     warmup_steps=200, grad_clip=1.0))
    context_prob: float = 0.0  #: fraction of samples trained with their first latent frames as context
    context_frames: int = 2  #: latent frames of context for frame prediction (5 real frames -> 2)
    eval_batch: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ("mlm", "ar"):
            raise ConfigError(f"kind must be 'mlm' or 'ar', got {self.kind!r}")
        if not 0.0 <= self.context_prob <= 1.0:
            raise ConfigError(f"context_prob must be in [0, 1], got {self.context_prob}")


def config_from_tokens(cfg: LMTrainConfig, explicit: Iterable[str] = ()) -> LMTrainConfig:
    """``cfg`` with ``model.grid``, ``model.bits`` and ``model.num_classes`` taken from the manifest of
    ``cfg.tokens`` (facts travel with the data). Fields named in ``explicit`` (e.g. the ``model.grid``
    of a ``model.grid=[5,8,8]`` override) are the user's: they must agree with the manifest, else a
    one-line ConfigError. A manifest without ``num_classes`` leaves that field alone."""
    from magvit2.data.tokens import read_manifest

    if not cfg.tokens:
        return cfg
    manifest = read_manifest(cfg.tokens)
    explicit = {k.split("=", 1)[0].strip() for k in explicit}
    changes = {}
    for key, name in MANIFEST_FIELDS.items():
        value = manifest.get(key)
        if value is None:
            continue
        value = tuple(value) if isinstance(value, list) else value
        mine = getattr(cfg.model, name)
        if f"model.{name}" in explicit:
            if mine != value:
                raise ConfigError(f"model.{name}={list(mine) if isinstance(mine, tuple) else mine} conflicts with the "
                                  f"tokens in {cfg.tokens} ({key} {list(value) if isinstance(value, tuple) else value}); "
                                  f"drop the setting or tokenize again")
        elif mine != value:
            changes[name] = value
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **changes)) if changes else cfg


@LMTrainConfig.register_preset("tiny")
def _tiny() -> LMTrainConfig:
    return LMTrainConfig(model=LMConfig.preset("tiny"), steps=50, batch_size=8, log_every=5, eval_every=25,
                         ckpt_every=25, out_dir="runs/lm-tiny", ema_decay=0.0,
                         optim=OptimConfig(lr=3e-3, betas=(0.9, 0.96), weight_decay=0.0, warmup_steps=5))


@LMTrainConfig.register_preset("digits")
def _digits() -> LMTrainConfig:
    """The shipped moving-digits generator (class-conditional + frame prediction)."""
    return LMTrainConfig(model=LMConfig.preset("digits"), steps=3000, batch_size=32, log_every=25, eval_every=250,
                         ckpt_every=250, out_dir="runs/digits-lm", ema_decay=0.99, context_prob=0.3,
                         tokens="runs/digits-tokens", tokenizer="runs/digits-tokenizer/export",
                         optim=OptimConfig(lr=1e-3, betas=(0.9, 0.96), weight_decay=0.045, warmup_steps=100))


@LMTrainConfig.register_preset("video-17x128")
def _video() -> LMTrainConfig:
    return LMTrainConfig(model=LMConfig.preset("video-17x128"), steps=500_000, batch_size=32, precision="bf16",
                         out_dir="runs/lm-video-17x128", context_prob=0.0, num_workers=4,
                         optim=OptimConfig(lr=1e-4, betas=(0.9, 0.96), weight_decay=0.045, warmup_steps=10_000))
