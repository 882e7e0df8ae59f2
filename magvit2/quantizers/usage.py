"""Codebook-usage metrics for logging an LFQ tokenizer (no gradients).

A healthy LFQ codebook uses each bit about half the time and spreads tokens over
many codes. From a batch of indices (or +-1 codes) this reports:

* ``bit_p_plus`` ``[d]``: fraction of valid tokens whose bit ``i`` is +1 (channel ``i``);
* ``balanced_bit_fraction``: fraction of bits with ``bit_p_plus`` inside
  ``balanced_range`` (default ``[0.05, 0.95]``: a bit that is the same in more than
  95% of tokens carries under 0.29 bits of information and is counted as collapsed);
* ``entropy`` (nats) and ``perplexity = exp(entropy)`` of the empirical index histogram
  (``torch.unique`` counts; perplexity is at most ``min(#tokens, 2^d)``);
* ``distinct_codes``: number of different indices in the batch.

Shapes: ``b`` batch, ``d`` bits, ``...`` trailing token dims.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .lfq import codes_to_indices

__all__ = ["CodeUsage", "code_usage", "code_usage_from_codes"]


class CodeUsage(NamedTuple):
    """Usage statistics of one batch of tokens; scalars are 0-d tensors."""

    bit_p_plus: torch.Tensor  # [d] fraction of valid tokens with bit i = +1
    balanced_bit_fraction: torch.Tensor  # fraction of bits with bit_p_plus inside balanced_range
    entropy: torch.Tensor  # nats, of the empirical index histogram
    perplexity: torch.Tensor  # exp(entropy)
    distinct_codes: torch.Tensor  # int64, number of different indices used
    num_tokens: torch.Tensor  # int64, number of valid tokens counted


@torch.no_grad()
def code_usage(
    indices: torch.Tensor,
    bits: int,
    mask: Optional[torch.Tensor] = None,
    balanced_range: tuple[float, float] = (0.05, 0.95),
) -> CodeUsage:
    """Usage of ``indices`` [b, ...] (int, in ``[0, 2^bits)``); ``mask`` [b, ...] bool selects valid tokens."""
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
    if not 1 <= bits <= 62:
        raise ValueError(f"bits must be in [1, 62], got {bits}")
    lo, hi = balanced_range
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"balanced_range must satisfy 0 <= lo <= hi <= 1, got {balanced_range}")
    flat = indices.long().reshape(-1)  # [n]
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != indices.shape:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(indices.shape)}, got {mask.dtype} {tuple(mask.shape)}")
        flat = flat[mask.reshape(-1)]
    if flat.numel() == 0:
        raise ValueError("no valid tokens to measure; expected a non-empty batch / mask")
    if flat.min() < 0 or flat.max() >= (1 << bits):
        raise ValueError(f"indices must lie in [0, 2^{bits}), got range [{int(flat.min())}, {int(flat.max())}]")

    bit = (flat[:, None] >> torch.arange(bits, device=flat.device)) & 1  # [n, d]
    p_plus = bit.double().mean(dim=0).float()  # [d]
    balanced = ((p_plus >= lo) & (p_plus <= hi)).float().mean()

    _, counts = torch.unique(flat, return_counts=True)
    freq = counts.double() / flat.numel()
    entropy = -(freq * freq.log()).sum()
    return CodeUsage(
        bit_p_plus=p_plus,
        balanced_bit_fraction=balanced,
        entropy=entropy.float(),
        perplexity=entropy.exp().float(),
        distinct_codes=torch.tensor(counts.numel(), device=flat.device),
        num_tokens=torch.tensor(flat.numel(), device=flat.device),
    )


@torch.no_grad()
def code_usage_from_codes(
    codes: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    balanced_range: tuple[float, float] = (0.05, 0.95),
) -> CodeUsage:
    """Same as :func:`code_usage` from ``codes`` [b, d, ...] (or latents: the sign decides, 0 -> bit 0)."""
    if codes.dim() < 2:
        raise ValueError(f"codes must be [b, d, ...], got shape {tuple(codes.shape)}")
    return code_usage(codes_to_indices(codes), codes.shape[1], mask, balanced_range)
