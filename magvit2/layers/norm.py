"""Normalisations whose statistics never mix frames (so the model stays causal).

Shape letters: b batch, c channels, t frames, h height, w width, d latent bits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["FrameGroupNorm", "AdaptiveGroupNorm", "StatsAdaptiveGroupNorm", "causal_time_index"]


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm applied to every frame on its own: ``[b, c, t, h, w] -> same``.

    A plain GroupNorm over a video would average over time and leak future
    frames into past ones; normalising each frame separately keeps causality
    and makes an image (t == 1) normalise exactly like the first frame of a video.
    ``per_frame=False`` is that plain GroupNorm over the whole clip (not causal;
    Open-MAGVIT2's video tokenizer normalises this way).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 per_frame: bool = True) -> None:
        super().__init__(num_groups, num_channels, eps=eps, affine=affine)
        self.per_frame = per_frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.per_frame:
            return super().forward(x)
        t = x.shape[2]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", t=t)


def causal_time_index(t_out: int, t_in: int, device: torch.device | None = None) -> torch.Tensor:
    """For each of ``t_out`` frames, the latent frame it is built from.

    With causal depth-to-space time upsampling by ``r`` (``t_out = 1 + r (t_in - 1)``),
    output frame ``j`` comes from latent frame ``ceil(j / r)``: frame 0 from latent 0,
    frames 1..r from latent 1, and so on.
    """
    if t_in == t_out:
        return torch.arange(t_out, device=device)
    if t_in == 1 or (t_out - 1) % (t_in - 1) != 0:
        raise ValueError(f"cannot map {t_out} frames onto {t_in} latent frames causally")
    r = (t_out - 1) // (t_in - 1)
    return (torch.arange(t_out, device=device) + r - 1) // r


class AdaptiveGroupNorm(nn.Module):
    """Per-frame GroupNorm whose scale and bias come from the quantized latent.

    ``y = norm(x) * (1 + scale(z)) + bias(z)`` where ``z`` (``[b, d, t', h', w']``)
    is brought to the resolution of ``x`` (``[b, c, t, h, w]``): nearest in
    space, and causally in time (:func:`causal_time_index`), so a frame's
    statistics depend only on latent frames it may depend on.
    """

    def __init__(self, num_groups: int, channels: int, cond_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = FrameGroupNorm(num_groups, channels, eps=eps, affine=False)
        self.to_scale_bias = nn.Conv3d(cond_channels, 2 * channels, kernel_size=1)
        nn.init.zeros_(self.to_scale_bias.weight)
        nn.init.zeros_(self.to_scale_bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t, h, w = x.shape[2:]
        idx = causal_time_index(t, cond.shape[2], device=cond.device)
        cond = cond.index_select(2, idx)
        cond = rearrange(cond, "b d t h w -> (b t) d h w")
        cond = F.interpolate(cond.float(), size=(h, w), mode="nearest").to(x.dtype)
        cond = rearrange(cond, "(b t) d h w -> b d t h w", t=t)
        scale, bias = self.to_scale_bias(cond).chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + bias


class StatsAdaptiveGroupNorm(nn.Module):
    """Per-frame GroupNorm scaled and shifted by Linear maps of the latent's per-frame statistics.

    ``y = norm(x) * gamma(s) + beta(m)`` where, for every latent frame of ``z``
    (``[b, d, t', h', w']``), ``m`` is the per-channel mean over ``h' w'`` and
    ``s = sqrt(var + eps)`` with the unbiased variance over ``h' w'``; each frame
    of ``x`` (``[b, c, t, h, w]``) takes the statistics of the latent frame it is
    built from (:func:`causal_time_index`). On an image this is exactly the
    adaptive GroupNorm of Open-MAGVIT2's decoder (once per decoder stage there).
    With ``per_frame=False`` both the statistics (over ``t' h' w'``) and the norm
    cover the whole clip, as in Open-MAGVIT2's video decoder (not causal).
    A fresh module starts as the plain norm (``gamma = 1``, ``beta = 0``).
    """

    def __init__(self, num_groups: int, channels: int, cond_channels: int, eps: float = 1e-6,
                 per_frame: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.per_frame = per_frame
        self.norm = FrameGroupNorm(num_groups, channels, eps=eps, affine=False, per_frame=per_frame)
        self.to_scale = nn.Linear(cond_channels, channels)
        self.to_bias = nn.Linear(cond_channels, channels)
        nn.init.zeros_(self.to_scale.weight)
        nn.init.ones_(self.to_scale.bias)
        nn.init.zeros_(self.to_bias.weight)
        nn.init.zeros_(self.to_bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.per_frame:
            flat = rearrange(cond, "b d t h w -> b t d (h w)")
            idx = causal_time_index(x.shape[2], cond.shape[2], device=cond.device)
        else:  # one set of statistics for the whole clip, used by every frame
            flat = rearrange(cond, "b d t h w -> b 1 d (t h w)")
            idx = torch.zeros(x.shape[2], dtype=torch.long, device=cond.device)
        if flat.shape[-1] < 2:
            raise ValueError(f"latent statistics need at least 2 positions, got latent shape {tuple(cond.shape[2:])}")
        std = (flat.var(dim=-1) + self.eps).sqrt()  # [b, t', d], unbiased variance as in Open-MAGVIT2
        mean = flat.mean(dim=-1)
        scale = rearrange(self.to_scale(std).index_select(1, idx), "b t c -> b c t 1 1")
        bias = rearrange(self.to_bias(mean).index_select(1, idx), "b t c -> b c t 1 1")
        return self.norm(x) * scale.to(x.dtype) + bias.to(x.dtype)
