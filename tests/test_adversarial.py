"""GAN losses, R1, LeCam and a tiny discriminator training run (CPU)."""
from __future__ import annotations

import math

import pytest
import torch

from magvit2.config.base import ConfigError
from magvit2.losses.adversarial import (
    AdversarialConfig,
    AdversarialLoss,
    LeCamEMA,
    discriminator_loss,
    gated_weight,
    generator_loss,
    lecam_regularizer,
    r1_from_logits,
    r1_penalty,
)
from magvit2.tokenizer.discriminator import DiscriminatorConfig, StyleGANDiscriminator



def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


REAL = torch.tensor([0.0, 2.0, -1.5])
FAKE = torch.tensor([0.5, -3.0, 1.0])


# ----- GAN losses on fixed logits -------------------------------------------------------------
def test_non_saturating_losses_closed_form():
    g = sum(softplus(-f) for f in FAKE.tolist()) / 3
    d = sum(softplus(-r) for r in REAL.tolist()) / 3 + sum(softplus(f) for f in FAKE.tolist()) / 3
    assert generator_loss(FAKE).item() == pytest.approx(g, rel=1e-6)
    assert discriminator_loss(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    # At logits 0 both players sit at log 2 per term.
    z = torch.zeros(4)
    assert discriminator_loss(z, z).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_non_saturating_generator_gradient_does_not_vanish():
    """-log sigmoid(f): gradient -> -1 (not 0) when D confidently rejects the fake (f << 0)."""
    f = torch.tensor([-20.0], requires_grad=True)
    generator_loss(f).backward()
    assert f.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_hinge_losses_closed_form():
    g = -sum(FAKE.tolist()) / 3
    d = sum(max(0.0, 1 - r) for r in REAL.tolist()) / 3 + sum(max(0.0, 1 + f) for f in FAKE.tolist()) / 3
    assert generator_loss(FAKE, "hinge").item() == pytest.approx(g, rel=1e-6)
    assert discriminator_loss(REAL, FAKE, "hinge").item() == pytest.approx(d, rel=1e-6)
    with pytest.raises(ValueError, match="loss_type"):
        generator_loss(FAKE, "wasserstein")


def test_gated_weight():
    assert gated_weight(99, 100, 0.1) == 0.0
    assert gated_weight(100, 100, 0.1) == 0.1
    loss = AdversarialLoss(AdversarialConfig(discriminator_start=10))
    assert loss.generator_loss(FAKE, step=9).loss.item() == 0.0
    out = loss.generator_loss(FAKE, step=10)
    assert out.weight == 0.1 and out.loss.item() == pytest.approx(0.1 * out.adversarial.item())
    assert not loss.active(9) and loss.active(10)


# ----- R1 ---------------------------------------------------------------------------------
def test_r1_linear_discriminator_is_squared_weight_norm():
    torch.manual_seed(0)
    w = torch.randn(3, 2, 4, 4, requires_grad=True)

    def disc(x):
        return (x * w).flatten(1).sum(1)  # D(x) = <w, x>

    real = torch.randn(5, 3, 2, 4, 4)
    pen = r1_penalty(disc, real)
    assert pen.item() == pytest.approx(w.detach().pow(2).sum().item(), rel=1e-5)
    # create_graph=True: the penalty is differentiable in the discriminator weights, d||w||^2/dw = 2w.
    pen.backward()
    assert torch.allclose(w.grad, 2 * w.detach(), atol=1e-5)


def test_r1_quadratic_discriminator_is_per_sample():
    """D(x) = ||x||^2 / 2 has grad x, so the penalty is mean_b ||x_b||^2 (samples not mixed)."""
    real = torch.randn(4, 6)
    pen = r1_penalty(lambda x: 0.5 * x.pow(2).sum(1), real)
    assert pen.item() == pytest.approx(real.pow(2).sum(1).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="require grad"):
        r1_from_logits(torch.zeros(4), real)


def test_r1_backpropagates_through_tiny_discriminator():
    torch.manual_seed(0)
    d = StyleGANDiscriminator(DiscriminatorConfig.preset("tiny"))
    pen = r1_penalty(d, torch.randn(2, 3, 5, 16, 16))
    assert pen.item() > 0
    pen.backward()
    for name, p in d.named_parameters():
        if name == "out.bias":  # a constant logit shift does not change input gradients
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert d.stem.weight.grad.abs().sum() > 0 and d.fc.weight.grad.abs().sum() > 0


def test_lazy_r1_interval_and_scaling():
    w = torch.randn(6)

    def disc(x):
        return x @ w

    real, fake = torch.randn(3, 6), torch.randn(3, 6)
    loss = AdversarialLoss(AdversarialConfig(lecam_weight=0.0, r1_weight=2.0, r1_interval=4))
    adv = discriminator_loss(real @ w, fake @ w).item()
    for step in range(6):
        out = loss.discriminator_loss(disc, real, fake, step)
        if step % 4 == 0:
            assert out.r1.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
            assert out.loss.item() == pytest.approx(adv + 2.0 * 4 * out.r1.item(), rel=1e-5)
        else:
            assert out.r1.item() == 0.0 and out.loss.item() == pytest.approx(adv, rel=1e-6)


# ----- LeCam -------------------------------------------------------------------------------
def test_lecam_regularizer_closed_form():
    ema_real, ema_fake = torch.tensor(0.5), torch.tensor(-0.2)
    want = sum(max(0.0, r - (-0.2)) ** 2 for r in REAL.tolist()) / 3 + sum(
        max(0.0, 0.5 - f) ** 2 for f in FAKE.tolist()
    ) / 3
    assert lecam_regularizer(REAL, FAKE, ema_real, ema_fake).item() == pytest.approx(want, rel=1e-6)


def test_lecam_ema_updates_and_state_dict_round_trip():
    ema = LeCamEMA(decay=0.5)
    out = ema(REAL, FAKE)  # 0 -> 0.5 * mean
    assert ema.ema_real.item() == pytest.approx(0.5 * REAL.mean().item())
    assert ema.ema_fake.item() == pytest.approx(0.5 * FAKE.mean().item())
    assert out.reg.item() == pytest.approx(lecam_regularizer(REAL, FAKE, ema.ema_real, ema.ema_fake).item())
    ema(REAL + 1, FAKE - 1)
    assert ema.ema_real.item() == pytest.approx(0.25 * REAL.mean().item() + 0.5 * (REAL + 1).mean().item())
    assert ema.ema_fake.item() == pytest.approx(0.25 * FAKE.mean().item() + 0.5 * (FAKE - 1).mean().item())

    state = ema.state_dict()
    assert set(state) == {"ema_real", "ema_fake"}
    fresh = LeCamEMA(decay=0.5)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.ema_real, ema.ema_real) and torch.equal(fresh.ema_fake, ema.ema_fake)

    fresh.eval()  # frozen in eval mode
    before = fresh.ema_real.clone()
    fresh(REAL * 10, FAKE * 10)
    assert torch.equal(fresh.ema_real, before)

    loss = AdversarialLoss()
    assert set(loss.state_dict()) == {"lecam.ema_real", "lecam.ema_fake"}
    with pytest.raises(ValueError, match="decay"):
        LeCamEMA(decay=1.0)


def test_lecam_gradient_only_flows_to_logits():
    r = REAL.clone().requires_grad_(True)
    f = FAKE.clone().requires_grad_(True)
    LeCamEMA(decay=0.0)(r, f).reg.backward()  # decay 0: ema = current means (detached)
    # d/dr_i mean(relu(r - m_f)^2) = 2 relu(r_i - m_f) / n
    assert torch.allclose(r.grad, 2 * torch.relu(REAL - FAKE.mean()) / 3, atol=1e-6)
    assert torch.allclose(f.grad, -2 * torch.relu(REAL.mean() - FAKE) / 3, atol=1e-6)


def test_config_defaults_and_validation():
    cfg = AdversarialConfig()
    assert (cfg.generator_weight, cfg.lecam_weight, cfg.lecam_decay, cfg.r1_weight) == (0.1, 0.001, 0.999, 10.0)
    assert AdversarialConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="loss_type"):
        AdversarialConfig(loss_type="ls")
    with pytest.raises(ConfigError, match="r1_interval"):
        AdversarialConfig(r1_interval=0)


# ----- a tiny adversarial sanity check --------------------------------------------------------
def _smooth(n: int, g: torch.Generator) -> torch.Tensor:
    """Random linear colour ramps in [-1, 1]: [n, 3, 16, 16]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    a, b, c = (torch.rand(3, n, 3, 1, 1, generator=g) * 2 - 1).unbind(0)
    return ((a * xs + b * ys) * 0.5 + c * 0.5).clamp(-1, 1)


def test_tiny_discriminator_learns_to_separate_smooth_from_noise():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    disc = StyleGANDiscriminator(DiscriminatorConfig.preset("tiny-image"))
    loss = AdversarialLoss(AdversarialConfig(r1_interval=4))
    real_eval, fake_eval = _smooth(16, g), torch.rand(16, 3, 16, 16, generator=g) * 2 - 1

    def gap() -> float:
        with torch.no_grad():
            return (disc(real_eval).mean() - disc(fake_eval).mean()).item()

    gap0 = gap()
    for step in range(30):
        real, fake = _smooth(8, g), torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
        out = loss.discriminator_loss(disc, real, fake, step)
        disc.zero_grad(set_to_none=True)
        out.loss.backward()
        with torch.no_grad():  # sign-SGD (Adam's beta -> 0 limit); avoids torch.optim's slow first import
            for p in disc.parameters():
                if p.grad is not None:
                    p -= 2e-3 * p.grad.sign()
        assert torch.isfinite(out.loss)
    gap1 = gap()
    assert gap1 > 1.0 and gap1 > gap0 + 1.0, (gap0, gap1)
    assert loss.lecam.ema_real.item() > loss.lecam.ema_fake.item()  # EMAs track the separation
