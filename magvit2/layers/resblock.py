"""Residual block: (norm, swish, causal conv) x 2 plus a skip.

Shape letters: b batch, c channels, t frames, h height, w width, d latent bits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.layers.conv import CausalConv3d, StreamState
from magvit2.layers.norm import AdaptiveGroupNorm, FrameGroupNorm

__all__ = ["ResBlock"]


class ResBlock(nn.Module):
    """``[b, c_in, t, h, w] -> [b, c_out, t, h, w]``.

    With ``cond_channels`` set, both norms are :class:`AdaptiveGroupNorm`
    conditioned on the quantized latent (the decoder's blocks); otherwise
    per-frame GroupNorm (the encoder's blocks). ``cond`` must already have
    ``x``'s frame count on a stream; ``state`` carries the convolutions' past frames
    from chunk to chunk (see :class:`~magvit2.layers.conv.StreamState`).
    ``bias=False`` drops the convolutions' biases (Open-MAGVIT2's blocks have none);
    ``per_frame_norm=False`` normalises over the whole clip (see :class:`FrameGroupNorm`).
    """

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int = 3,
                 num_groups: int = 32, cond_channels: int | None = None, bias: bool = True,
                 per_frame_norm: bool = True) -> None:
        super().__init__()
        k = (temporal_kernel, 3, 3)
        g_in, g_out = _groups(num_groups, in_channels), _groups(num_groups, out_channels)
        if cond_channels:
            self.norm1: nn.Module = AdaptiveGroupNorm(g_in, in_channels, cond_channels)
            self.norm2: nn.Module = AdaptiveGroupNorm(g_out, out_channels, cond_channels)
        else:
            self.norm1 = FrameGroupNorm(g_in, in_channels, eps=1e-6, per_frame=per_frame_norm)
            self.norm2 = FrameGroupNorm(g_out, out_channels, eps=1e-6, per_frame=per_frame_norm)
        self.conditional = bool(cond_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, k, bias=bias)
        self.conv2 = CausalConv3d(out_channels, out_channels, k, bias=bias)
        self.skip = CausalConv3d(in_channels, out_channels, 1, bias=bias) if in_channels != out_channels else nn.Identity()

    def _norm(self, norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return norm(x, cond) if self.conditional else norm(x)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                state: StreamState | None = None) -> torch.Tensor:
        if self.conditional and cond is None:
            raise ValueError("this ResBlock uses adaptive norms and needs the quantized latent as cond")
        h = self.conv1(F.silu(self._norm(self.norm1, x, cond)), state)
        h = self.conv2(F.silu(self._norm(self.norm2, h, cond)), state)
        return (self.skip(x, state) if isinstance(self.skip, CausalConv3d) else x) + h


def _groups(num_groups: int, channels: int) -> int:
    g = min(num_groups, channels)
    while channels % g:
        g -= 1
    return g
