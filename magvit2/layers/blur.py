"""Blur pooling: a fixed binomial low-pass filter, then stride-2 subsampling.

Anti-aliased downsampling (Zhang 2019, "Making Convolutional Networks
Shift-Invariant Again"; StyleGAN2's ``[1, 3, 3, 1]`` filter) used by the
StyleGAN discriminator of MAGVIT-2 (Appendix, "3D for video"). The filter is
applied depthwise (each channel on its own) and is separable: the N-d kernel
is the outer product of the normalised 1D taps, so it sums to 1 and a constant
input stays constant. The ``[1, 3, 3, 1] / 8`` filter has a zero at the
Nyquist frequency, so a one-pixel checkerboard is removed entirely instead of
aliasing to a constant as plain strided subsampling does.

Sizes: every blurred axis goes ``n -> ceil(n / 2)`` (17 -> 9 -> 5 -> 3 -> 2 -> 1,
matching the tokenizer's causal time downsampling). Borders use replicate
padding so constants are preserved everywhere; for odd ``n`` the extra padded
sample goes in front, which keeps sample 0 aligned with output 0. An axis of
size 1 (an image seen as a one-frame video) is left as it is.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlurPool", "BlurPool2d", "BlurPool3d", "blur_kernel", "blur_pad"]

#: StyleGAN2's binomial filter (normalised to sum 1 by :func:`blur_kernel`).
DEFAULT_TAPS: tuple[int, ...] = (1, 3, 3, 1)


def blur_kernel(taps: tuple[int, ...] | list[int] = DEFAULT_TAPS) -> torch.Tensor:
    """The normalised 1D filter ``taps / sum(taps)`` as a float32 tensor."""
    if len(taps) < 1 or any(v < 0 for v in taps) or sum(taps) <= 0:
        raise ValueError(f"blur taps must be non-negative with a positive sum, got {tuple(taps)}")
    k = torch.tensor([float(v) for v in taps], dtype=torch.float32)
    return k / k.sum()


def blur_pad(n: int, k: int) -> tuple[int, int]:
    """(front, back) padding so that a size-``k`` filter at stride 2 maps ``n -> ceil(n / 2)``.

    ``floor((n + p - k) / 2) + 1 = ceil(n / 2)`` holds for ``p = k - 2`` (even
    ``n``) and ``p = k - 1`` (odd ``n``); the odd sample goes in front.
    """
    p = max(k - 2 + (n % 2), 0)
    return (p + 1) // 2, p // 2


class BlurPool(nn.Module):
    """Depthwise binomial blur + stride-2 subsampling over the last ``dims`` axes.

    Args:
        dims: 2 for ``[b, c, h, w]`` images, 3 for ``[b, c, t, h, w]`` videos.
        temporal: for ``dims == 3``, also blur and halve time (``t -> ceil(t / 2)``);
            when False only h and w are downsampled.
        taps: the 1D filter before normalisation; ``(1, 1)`` is 2x average pooling.
        padding_mode: ``"replicate"`` (default), ``"reflect"`` or ``"zeros"``.

    Axes of size 1 are passed through untouched (no blur, no subsampling).
    """

    def __init__(
        self,
        dims: int,
        temporal: bool = True,
        taps: tuple[int, ...] = DEFAULT_TAPS,
        padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"BlurPool dims must be 2 (images) or 3 (videos), got {dims}")
        if padding_mode not in ("replicate", "reflect", "zeros"):
            raise ValueError(f"padding_mode must be 'replicate', 'reflect' or 'zeros', got {padding_mode!r}")
        self.dims = dims
        self.temporal = bool(temporal) and dims == 3
        self.padding_mode = padding_mode
        self.taps = tuple(int(v) for v in taps)
        # Fixed, not learned and not saved: rebuilt from ``taps`` on construction.
        self.register_buffer("kernel", blur_kernel(self.taps), persistent=False)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, temporal={self.temporal}, taps={self.taps}, padding_mode={self.padding_mode!r}"

    def _blur_axis(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        """Blur + subsample one spatial/temporal axis of ``x`` ([b, c, *spatial]), depthwise."""
        n, k, c = x.shape[axis], self.kernel.numel(), x.shape[1]
        if n == 1:
            return x
        nd = x.ndim - 2
        front, back = blur_pad(n, k)
        # F.pad lists (front, back) pairs from the last axis backwards.
        pad = [0] * (2 * nd)
        slot = 2 * (x.ndim - 1 - axis)
        pad[slot], pad[slot + 1] = front, back
        if self.padding_mode == "zeros":
            x = F.pad(x, pad)
        else:
            if self.padding_mode == "reflect" and max(front, back) >= n:
                raise ValueError(f"reflect padding needs axis size > {max(front, back)}, got {n}; use 'replicate'")
            x = F.pad(x, pad, mode=self.padding_mode)
        shape = [1] * nd
        shape[axis - 2] = k
        weight = self.kernel.to(x.dtype).reshape(1, 1, *shape).expand(c, 1, *shape)
        stride = [1] * nd
        stride[axis - 2] = 2
        conv = F.conv2d if nd == 2 else F.conv3d
        return conv(x, weight, stride=stride, groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[b, c, h, w] -> [b, c, h', w']`` or ``[b, c, t, h, w] -> [b, c, t', h', w']``.

        ``h' = ceil(h / 2)``, ``w' = ceil(w / 2)``, ``t' = ceil(t / 2)`` when
        ``temporal`` else ``t``; a size-1 axis stays 1.
        """
        if x.ndim != self.dims + 2:
            want = "[b, c, h, w]" if self.dims == 2 else "[b, c, t, h, w]"
            raise ValueError(f"BlurPool(dims={self.dims}) expects {want}, got shape {tuple(x.shape)}")
        # The filter is separable: one 1D pass per axis equals the outer-product kernel.
        axes = [x.ndim - 2, x.ndim - 1]
        if self.temporal:
            axes.insert(0, 2)
        for axis in axes:
            x = self._blur_axis(x, axis)
        return x


class BlurPool2d(BlurPool):
    """:class:`BlurPool` over ``[b, c, h, w]``."""

    def __init__(self, taps: tuple[int, ...] = DEFAULT_TAPS, padding_mode: str = "replicate") -> None:
        super().__init__(2, temporal=False, taps=taps, padding_mode=padding_mode)


class BlurPool3d(BlurPool):
    """:class:`BlurPool` over ``[b, c, t, h, w]``; time is halved only when ``temporal``."""

    def __init__(
        self, temporal: bool = True, taps: tuple[int, ...] = DEFAULT_TAPS, padding_mode: str = "replicate"
    ) -> None:
        super().__init__(3, temporal=temporal, taps=taps, padding_mode=padding_mode)
