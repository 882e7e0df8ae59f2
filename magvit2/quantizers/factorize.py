"""Token factorization: a d-bit token as a few sub-tokens of fewer bits.

The paper factorizes the 2^18 vocabulary into two 2^9 sub-vocabularies so that
the language model needs two small embedding tables and heads instead of one
with 262,144 rows. Sub-token ``g`` holds bits ``offset_g .. offset_g + bits_g - 1``
of the index (bit 0 is the least significant bit, i.e. latent channel 0).

Shapes: ``...`` any leading shape, ``g`` number of groups.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["split_bits", "split_indices", "join_indices"]


def split_bits(bits: int, groups: int) -> tuple[int, ...]:
    """Split ``bits`` into ``groups`` near-equal parts, larger parts first (18, 2 -> (9, 9))."""
    if groups < 1 or groups > bits:
        raise ValueError(f"groups must be in [1, {bits}], got {groups}")
    base, extra = divmod(bits, groups)
    return tuple(base + (1 if i < extra else 0) for i in range(groups))


def _check(bits_per_group: Sequence[int]) -> None:
    if not bits_per_group or any(int(b) < 1 for b in bits_per_group):
        raise ValueError(f"bits_per_group must be positive integers, got {tuple(bits_per_group)}")
    if sum(bits_per_group) > 62:
        raise ValueError(f"at most 62 bits fit in an int64 index, got {sum(bits_per_group)}")


def split_indices(indices: torch.Tensor, bits_per_group: Sequence[int]) -> torch.Tensor:
    """``[...]`` int indices -> ``[..., g]`` sub-token indices, group 0 = lowest bits."""
    _check(bits_per_group)
    indices = indices.long()
    out, offset = [], 0
    for b in bits_per_group:
        out.append((indices >> offset) & ((1 << b) - 1))
        offset += b
    return torch.stack(out, dim=-1)


def join_indices(sub: torch.Tensor, bits_per_group: Sequence[int]) -> torch.Tensor:
    """``[..., g]`` sub-token indices -> ``[...]`` int64 indices; exact inverse of :func:`split_indices`."""
    _check(bits_per_group)
    if sub.shape[-1] != len(bits_per_group):
        raise ValueError(f"last dim must be {len(bits_per_group)} sub-tokens, got shape {tuple(sub.shape)}")
    sub = sub.long()
    out = torch.zeros(sub.shape[:-1], dtype=torch.long, device=sub.device)
    offset = 0
    for g, b in enumerate(bits_per_group):
        out |= (sub[..., g] & ((1 << b) - 1)) << offset
        offset += b
    return out
