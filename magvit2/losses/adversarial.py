"""Adversarial losses for tokenizer training: GAN losses, LeCam and R1 regularisation.

Defaults follow MAGVIT-2 (Appendix, tokenizer training details), which keeps
MAGVIT's (Yu et al. 2023) GAN recipe:

- generator adversarial weight 0.1 (fixed; no VQGAN-style adaptive weight);
- non-saturating logistic loss for both players (``"hinge"`` is an option);
- LeCam regularisation (Tseng et al. 2021) with weight 0.001 and EMA decay 0.999;
- R1 gradient penalty on real inputs with cost 10, computed as MAGVIT does:
  ``cost * mean_b ||grad_x D(x_b)||^2`` (no StyleGAN-style factor 1/2).

The same numbers (0.1 / 0.001 / 10 / 0.999) appear in public MAGVIT-2
reimplementation configs (e.g. Open-Sora's MAGVIT-v2 VAE config). The
discriminator start step is not given in the paper; it defaults to 0 here and
is a config field.

Lazy R1 (StyleGAN2, Karras et al. 2020, Sec. 3.1): with ``r1_interval = k`` the
penalty is evaluated only on steps divisible by ``k`` and multiplied by ``k`` so
its average strength is unchanged. ``k = 1`` (every step) is the default.

Precision: under bf16 autocast the discriminator's forward passes run in bf16,
but everything numerically sensitive is fp32: the logits are cast to fp32
before any loss, LeCam and its averages are fp32, and on R1 steps the real
branch (forward, input gradient and the double backward through it) runs with
autocast off, since a squared input gradient of a bf16 network loses most of
its bits.

Shape letters: b batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.config.base import Config, ConfigError

__all__ = [
    "AdversarialConfig",
    "AdversarialLoss",
    "DiscriminatorLossOutput",
    "GeneratorLossOutput",
    "LeCamEMA",
    "LeCamOutput",
    "discriminator_loss",
    "gated_weight",
    "generator_loss",
    "lecam_regularizer",
    "r1_from_logits",
    "r1_penalty",
]

LOSS_TYPES = ("non-saturating", "hinge")


def _check_type(loss_type: str) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"GAN loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


# ----- GAN losses --------------------------------------------------------------------------
def generator_loss(logits_fake: torch.Tensor, loss_type: str = "non-saturating") -> torch.Tensor:
    """Generator loss on ``D(G(z))`` logits ``[b]``.

    Non-saturating (Goodfellow et al. 2014): ``mean softplus(-D(G(z)))`` = ``-mean log sigmoid(D(G(z)))``.
    Hinge (Lim & Ye 2017): ``-mean D(G(z))``.
    """
    _check_type(loss_type)
    logits_fake = logits_fake.float()
    if loss_type == "hinge":
        return -logits_fake.mean()
    return F.softplus(-logits_fake).mean()


def discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor, loss_type: str = "non-saturating"
) -> torch.Tensor:
    """Discriminator loss on logits ``[b]`` of real and (detached) fake samples.

    Non-saturating / logistic: ``mean softplus(-D(x)) + mean softplus(D(G(z)))``
    (binary cross-entropy with labels 1 for real, 0 for fake).
    Hinge: ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))``.
    """
    _check_type(loss_type)
    logits_real, logits_fake = logits_real.float(), logits_fake.float()
    if loss_type == "hinge":
        return F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def gated_weight(step: int, start: int, weight: float) -> float:
    """``weight`` from step ``start`` on, 0 before (the discriminator start gate)."""
    return float(weight) if step >= start else 0.0


# ----- R1 gradient penalty ----------------------------------------------------------------
def r1_from_logits(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``mean_b ||d D(x_b) / d x_b||^2`` (Mescheder et al. 2018, Eq. 9 without gamma / 2).

    ``logits_real`` must come from ``real`` with ``real.requires_grad`` set; the
    graph is kept (``create_graph=True``) so the penalty can be backpropagated
    into the discriminator. Summing the logits gives per-sample gradients
    because the samples of a batch do not interact (true without minibatch-stddev).
    """
    if not real.requires_grad:
        raise ValueError("r1: `real` must require grad and the logits must be computed from it")
    (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def r1_penalty(disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1 penalty of ``disc`` at ``real``: ``mean_b ||grad_x D(x_b)||^2`` as a scalar.

    For a linear ``D(x) = <w, x>`` this is exactly ``||w||^2``.
    """
    real = real.detach().requires_grad_(True)
    return r1_from_logits(disc(real), real)


# ----- LeCam ------------------------------------------------------------------------------
def lecam_regularizer(
    logits_real: torch.Tensor, logits_fake: torch.Tensor, ema_real: torch.Tensor, ema_fake: torch.Tensor
) -> torch.Tensor:
    """LeCam regulariser (Tseng et al. 2021, Eq. 3, the one-sided form of their code).

    ``mean relu(D(x) - ema_fake)^2 + mean relu(ema_real - D(G(z)))^2``: real
    logits are pulled towards the running mean of fake logits and vice versa,
    which bounds how far apart the discriminator can push them.
    """
    ema_real, ema_fake = ema_real.detach().float(), ema_fake.detach().float()
    real_term = F.relu(logits_real.float() - ema_fake).pow(2).mean()
    fake_term = F.relu(ema_real - logits_fake.float()).pow(2).mean()
    return real_term + fake_term


class LeCamOutput(NamedTuple):
    reg: torch.Tensor  #: scalar regulariser (not yet multiplied by a weight)
    ema_real: torch.Tensor  #: EMA of mean real logits used for ``reg``
    ema_fake: torch.Tensor  #: EMA of mean fake logits used for ``reg``


class LeCamEMA(nn.Module):
    """Exponential moving averages of the mean real / fake logits, and the LeCam term.

    Each call in training mode first updates ``ema <- decay * ema + (1 - decay) * mean(logits)``
    (from detached logits), then returns :func:`lecam_regularizer` against the
    updated averages. In eval mode the averages are frozen. Both buffers start
    at 0 (as in the reference code) and are saved in ``state_dict``. Under data
    parallelism each process keeps its own averages unless the caller all-reduces
    the logit means.
    """

    ema_real: torch.Tensor
    ema_fake: torch.Tensor

    def __init__(self, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"LeCam EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.register_buffer("ema_real", torch.zeros((), dtype=torch.float32))
        self.register_buffer("ema_fake", torch.zeros((), dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"decay={self.decay}"

    @torch.no_grad()
    def update(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> None:
        """One EMA step towards the batch means of the given logits."""
        self.ema_real.lerp_(logits_real.detach().float().mean(), 1.0 - self.decay)
        self.ema_fake.lerp_(logits_fake.detach().float().mean(), 1.0 - self.decay)

    def forward(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> LeCamOutput:
        """Update (training mode only) and regularise; logits are ``[b]``."""
        if self.training:
            self.update(logits_real, logits_fake)
        ema_real, ema_fake = self.ema_real.clone(), self.ema_fake.clone()
        return LeCamOutput(lecam_regularizer(logits_real, logits_fake, ema_real, ema_fake), ema_real, ema_fake)


# ----- assembled losses -------------------------------------------------------------------
@dataclass
class AdversarialConfig(Config):
    """GAN loss settings; defaults are MAGVIT-2's (see the module docstring)."""

    loss_type: str = "non-saturating"  #: "non-saturating" or "hinge", for both players
    generator_weight: float = 0.1  #: weight of the generator's adversarial term in the tokenizer loss
    discriminator_start: int = 0  #: step from which the GAN is on (generator weight 0 before)
    lecam_weight: float = 0.001  #: 0 disables LeCam
    lecam_decay: float = 0.999
    r1_weight: float = 10.0  #: R1 cost; 0 disables the penalty
    r1_interval: int = 1  #: lazy R1: evaluate every k steps, scaled by k (StyleGAN2 uses 16)

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if min(self.generator_weight, self.lecam_weight, self.r1_weight) < 0:
            raise ConfigError("generator_weight, lecam_weight and r1_weight must be >= 0")
        if not 0.0 <= self.lecam_decay < 1.0:
            raise ConfigError(f"lecam_decay must be in [0, 1), got {self.lecam_decay}")
        if self.r1_interval < 1 or self.discriminator_start < 0:
            raise ConfigError("r1_interval must be >= 1 and discriminator_start >= 0")


class GeneratorLossOutput(NamedTuple):
    loss: torch.Tensor  #: weight * adversarial, to add to the tokenizer loss
    adversarial: torch.Tensor  #: unweighted generator GAN loss
    weight: float  #: the gated weight used this step


class DiscriminatorLossOutput(NamedTuple):
    loss: torch.Tensor  #: adversarial + lecam_weight * lecam + r1 (already weighted and lazily scaled)
    adversarial: torch.Tensor  #: unweighted discriminator GAN loss
    lecam: torch.Tensor  #: unweighted LeCam term (0 when disabled)
    r1: torch.Tensor  #: unweighted R1 penalty (0 when not evaluated this step)
    logits_real: torch.Tensor  #: detached mean real logit
    logits_fake: torch.Tensor  #: detached mean fake logit


class AdversarialLoss(nn.Module):
    """Both players' adversarial objectives; owns the LeCam EMA state (saved in ``state_dict``).

    The discriminator is passed to :meth:`discriminator_loss` rather than owned,
    so the caller keeps separate optimisers and wrappers (DDP, compile) for it.
    """

    def __init__(self, cfg: AdversarialConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else AdversarialConfig()
        self.lecam = LeCamEMA(self.cfg.lecam_decay)

    def active(self, step: int) -> bool:
        """Whether the GAN is on at ``step`` (the discriminator should be trained)."""
        return step >= self.cfg.discriminator_start

    def r1_due(self, step: int) -> bool:
        """Whether lazy R1 is evaluated at ``step``."""
        return self.cfg.r1_weight > 0 and step % self.cfg.r1_interval == 0

    def generator_loss(self, logits_fake: torch.Tensor, step: int) -> GeneratorLossOutput:
        """Weighted generator loss on ``D(G(z))`` logits ``[b]`` (weight 0 before the start step)."""
        adv = generator_loss(logits_fake, self.cfg.loss_type)
        weight = gated_weight(step, self.cfg.discriminator_start, self.cfg.generator_weight)
        return GeneratorLossOutput(adv * weight, adv, weight)

    def discriminator_loss(
        self, disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, step: int
    ) -> DiscriminatorLossOutput:
        """Discriminator objective on a batch of real and generated samples.

        ``fake`` is detached here. On R1 steps the real logits of the same
        forward pass are reused for the penalty.
        """
        use_r1 = self.r1_due(step)
        real = real.detach().requires_grad_(use_r1)
        with torch.autocast(real.device.type, enabled=False) if use_r1 else contextlib.nullcontext():
            logits_real = disc(real.float() if use_r1 else real)  # fp32 on R1 steps (see the module docstring)
        logits_fake = disc(fake.detach())
        adv = discriminator_loss(logits_real, logits_fake, self.cfg.loss_type)
        zero = adv.new_zeros(())
        loss = adv
        lecam = zero
        if self.cfg.lecam_weight > 0:
            lecam = self.lecam(logits_real, logits_fake).reg
            loss = loss + self.cfg.lecam_weight * lecam
        r1 = zero
        if use_r1:
            r1 = r1_from_logits(logits_real, real)
            loss = loss + self.cfg.r1_weight * self.cfg.r1_interval * r1
        return DiscriminatorLossOutput(
            loss, adv.detach(), lecam.detach(), r1.detach(),
            logits_real.detach().float().mean(), logits_fake.detach().float().mean(),
        )
