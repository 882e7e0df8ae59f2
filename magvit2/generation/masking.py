"""Mask schedules and mask sampling (MaskGIT, Chang et al. 2022, Sec. 3.2-3.3).

A mask schedule ``gamma: [0, 1] -> [0, 1]`` is monotonically decreasing with
``gamma(0) = 1`` and ``gamma(1) = 0``:

* "cosine":  ``gamma(r) = cos(pi r / 2)`` (the MaskGIT / MAGVIT default),
* "arccos":  ``gamma(r) = (2 / pi) arccos(r)``,
* "linear":  ``gamma(r) = 1 - r``.

Training draws ``r ~ U(0, 1)`` per sample and masks ``ceil(gamma(r) * n_free)`` of the
free (non-context) positions uniformly at random. Decoding with ``T`` steps keeps
``floor(gamma((t + 1) / T) * n_free)`` positions masked after step ``t``, at least
one fewer than before the step while any remain, so the last step fills everything.

Shape letters: b batch, n positions, s steps.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from einops import rearrange

from magvit2.generation.config import MASK_SCHEDULES
from magvit2.errors import UserError

__all__ = [
    "mask_schedule",
    "masked_counts",
    "random_mask",
    "RandomMask",
    "frame_context_mask",
    "flatten_grid",
    "unflatten_grid",
]


def mask_schedule(r: torch.Tensor | float, name: str = "cosine") -> torch.Tensor:
    """``gamma(r)``, the fraction of positions still masked at progress ``r`` in [0, 1].

    Computed in float64, clamped to [0, 1], exactly 0 at ``r >= 1`` and 1 at ``r <= 0``.
    """
    r = torch.as_tensor(r, dtype=torch.float64).clamp(0.0, 1.0)
    if name == "cosine":
        out = torch.cos(0.5 * math.pi * r)  # MaskGIT cosine schedule
    elif name == "arccos":
        out = torch.acos(r) * (2.0 / math.pi)
    elif name == "linear":
        out = 1.0 - r
    else:
        raise ValueError(f"mask schedule must be one of {MASK_SCHEDULES}, got {name!r}")
    out = torch.where(r >= 1.0, torch.zeros_like(out), out)
    return torch.where(r <= 0.0, torch.ones_like(out), out).clamp(0.0, 1.0)


def masked_counts(n_free: torch.Tensor | int, steps: int, name: str = "cosine") -> torch.Tensor:
    """Number of positions still masked after each decoding step: ``[s, b]`` (or ``[s]``) int64.

    ``m_t = min(floor(gamma((t + 1) / steps) * n_free), max(m_{t-1} - 1, 0))`` with
    ``m_{-1} = n_free``: the schedule, with at least one new position fixed per step
    while any is masked; ``m_{steps-1} = 0``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n = torch.as_tensor(n_free, dtype=torch.long)
    prev, out = n, []
    for t in range(steps):
        target = torch.floor(mask_schedule((t + 1) / steps, name) * n.double()).long()
        prev = torch.minimum(target, (prev - 1).clamp(min=0))
        out.append(prev)
    return torch.stack(out)


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


class RandomMask(NamedTuple):
    """A training mask. ``masked [b, n]`` bool; ``num_masked [b]``; ``ratio [b]`` = num_masked / n_free."""

    masked: torch.Tensor
    num_masked: torch.Tensor
    ratio: torch.Tensor


def random_mask(known: torch.Tensor, name: str = "cosine", generator: torch.Generator | None = None) -> RandomMask:
    """Draw a MaskGIT training mask for each sample.

    ``known [b, n]`` bool marks context positions, which are never masked. Per sample
    ``r ~ U(0, 1)`` and ``ceil(gamma(r) * n_free)`` free positions are chosen uniformly.
    """
    if known.dtype != torch.bool or known.dim() != 2:
        raise ValueError(f"known must be a [b, n] bool tensor, got {known.dtype} {tuple(known.shape)}")
    b, n = known.shape
    device = known.device
    n_free = (~known).sum(dim=1)
    r = torch.rand(b, generator=generator, dtype=torch.float64, device=_gen_device(generator)).to(device)
    num = torch.ceil(mask_schedule(r, name).to(device) * n_free.double()).long().clamp(max=n_free)
    scores = torch.rand(b, n, generator=generator, device=_gen_device(generator)).to(device)
    scores = scores.masked_fill(known, 2.0)  # context positions rank last
    rank = scores.argsort(dim=1).argsort(dim=1)
    masked = rank < num[:, None]
    return RandomMask(masked, num, num.double() / n_free.clamp(min=1).double())


def frame_context_mask(grid: Sequence[int], context_frames: int, batch: int,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """``[b, n]`` bool, True on the first ``context_frames`` latent frames of a raster-flattened (t, h, w) grid.

    With the causal tokenizer, 1 + 4k real frames map to 1 + k latent frames (5 -> 2).
    """
    t, h, w = (int(x) for x in grid)
    if not 0 <= context_frames <= t:
        raise UserError(f"context_frames must be in [0, {t}] for grid {tuple(grid)}, got {context_frames}")
    known = torch.zeros(batch, t * h * w, dtype=torch.bool, device=device)
    known[:, : context_frames * h * w] = True
    return known


def flatten_grid(tokens: torch.Tensor) -> torch.Tensor:
    """``[b, t, h, w] -> [b, n]`` in raster order (t slowest, w fastest); ``[b, n]`` passes through."""
    if tokens.dim() == 2:
        return tokens
    if tokens.dim() != 4:
        raise ValueError(f"expected tokens [b, t, h, w] or [b, n], got shape {tuple(tokens.shape)}")
    return rearrange(tokens, "b t h w -> b (t h w)")


def unflatten_grid(seq: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """``[b, n] -> [b, t, h, w]``, the inverse of :func:`flatten_grid`."""
    t, h, w = (int(x) for x in grid)
    if seq.dim() != 2 or seq.shape[1] != t * h * w:
        raise ValueError(f"expected [b, {t * h * w}] tokens for grid {(t, h, w)}, got shape {tuple(seq.shape)}")
    return rearrange(seq, "b (t h w) -> b t h w", t=t, h=h, w=w)
