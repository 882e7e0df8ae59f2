"""Reconstruction metrics for images and videos: PSNR, SSIM, MS-SSIM, LPIPS.

Inputs are images [b, 3, h, w] or videos [b, 3, t, h, w] in [-1, 1]. Every metric is
computed per frame on [0, 1] images (values outside [-1, 1] are clipped first, as when
frames are written to 8-bit files) and averaged over the frames of each sample, so the
functions return one value per sample, shape [b]. ``quantize=True`` additionally rounds
frames to 8-bit levels, the setting that matches numbers measured on decoded files.

* PSNR = 10 log10(1 / MSE) on [0, 1] frames (= 10 log10(4 / MSE) on [-1, 1] frames). Identical
  frames give +inf; a sample's value is the mean of its frames' PSNR, so it is +inf when any
  frame is lossless. ``max_db`` caps each frame's PSNR to keep dataset averages finite.
* SSIM: Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03 (Wang et al., 2004), torchmetrics.
* MS-SSIM: the 5 standard scales/weights (Wang et al., 2003). It needs frames of at least
  176 pixels per side with the 11-tap window (torchmetrics' size rule). Smaller frames raise
  a ValueError unless ``allow_fewer_scales=True``, which keeps the largest number of leading
  scales that fit and renormalises their weights to sum to 1 (then the value is not
  comparable with full 5-scale MS-SSIM).
* LPIPS: :mod:`magvit2.losses.lpips` (VGG by default), frames at native resolution.

Shape letters: b batch, t frames, n = b * t frames, h height, w width.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from einops import rearrange

from magvit2.losses.perceptual import as_video_pair
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

__all__ = ["psnr", "ssim", "ms_ssim", "lpips", "ms_ssim_scales", "psnr_from_mse", "ReconstructionMetrics", "MS_SSIM_BETAS"]

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _frames01(real: torch.Tensor, fake: torch.Tensor, quantize: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """[b, 3, (t,) h, w] in [-1, 1] -> two [n, 3, h, w] float32 frame batches in [0, 1] and b."""
    real, fake = as_video_pair(real, fake)
    out = []
    for x in (real, fake):
        x = ((x.detach().float() + 1) / 2).clamp(0, 1)
        if quantize:
            x = torch.round(x * 255) / 255
        out.append(rearrange(x, "b c t h w -> (b t) c h w"))
    return out[0], out[1], real.shape[0]


def _per_sample(values: torch.Tensor, b: int) -> torch.Tensor:
    """Per-frame values [n] -> per-sample means [b]."""
    return rearrange(values, "(b t) -> b t", b=b).mean(dim=1)


@torch.no_grad()
def psnr(real: torch.Tensor, fake: torch.Tensor, *, quantize: bool = False, max_db: float | None = None) -> torch.Tensor:
    """Per-sample PSNR in dB, frame-averaged: [b]. Identical frames give +inf unless ``max_db`` caps them."""
    r, f, b = _frames01(real, fake, quantize)
    # PSNR = 10 log10(MAX^2 / MSE) with MAX = 1 on [0, 1] frames.
    per_frame = peak_signal_noise_ratio(f, r, data_range=1.0, reduction="none", dim=(1, 2, 3))
    if max_db is not None:
        per_frame = per_frame.clamp(max=max_db)
    return _per_sample(per_frame, b)


@torch.no_grad()
def ssim(real: torch.Tensor, fake: torch.Tensor, *, quantize: bool = False) -> torch.Tensor:
    """Per-sample SSIM (Gaussian 11x11, sigma 1.5), frame-averaged: [b]."""
    r, f, b = _frames01(real, fake, quantize)
    per_frame = structural_similarity_index_measure(f, r, data_range=1.0, reduction="none")
    return _per_sample(per_frame, b)  # type: ignore[arg-type]


def ms_ssim_scales(height: int, width: int, kernel_size: int = 11, max_scales: int = len(MS_SSIM_BETAS)) -> int:
    """Largest number of MS-SSIM scales (<= max_scales) that frames of this size support, 0 if none.

    Uses torchmetrics' size rule: side >= 2^s and side // max(1, s - 1)^2 > kernel_size - 1.
    """
    side = min(height, width)
    for s in range(max_scales, 0, -1):
        if side >= 2**s and side // max(1, s - 1) ** 2 > kernel_size - 1:
            return s
    return 0


@torch.no_grad()
def ms_ssim(
    real: torch.Tensor, fake: torch.Tensor, *, quantize: bool = False, allow_fewer_scales: bool = False
) -> torch.Tensor:
    """Per-sample MS-SSIM, frame-averaged: [b]. Frames must be >= 176 px per side unless ``allow_fewer_scales``."""
    r, f, b = _frames01(real, fake, quantize)
    h, w = r.shape[-2:]
    scales = ms_ssim_scales(h, w)
    betas = MS_SSIM_BETAS
    if scales < len(MS_SSIM_BETAS):
        need = min(s for s in range(16, 4096) if ms_ssim_scales(s, s) == len(MS_SSIM_BETAS))
        if not allow_fewer_scales or scales == 0:
            raise ValueError(
                f"MS-SSIM with {len(MS_SSIM_BETAS)} scales needs frames of at least {need}x{need}, got {h}x{w}"
                + ("" if scales == 0 else "; pass allow_fewer_scales=True to use fewer scales")
            )
        total = sum(MS_SSIM_BETAS[:scales])
        betas = tuple(beta / total for beta in MS_SSIM_BETAS[:scales])
    per_frame = multiscale_structural_similarity_index_measure(f, r, data_range=1.0, reduction="none", betas=betas)
    return _per_sample(per_frame, b)


@torch.no_grad()
def lpips(
    real: torch.Tensor, fake: torch.Tensor, *, net: str = "vgg", weights: str | Path | None = None
) -> torch.Tensor:
    """Per-sample LPIPS, frame-averaged: [b] (inputs clipped to [-1, 1])."""
    from magvit2.losses.lpips import get_lpips

    real, fake = as_video_pair(real, fake)
    b = real.shape[0]
    r = rearrange(real.float().clamp(-1, 1), "b c t h w -> (b t) c h w")
    f = rearrange(fake.float().clamp(-1, 1), "b c t h w -> (b t) c h w")
    return _per_sample(get_lpips(real.device, net, weights)(r, f), b)


class ReconstructionMetrics:
    """Dataset-level accumulator of per-sample PSNR / SSIM (/ MS-SSIM / LPIPS) means.

    ``update(real, fake)`` takes a batch of images or videos in [-1, 1]; ``compute()`` returns
    ``{"psnr", "ssim", ["ms_ssim"], ["lpips"], "count"}`` as floats, each the mean over samples.
    ``merge(other)`` adds another accumulator's totals (e.g. gathered from other processes).
    """

    def __init__(
        self,
        *,
        use_lpips: bool = True,
        use_ms_ssim: bool = False,
        lpips_net: str = "vgg",
        quantize: bool = False,
        max_psnr_db: float | None = None,
        allow_fewer_scales: bool = False,
    ) -> None:
        self.use_lpips, self.use_ms_ssim, self.lpips_net = use_lpips, use_ms_ssim, lpips_net
        self.quantize, self.max_psnr_db, self.allow_fewer_scales = quantize, max_psnr_db, allow_fewer_scales
        self.reset()

    @property
    def names(self) -> tuple[str, ...]:
        return ("psnr", "ssim") + (("ms_ssim",) if self.use_ms_ssim else ()) + (("lpips",) if self.use_lpips else ())

    def reset(self) -> None:
        self.sums: dict[str, float] = {k: 0.0 for k in self.names}
        self.count = 0

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add a batch; returns its per-sample values {name: [b]}."""
        values = {
            "psnr": psnr(real, fake, quantize=self.quantize, max_db=self.max_psnr_db),
            "ssim": ssim(real, fake, quantize=self.quantize),
        }
        if self.use_ms_ssim:
            values["ms_ssim"] = ms_ssim(real, fake, quantize=self.quantize, allow_fewer_scales=self.allow_fewer_scales)
        if self.use_lpips:
            values["lpips"] = lpips(real, fake, net=self.lpips_net)
        for k, v in values.items():
            self.sums[k] += float(v.double().sum())
        self.count += real.shape[0]
        return values

    def merge(self, other: "ReconstructionMetrics") -> None:
        if other.names != self.names:
            raise ValueError(f"cannot merge metrics {other.names} into {self.names}")
        for k in self.names:
            self.sums[k] += other.sums[k]
        self.count += other.count

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("ReconstructionMetrics.compute() called before any update()")
        out = {k: self.sums[k] / self.count for k in self.names}
        out["count"] = float(self.count)
        return out


def psnr_from_mse(mse: float) -> float:
    """PSNR of [-1, 1] signals from their MSE: 10 log10(4 / mse) (inf for mse == 0)."""
    return math.inf if mse == 0 else 10.0 * math.log10(4.0 / mse)
