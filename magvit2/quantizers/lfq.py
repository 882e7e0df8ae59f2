"""Lookup-free quantization (LFQ), MAGVIT-2 Sec. 3.1.

The codebook is the implicit set ``C = {-1, 1}^d`` (``2^d`` codes, no embedding
table). A latent is quantized channel-wise by sign (paper Eq. 2):

    q(z)_i = sign(z_i)   (0 maps to -1),   index(z) = sum_i 2^i [z_i > 0]   (Eq. 3, channel 0 = LSB),

with a straight-through gradient, a commitment loss ``||z - sg(q(z))||^2`` and the
entropy penalty of paper Eq. 4 computed exactly (see :mod:`magvit2.quantizers.entropy`).

Shapes: ``b`` batch, ``d`` bits (= latent channels), ``...`` any trailing spatial /
temporal dims (``t h w`` for video), ``n`` flattened tokens.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from einops import rearrange

from .base import Quantizer, register_quantizer
from .config import QuantizerConfig
from .entropy import (
    ReduceHook,
    bit_logits,
    exact_codebook_entropy,
    exact_groups,
    grouped_codebook_entropy,
    per_sample_entropy,
)
from .factorize import split_bits

__all__ = ["LFQ", "LFQOutput", "codes_to_indices", "indices_to_codes"]

ENTROPY_MODES = ("exact", "grouped")
EXACT_METHODS = ("auto", "dense", "sparse")


class LFQOutput(NamedTuple):
    """Result of :meth:`LFQ.forward` (a :class:`~magvit2.quantizers.QuantizerOutput`). Scalars are fp32 0-d tensors."""

    quantized: torch.Tensor  # [b, d, ...] values +-1 in forward, straight-through gradient, dtype of z
    indices: torch.Tensor  # [b, ...] int64 in [0, 2^d)
    loss: torch.Tensor  # entropy_weight * entropy_loss + commitment_weight * commitment
    per_sample_entropy: torch.Tensor  # E_n H(q(.|z_n)), nats (first term of Eq. 4)
    codebook_entropy: torch.Tensor  # H(E_n q(.|z_n)), nats (second term of Eq. 4; grouped mode: sum over groups)
    commitment: torch.Tensor  # mean over valid tokens and channels of (z - sg(q))^2
    entropy_loss: torch.Tensor  # per_sample_entropy - gamma * codebook_entropy (unweighted)

    @property
    def metrics(self) -> dict[str, torch.Tensor]:
        """The entropies and the commitment, for logging."""
        return {"per_sample_entropy": self.per_sample_entropy, "codebook_entropy": self.codebook_entropy,
                "commitment": self.commitment, "entropy_loss": self.entropy_loss}


_DEFAULT = QuantizerConfig()  # the one home of the defaults


def codes_to_indices(codes: torch.Tensor) -> torch.Tensor:
    """``[b, d, ...]`` codes (or latents) -> ``[b, ...]`` int64 indices: bit ``i`` is ``codes[:, i] > 0``."""
    if codes.dim() < 2:
        raise ValueError(f"codes must be [b, d, ...], got shape {tuple(codes.shape)}")
    d = codes.shape[1]
    if d > 62:
        raise ValueError(f"at most 62 bits fit in an int64 index, got d={d}")
    bits = rearrange(codes > 0, "b d ... -> b ... d").long()
    powers = torch.ones(d, dtype=torch.long, device=codes.device) << torch.arange(d, device=codes.device)
    return (bits * powers).sum(dim=-1)


def indices_to_codes(indices: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[b, ...]`` int indices -> ``[b, d, ...]`` codes in ``{-1, +1}``; exact inverse of :func:`codes_to_indices`."""
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
    if indices.dim() < 1:
        raise ValueError("indices must be [b, ...] with a batch dim, got a 0-d tensor")
    if not 1 <= bits <= 62:
        raise ValueError(f"bits must be in [1, 62], got {bits}")
    indices = indices.long()
    if indices.numel() and (indices.min() < 0 or indices.max() >= (1 << bits)):
        raise ValueError(f"indices must lie in [0, 2^{bits}), got range [{int(indices.min())}, {int(indices.max())}]")
    bit = (indices[..., None] >> torch.arange(bits, device=indices.device)) & 1  # [b, ..., d]
    return rearrange(bit.to(dtype) * 2 - 1, "b ... d -> b d ...")


@register_quantizer("lfq")
class LFQ(Quantizer):
    """Lookup-free quantizer over ``{-1, 1}^bits`` with the exact MAGVIT-2 entropy penalty.

    Args:
        bits: ``d``, latent channels = bits per token; ``codebook_size = 2**bits``.
        entropy_weight: weight of the entropy penalty (overridable per call for annealing).
        commitment_weight: weight of the commitment loss ``mean (z - sg(q))^2``.
        temperature: ``tau`` of the soft assignment ``softmax_c(2 <z, c> / tau)``.
        gamma: weight of the codebook-entropy term inside the penalty (paper Eq. 4).
        entropy_mode: ``"exact"`` (all ``2^d`` codes, exact, ``d <= 24``; see
            :func:`~magvit2.quantizers.entropy.exact_codebook_entropy`) or ``"grouped"``
            (explicit cheaper approximation: sum of the entropies of each bit group's mean).
        group_bits: bits per group in ``"grouped"`` mode (``ceil(d / group_bits)`` near-equal groups).
        reduce_hook: optional differentiable cross-process average, applied to the
            (unnormalised) mean code distribution before the codebook entropy so that it
            is the global-batch entropy. It receives a 1-D fp32 tensor whose last entry is
            the local valid-token count and must return the elementwise average over
            processes (same shape); unequal token counts per rank are then weighted
            correctly. This module never imports ``torch.distributed``.
        exact_method: how ``"exact"`` mode forms the joint mean: ``"dense"`` (one matmul,
            ``O(N 2^d)`` flops), ``"sparse"`` (confident tokens add only their likely code
            pairs, dropping < 1e-20 of their mass; one host sync) or ``"auto"`` (sparse on
            CPU for large batches, dense otherwise). All agree to fp32 rounding.

    All quantizer math runs in fp32 with autocast disabled; ``quantized`` is returned in ``z``'s dtype.
    Defaults are those of :class:`~magvit2.quantizers.QuantizerConfig`.
    """

    def __init__(
        self,
        bits: int = 18,
        *,
        entropy_weight: float = _DEFAULT.entropy_weight,
        commitment_weight: float = _DEFAULT.commitment_weight,
        temperature: float = _DEFAULT.temperature,
        gamma: float = _DEFAULT.gamma,
        entropy_mode: str = _DEFAULT.entropy_mode,
        group_bits: int = _DEFAULT.group_bits,
        reduce_hook: Optional[ReduceHook] = None,
        exact_method: str = _DEFAULT.exact_method,
    ) -> None:
        if not 1 <= bits <= 62:
            raise ValueError(f"bits must be in [1, 62], got {bits}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if entropy_mode not in ENTROPY_MODES:
            raise ValueError(f"entropy_mode must be one of {ENTROPY_MODES}, got {entropy_mode!r}")
        if group_bits < 1:
            raise ValueError(f"group_bits must be >= 1, got {group_bits}")
        if exact_method not in EXACT_METHODS:
            raise ValueError(f"exact_method must be one of {EXACT_METHODS}, got {exact_method!r}")
        super().__init__(bits, reduce_hook)
        self.bits = bits
        self.entropy_weight = float(entropy_weight)
        self.commitment_weight = float(commitment_weight)
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.entropy_mode = entropy_mode
        self.group_bits = group_bits
        self.exact_method = exact_method
        if entropy_mode == "exact":
            self.groups = exact_groups(bits)  # raises for bits > 24 with a pointer to "grouped"
        else:
            self.groups = split_bits(bits, -(-bits // group_bits))

    @classmethod
    def from_config(cls, cfg: QuantizerConfig, dim: int, reduce_hook: Optional[ReduceHook] = None) -> "LFQ":
        return cls(
            dim,
            entropy_weight=cfg.entropy_weight,
            commitment_weight=cfg.commitment_weight,
            temperature=cfg.temperature,
            gamma=cfg.gamma,
            entropy_mode=cfg.entropy_mode,
            group_bits=cfg.group_bits,
            reduce_hook=reduce_hook,
            exact_method=cfg.exact_method,
        )

    @classmethod
    def codebook_size_of(cls, cfg: QuantizerConfig, dim: int) -> int:
        return 1 << dim

    @property
    def codebook_size(self) -> int:
        return 1 << self.bits

    def extra_repr(self) -> str:
        return (
            f"bits={self.bits}, entropy_mode={self.entropy_mode!r}, groups={self.groups}, "
            f"temperature={self.temperature}, entropy_weight={self.entropy_weight}, "
            f"commitment_weight={self.commitment_weight}, gamma={self.gamma}"
        )

    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[b, ...]`` indices -> ``[b, d, ...]`` codes of +-1 (channel 0 = least significant bit)."""
        return indices_to_codes(indices, self.bits, dtype)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """``[b, d, ...]`` codes (or latents; sign decides, 0 -> bit 0) -> ``[b, ...]`` int64 indices."""
        if codes.dim() < 2 or codes.shape[1] != self.bits:
            raise ValueError(f"codes must be [b, {self.bits}, ...], got shape {tuple(codes.shape)}")
        return codes_to_indices(codes)

    latent_to_indices = codes_to_indices  # the sign decides: the latent's indices are its codes' indices

    def _check(self, z: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
        if not z.dtype.is_floating_point:
            raise ValueError(f"z must be a floating tensor, got {z.dtype}")
        if z.dim() < 2 or z.shape[1] != self.bits:
            raise ValueError(f"z must be [b, {self.bits}, ...] (channels = bits), got shape {tuple(z.shape)}")
        if mask is not None:
            expected = (z.shape[0], *z.shape[2:])
            if mask.dtype != torch.bool or tuple(mask.shape) != expected:
                raise ValueError(f"mask must be a bool tensor of shape {expected}, got {mask.dtype} {tuple(mask.shape)}")
            if not bool(mask.any()):
                raise ValueError("mask selects no valid tokens; expected at least one True entry")

    def forward(
        self,
        z: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        entropy_weight: Optional[Union[float, torch.Tensor]] = None,
    ) -> LFQOutput:
        """Quantize ``z`` [b, d, ...]; ``mask`` [b, ...] bool marks valid tokens (all valid if None)."""
        self._check(z, mask)
        weight = self.entropy_weight if entropy_weight is None else entropy_weight
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = z.float()
            q = torch.where(x > 0, 1.0, -1.0)  # Eq. 2: sign, 0 -> -1
            indices = codes_to_indices(q)  # [b, ...]
            quantized = q + (x - x.detach())  # straight-through: forward exactly +-1, gradient identity

            flat = rearrange(x, "b d ... -> (b ...) d")  # [n, d]
            weights = None if mask is None else rearrange(mask, "b ... -> (b ...)").float()  # [n]
            sq_err = (flat - rearrange(q, "b d ... -> (b ...) d")).pow(2).mean(dim=-1)  # [n]
            commitment = sq_err.mean() if weights is None else (weights @ sq_err) / weights.sum()

            logits = bit_logits(flat, self.temperature)  # [n, d], l = 4 z / tau (entropy.py, Eq. c)
            ps_entropy = per_sample_entropy(logits, weights)
            if self.entropy_mode == "exact":
                cb_entropy = exact_codebook_entropy(logits, weights, self.reduce_hook, self.exact_method)
            else:
                cb_entropy = grouped_codebook_entropy(logits, self.groups, weights, self.reduce_hook)
            entropy_loss = ps_entropy - self.gamma * cb_entropy  # paper Eq. 4
            loss = weight * entropy_loss + self.commitment_weight * commitment
        return LFQOutput(
            quantized=quantized.to(z.dtype),
            indices=indices,
            loss=loss,
            per_sample_entropy=ps_entropy,
            codebook_entropy=cb_entropy,
            commitment=commitment,
            entropy_loss=entropy_loss,
        )
