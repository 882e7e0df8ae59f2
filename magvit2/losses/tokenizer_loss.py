"""The tokenizer's training objective, assembled from its parts (paper recipe as defaults).

Generator side (per step ``s``):

    L_G = w_rec * recon(x, x_hat) + w_perc * perceptual(x, x_hat)
          + w_adv(s) * adversarial(D(x_hat)) + LFQ(w_ent(s))

where LFQ's term is ``w_ent(s) * (H_sample - gamma * H_codebook) + 0.25 * commitment``
(paper Eq. 4) and the entropy weight is annealed: ``w_ent(s) = w * (1 + a * max(0, 1 - s / S))``
(an extra ``a = 3`` times the weight that decays linearly to 0 over the first ``S = 2000`` steps).
The discriminator side is :class:`magvit2.losses.adversarial.AdversarialLoss`.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.config.base import Config, ConfigError
from magvit2.losses.adversarial import AdversarialConfig, AdversarialLoss, DiscriminatorLossOutput
from magvit2.losses.perceptual import PerceptualConfig, PerceptualLoss
from magvit2.tokenizer.model import TokenizerOutput

__all__ = ["TokenizerLossConfig", "TokenizerLoss", "GeneratorLoss", "entropy_weight_at"]


@dataclass
class TokenizerLossConfig(Config):
    recon: str = "l2"  #: "l2" (paper) or "l1"
    recon_weight: float = 1.0
    perceptual_weight: float = 0.1  #: 0 disables the perceptual network entirely
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    entropy_weight: float = 0.1
    entropy_anneal_factor: float = 3.0  #: extra multiple of the entropy weight at step 0
    entropy_anneal_steps: int = 2000  #: steps over which the extra decays linearly to 0

    def __post_init__(self) -> None:
        if self.recon not in ("l1", "l2"):
            raise ConfigError(f"recon must be 'l1' or 'l2', got {self.recon!r}")
        if self.entropy_anneal_steps < 0:
            raise ConfigError("entropy_anneal_steps must be >= 0")


def entropy_weight_at(step: int, cfg: TokenizerLossConfig) -> float:
    """Annealed LFQ entropy weight at ``step``."""
    if cfg.entropy_anneal_steps <= 0:
        return cfg.entropy_weight
    extra = cfg.entropy_anneal_factor * max(0.0, 1.0 - step / cfg.entropy_anneal_steps)
    return cfg.entropy_weight * (1.0 + extra)


class GeneratorLoss(NamedTuple):
    loss: torch.Tensor  #: total, to backpropagate
    recon: torch.Tensor
    perceptual: torch.Tensor
    adversarial: torch.Tensor  #: unweighted generator GAN loss (0 before the GAN starts)
    quantizer: torch.Tensor  #: LFQ's weighted entropy + commitment
    entropy_weight: float


class TokenizerLoss(nn.Module):
    def __init__(self, cfg: TokenizerLossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else TokenizerLossConfig()
        self.perceptual = PerceptualLoss(self.cfg.perceptual) if self.cfg.perceptual_weight > 0 else None
        self.adversarial = AdversarialLoss(self.cfg.adversarial)

    def prepare(self, device: torch.device | str) -> None:
        """Load the frozen perceptual networks now (fail early; keeps later RNG streams undisturbed)."""
        if self.perceptual is None:
            return
        self.perceptual.prepare(device)

    def entropy_weight(self, step: int) -> float:
        return entropy_weight_at(step, self.cfg)

    def generator(self, real: torch.Tensor, out: TokenizerOutput, step: int,
                  disc: Callable[[torch.Tensor], torch.Tensor] | None = None) -> GeneratorLoss:
        """Generator objective for ``real`` ``[b, c, t, h, w]`` and the tokenizer's output on it."""
        cfg = self.cfg
        fake = out.reconstruction
        diff = fake.float() - real.float()
        recon = diff.pow(2).mean() if cfg.recon == "l2" else diff.abs().mean()
        loss = cfg.recon_weight * recon + out.quantizer.loss
        zero = recon.new_zeros(())
        perc = zero
        if self.perceptual is not None:
            perc = self.perceptual(real, fake).loss
            loss = loss + cfg.perceptual_weight * perc
        adv = zero
        if disc is not None and self.adversarial.active(step):
            g = self.adversarial.generator_loss(disc(fake), step)
            adv, loss = g.adversarial, loss + g.loss
        return GeneratorLoss(loss, recon.detach(), perc.detach(), adv.detach(), out.quantizer.loss.detach(),
                             self.entropy_weight(step))

    def discriminator(self, disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                      fake: torch.Tensor, step: int) -> DiscriminatorLossOutput:
        return self.adversarial.discriminator_loss(disc, real, fake, step)
