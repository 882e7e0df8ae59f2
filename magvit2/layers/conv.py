"""The one causal 3D convolution of the project.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConv3d", "as_triple"]


def as_triple(x: int | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(x, int):
        return (x, x, x)
    if len(x) != 3:
        raise ValueError(f"expected an int or a (t, h, w) triple, got {x!r}")
    return tuple(int(v) for v in x)  # type: ignore[return-value]


class CausalConv3d(nn.Module):
    """3D convolution that never looks at future frames.

    The input is padded with ``k_t - 1`` zero frames *before* the first frame and
    none after, so output frame ``i`` depends on input frames ``<= i * s_t`` only,
    and the first frame is encoded on its own (it only sees zero padding). With
    zero padding, a 2D kernel placed in the last temporal tap (the others zero)
    computes exactly the 2D convolution of each frame: this is how an image
    model is inflated to a video model. Spatial padding is symmetric ("same").

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: int or (k_t, k_h, k_w); spatial sizes must be odd.
        stride: int or (s_t, s_h, s_w).

    Shapes: ``[b, c_in, t, h, w] -> [b, c_out, t', h', w']`` with
    ``t' = floor((t - 1) / s_t) + 1`` and ``h' = ceil(h / s_h)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        kt, kh, kw = as_triple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sizes must be odd, got {(kh, kw)}")
        self.kernel_size = (kt, kh, kw)
        self.stride = as_triple(stride)
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(in_channels, out_channels, (kt, kh, kw), stride=self.stride,
                              padding=(0, kh // 2, kw // 2), bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, 0))  # (w, w, h, h, t_front, t_back)
        return self.conv(x)
