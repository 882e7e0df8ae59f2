"""Resampling: strided causal convolution down, depth-to-space up.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from magvit2.layers.conv import CausalConv3d, StreamState

__all__ = ["Downsample", "DepthToSpaceUpsample", "upsampled_time_index"]


class Downsample(nn.Module):
    """Strided causal conv: space by 2 and optionally time by 2.

    Time: ``t -> (t - 1) // 2 + 1`` so 17 -> 9 -> 5 and 1 -> 1. On a stream
    (``state`` given) a chunk yields one frame per even global frame position it holds.
    """

    def __init__(self, in_channels: int, out_channels: int, time: bool, temporal_kernel: int = 3) -> None:
        super().__init__()
        kt = temporal_kernel
        if time and kt < 2:
            raise ValueError("temporal downsampling needs a temporal kernel of at least 2")
        self.time = time
        self.conv = CausalConv3d(in_channels, out_channels, (kt, 3, 3), stride=(2 if time else 1, 2, 2))

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"spatial size must be even to downsample, got {h}x{w}")
        return self.conv(x, state)


class DepthToSpaceUpsample(nn.Module):
    """A causal conv to ``c_out * r_t * 4`` channels, then depth-to-space.

    Space is upsampled by 2; time by ``r_t = 2`` when ``time`` is set, after
    which the first frame is dropped (it would precede frame 0): ``t -> 2t - 1``,
    so 5 -> 9 -> 17 and 1 -> 1. On a stream (``state`` given) only the first
    non-empty chunk drops that frame: later chunks give ``r_t * t`` frames.
    ``keep_first_phase=True`` keeps the first temporal phase of the first input
    frame instead of the last (Open-MAGVIT2's video decoder).
    """

    def __init__(self, in_channels: int, out_channels: int, time: bool, temporal_kernel: int = 3,
                 keep_first_phase: bool = False) -> None:
        super().__init__()
        self.keep_first_phase = keep_first_phase
        self.rt = 2 if time else 1
        self.conv = CausalConv3d(in_channels, out_channels * self.rt * 4, (temporal_kernel, 3, 3))

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        first = state is None or state.advance(self, x.shape[2]) == 0
        x = self.conv(x, state)
        x = rearrange(x, "b (c pt ph pw) t h w -> b c (t pt) (h ph) (w pw)", pt=self.rt, ph=2, pw=2)
        if self.rt > 1 and first:
            x = torch.cat([x[:, :, :1], x[:, :, self.rt :]], dim=2) if self.keep_first_phase else x[:, :, self.rt - 1 :]
        return x


def upsampled_time_index(t_in: int, r: int, first: bool, device: torch.device | None = None) -> torch.Tensor:
    """For each frame after causal time upsampling by ``r``, the input frame it is built from.

    A whole clip (or the first chunk of a stream) of ``t_in`` frames becomes ``1 + r (t_in - 1)``
    frames and frame ``j`` comes from ``ceil(j / r)``; a later chunk becomes ``r t_in`` frames and
    frame ``j`` comes from ``floor(j / r)`` (local indices).
    """
    if first:
        return (torch.arange(max(0, 1 + r * (t_in - 1)), device=device) + r - 1) // r
    return torch.arange(r * t_in, device=device) // r
