"""The one causal 3D convolution of the project, and the state that lets it run on a stream.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["CausalConv3d", "StreamState", "TimeCache", "as_triple"]


def as_triple(x: int | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(x, int):
        return (x, x, x)
    if len(x) != 3:
        raise ValueError(f"expected an int or a (t, h, w) triple, got {x!r}")
    return tuple(int(v) for v in x)  # type: ignore[return-value]


class TimeCache(NamedTuple):
    """What one causal layer remembers between chunks of a stream."""

    frames: torch.Tensor | None  #: [b, c, k_t - 1, h, w] last input frames (None for a layer without a kernel)
    seen: int  #: input frames consumed so far


class StreamState:
    """Per-layer memory of one causal stream; pass the same object with every chunk.

    A layer called with ``state=None`` treats its input as a whole clip that
    starts at frame 0. Called with a :class:`StreamState`, it treats the input
    as the next chunk of a stream: it reads what it remembered from the
    previous chunks (nothing at the very start of the stream) and stores what
    the next chunk will need. A fresh ``StreamState()`` starts a new stream,
    so a keyframe is simply a new state. Layers are the keys; the state holds
    no parameters and is not a module.
    """

    def __init__(self) -> None:
        self._caches: dict[nn.Module, TimeCache] = {}

    def get(self, layer: nn.Module) -> TimeCache:
        return self._caches.get(layer, TimeCache(None, 0))

    def put(self, layer: nn.Module, cache: TimeCache) -> None:
        self._caches[layer] = cache

    def seen(self, layer: nn.Module) -> int:
        """Frames ``layer`` has consumed in this stream (0 before its first non-empty chunk)."""
        return self.get(layer).seen

    def advance(self, layer: nn.Module, frames: int) -> int:
        """Record that ``layer`` consumed ``frames`` more frames; returns how many it had seen before."""
        before = self.get(layer)
        self.put(layer, before._replace(seen=before.seen + frames))
        return before.seen


class CausalConv3d(nn.Module):
    """3D convolution that never looks at future frames.

    The input is padded with ``k_t - 1`` zero frames *before* the first frame and
    none after, so output frame ``i`` depends on input frames ``i * s_t - k_t + 1 ..
    i * s_t`` only, and the first frame is encoded on its own (it only sees zero
    padding). With zero padding, a 2D kernel placed in the last temporal tap (the
    others zero) computes exactly the 2D convolution of each frame: this is how an
    image model is inflated to a video model. Spatial padding is symmetric ("same").

    Streaming (``state`` given): the zero frames are used only at the very start of
    the stream; later chunks are preceded by the last ``k_t - 1`` input frames of
    the stream so far, and a temporal stride keeps its phase across chunks (output
    ``i`` is emitted by the chunk that holds input frame ``i * s_t``). So any split
    of a clip into chunks, of any lengths, gives the whole clip's output, in order.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: int or (k_t, k_h, k_w); spatial sizes must be odd.
        stride: int or (s_t, s_h, s_w).

    Shapes: ``[b, c_in, t, h, w] -> [b, c_out, t', h', w']`` with
    ``t' = floor((t - 1) / s_t) + 1`` for a whole clip (for a chunk: the number of
    multiples of ``s_t`` among its global frame positions) and ``h' = ceil(h / s_h)``.
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

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        st = self.stride[0]
        cache = state.get(self) if state is not None else TimeCache(None, 0)
        past = cache.frames if cache.frames is not None else x.new_zeros(b, c, self.time_pad, h, w)
        full = torch.cat([past, x], dim=2) if self.time_pad else x  # frame j is global frame seen - time_pad + j
        if state is not None:  # keep a copy, not a view that would pin the whole chunk
            tail = full[:, :, full.shape[2] - self.time_pad :].clone() if self.time_pad else None
            state.put(self, TimeCache(tail, cache.seen + t))
        buf = full[:, :, (-cache.seen) % st :]  # the first window ends on a multiple of the stride
        if buf.shape[2] < self.kernel_size[0]:  # this chunk completes no output frame
            sh, sw = self.stride[1:]
            return x.new_zeros(b, self.conv.out_channels, 0, (h - 1) // sh + 1, (w - 1) // sw + 1)
        return self.conv(buf)
