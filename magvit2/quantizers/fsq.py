"""Finite scalar quantization (FSQ; Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made
Simple", ICLR 2024).

Each latent channel ``i`` is bounded to ``L_i`` levels and rounded (paper Sec. 3):

    f(z)_i = tanh(z_i + s_i) * h_i - o_i,   h_i = (L_i - 1)(1 + eps) / 2,   o_i = 0.5 [L_i even],
    s_i = atanh(o_i / h_i),                 q(z)_i = round(f(z)_i) / floor(L_i / 2),

with a straight-through gradient for the rounding. The implicit codebook is the grid of
``prod(L_i)`` points; a token's index is the mixed-radix number of its digits
``round(f(z)_i) + floor(L_i / 2)`` (channel 0 = least significant digit). FSQ has no auxiliary
loss and no entropy term: ``loss`` is 0 and ``entropy_weight`` is ignored.

Shapes: ``b`` batch, ``d`` latent channels (= ``len(levels)``), ``...`` trailing token dims.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
from einops import rearrange

from magvit2.config.base import ConfigError
from magvit2.quantizers.base import Quantizer, register_quantizer
from magvit2.quantizers.config import QuantizerConfig
from magvit2.quantizers.entropy import ReduceHook

__all__ = ["FSQ", "FSQOutput"]

_EPS = 1e-3  # widens the bound a little so that the outer levels are reached (and atanh(o / h) exists for L = 2)


class FSQOutput(NamedTuple):
    """Result of :meth:`FSQ.forward` (a :class:`~magvit2.quantizers.QuantizerOutput`)."""

    quantized: torch.Tensor  # [b, d, ...] grid values in [-1, 1], straight-through gradient, dtype of z
    indices: torch.Tensor  # [b, ...] int64 in [0, prod(levels))
    loss: torch.Tensor  # fp32 0-d zero: FSQ has no auxiliary loss
    rounding_error: torch.Tensor  # fp32 0-d, mean over valid tokens of (f(z) - round(f(z)))^2, for logging

    @property
    def metrics(self) -> dict[str, torch.Tensor]:
        return {"rounding_error": self.rounding_error}


@register_quantizer("fsq")
class FSQ(Quantizer):
    """Finite scalar quantizer with ``levels[i]`` values on latent channel ``i``.

    Args:
        levels: levels per channel (each >= 2), e.g. ``(8, 5, 5, 5)`` for a 1,000-code grid.
    """

    def __init__(self, levels: Sequence[int], reduce_hook: Optional[ReduceHook] = None) -> None:
        levels = tuple(int(v) for v in levels)
        _check_levels(levels)
        super().__init__(len(levels), reduce_hook)
        self.levels = levels
        lv = torch.tensor(levels, dtype=torch.float64)
        half = (lv - 1) * (1 + _EPS) / 2
        offset = (lv % 2 == 0).double() * 0.5
        self.register_buffer("_half", half.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half).float(), persistent=False)
        self.register_buffer("_width", (lv // 2).float(), persistent=False)  # floor(L / 2)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.long), persistent=False)

    @classmethod
    def from_config(cls, cfg: QuantizerConfig, dim: int, reduce_hook: Optional[ReduceHook] = None) -> "FSQ":
        cls.codebook_size_of(cfg, dim)  # checks levels against dim
        return cls(cfg.levels, reduce_hook)

    @classmethod
    def codebook_size_of(cls, cfg: QuantizerConfig, dim: int) -> int:
        _check_levels(cfg.levels)
        if len(cfg.levels) != dim:
            raise ConfigError(f"FSQ levels {tuple(cfg.levels)} give {len(cfg.levels)} latent channels, "
                              f"the model has {dim} (set bits={len(cfg.levels)})")
        return math.prod(cfg.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, codebook_size={self.codebook_size}"

    # ----- maths ------------------------------------------------------------------------
    def _view(self, buf: torch.Tensor, ndim: int) -> torch.Tensor:
        return buf.view(1, -1, *([1] * (ndim - 2)))  # [1, d, 1, ...] to broadcast over [b, d, ...]

    def _bound(self, x: torch.Tensor) -> torch.Tensor:
        """Paper Sec. 3: ``tanh(z + s) * h - o``, so that rounding gives exactly L values."""
        n = x.dim()
        return torch.tanh(x + self._view(self._shift, n)) * self._view(self._half, n) - self._view(self._offset, n)

    def _digits_to_indices(self, digits: torch.Tensor) -> torch.Tensor:
        return (rearrange(digits.long(), "b d ... -> b ... d") * self._basis).sum(dim=-1)

    def _check(self, z: torch.Tensor) -> None:
        if not z.dtype.is_floating_point:
            raise ValueError(f"z must be a floating tensor, got {z.dtype}")
        if z.dim() < 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must be [b, {self.dim}, ...] (channels = len(levels)), got shape {tuple(z.shape)}")

    def forward(self, z: torch.Tensor, mask: Optional[torch.Tensor] = None,
                entropy_weight: Optional[Union[float, torch.Tensor]] = None) -> FSQOutput:
        """Quantize ``z`` [b, d, ...]; ``mask`` [b, ...] bool marks valid tokens (for the logged metric only)."""
        self._check(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            bounded = self._bound(z.float())
            rounded = bounded.round()
            width = self._view(self._width, z.dim())
            quantized = (bounded + (rounded - bounded).detach()) / width  # straight-through rounding
            indices = self._digits_to_indices(rounded.detach() + width)
            err = (bounded - rounded).detach().pow(2).mean(dim=1)  # [b, ...]
            rounding_error = err.mean() if mask is None else err[mask].mean()
        zero = torch.zeros((), device=z.device, dtype=torch.float32)
        return FSQOutput(quantized.to(z.dtype), indices, zero, rounding_error)

    @torch.no_grad()
    def latent_to_indices(self, z: torch.Tensor) -> torch.Tensor:
        self._check(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            rounded = self._bound(z.float()).round()
            return self._digits_to_indices(rounded + self._view(self._width, z.dim()))

    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        indices = indices.long()
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got range "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        digits = (indices[..., None] // self._basis) % self._levels  # [b, ..., d]
        codes = (digits.float() - self._width) / self._width
        return rearrange(codes, "b ... d -> b d ...").to(dtype)


def _check_levels(levels: Sequence[int]) -> None:
    if not levels or any(int(v) < 2 for v in levels):
        raise ConfigError(f"FSQ levels must be a non-empty tuple of integers >= 2, got {tuple(levels)}")
    if math.prod(levels) > 2**62:
        raise ConfigError(f"FSQ codebook of {math.prod(levels)} codes does not fit an int64 index")
