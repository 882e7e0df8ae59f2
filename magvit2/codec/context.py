"""The context prior: every token bit coded under a probability that depends on its neighbours' bits.

LFQ's entropy penalty spreads tokens evenly over the codebook, so a frequency table per token
(:class:`~magvit2.codec.priors.StaticPrior`) has almost nothing to take. What remains is
redundancy *between* positions: bit ``j`` of a token tends to equal bit ``j`` of the same place in
the previous latent frame and of its spatial neighbours. This prior codes each bit plane with a
fitted table ``p(bit | context)``, where the context of bit ``j`` at ``(t, y, x)`` is made of bit
``j`` only:

- temporal: its value at ``(t-1, y, x)`` (0, 1, or absent in a group's first latent frame) and the
  number of ones among the four cross neighbours of ``(t-1, y, x)``;
- spatial: positions of a frame are coded in two passes, a checkerboard: "even" positions
  (``y + x`` even) first, with no spatial context, then "odd" positions, whose four cross
  neighbours are all even and already known; an odd position's context holds how many of them are
  in the grid and how many of those are ones.

That is ``3 * 5`` temporal times ``26`` spatial states (:data:`NUM_CONTEXTS`), one table per bit.
The decoder rebuilds every context from bits it has already decoded, so a frame costs two coder
calls per pass and no sequential loop over positions.

Shapes: ``t h w`` a group's token grid, ``d`` bits per token, ``n = t*h*w`` positions, ``m``
positions of one pass, ``c`` contexts.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from magvit2.codec.container import CodecError
from magvit2.codec.entropy import PRECISION, RangeReader, RangeWriter, counts_from_weights
from magvit2.codec.priors import (
    PriorSource, TokenPrior, _check_sub, file_beside_model, load_tables, register_prior, save_tables,
)
from magvit2.quantizers.factorize import split_indices

__all__ = ["ContextPrior", "CONTEXT_PRIOR_FILENAME", "NUM_CONTEXTS", "fit_context_prior", "frame_contexts"]

CONTEXT_PRIOR_FILENAME = "context_prior.safetensors"
_SPATIAL = 26  #: 0 for even positions; 1 + ones * 5 + in-grid for odd ones (ones <= in-grid <= 4)
NUM_CONTEXTS = 3 * 5 * _SPATIAL


def _cross_sum(a: np.ndarray) -> np.ndarray:
    """Sum of the four cross neighbours (zero outside the grid): ``[..., h, w, d] -> [..., h, w, d]``."""
    pad = [(0, 0)] * (a.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    p = np.pad(a, pad)
    return p[..., :-2, 1:-1, :] + p[..., 2:, 1:-1, :] + p[..., 1:-1, :-2, :] + p[..., 1:-1, 2:, :]


def _odd(h: int, w: int) -> np.ndarray:
    """``[h, w]`` bool: the positions of the second pass (``y + x`` odd)."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)


def frame_contexts(prev: np.ndarray | None, cur: np.ndarray) -> np.ndarray:
    """Context ids ``[..., h, w, d]`` (int64 in ``[0, NUM_CONTEXTS)``) of one latent frame's bits.

    ``prev [..., h, w, d]`` holds the previous latent frame's bits (None for a group's first frame);
    ``cur`` the frame's own bits, of which only the even positions are read (the odd ones may be
    unknown yet).
    """
    cur = np.asarray(cur, dtype=np.int64)
    h, w = cur.shape[-3:-1]
    odd = _odd(h, w)[:, :, None]
    if prev is None:
        temporal = np.full(cur.shape, 2 * 5, dtype=np.int64)
    else:
        prev = np.asarray(prev, dtype=np.int64)
        temporal = prev * 5 + _cross_sum(prev)
    even = np.broadcast_to(~odd, cur.shape).astype(np.int64)
    spatial = np.where(odd, 1 + _cross_sum(cur * even) * 5 + _cross_sum(even), 0)
    return temporal * _SPATIAL + spatial


def _check_grid(grid: Sequence[int] | None, n: int) -> tuple[int, int, int]:
    if grid is None or len(grid) != 3:
        raise ValueError(f"the context prior needs the group's token grid (t, h, w), got {grid}")
    t, h, w = (int(x) for x in grid)
    if t * h * w != n:
        raise ValueError(f"token grid {t}x{h}x{w} does not hold {n} positions")
    return t, h, w


@dataclass
class ContextPrior(TokenPrior):
    """Fitted bit tables ``freqs [d, NUM_CONTEXTS, 2]`` (non-negative integers); codes 1-bit sub-tokens."""

    freqs: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        f = np.asarray(self.freqs)
        if f.ndim != 3 or f.shape[1:] != (NUM_CONTEXTS, 2) or f.dtype.kind not in "iu" or (f < 0).any():
            raise ValueError(f"context tables must be non-negative integers of shape [d, {NUM_CONTEXTS}, 2], "
                             f"got {f.dtype} {f.shape}")
        self.freqs = f.astype(np.int64)
        self.bits_per_group = (1,) * f.shape[0]
        self._counts = counts_from_weights(self.freqs)  # [d, c, 2], each row summing to 2**PRECISION

    @property
    def bits(self) -> int:
        return len(self.bits_per_group)

    def digest(self) -> bytes:
        h = hashlib.sha256(f"magvit2-prior|context|v1|{self.bits}|".encode())
        h.update(self.freqs.astype("<i8").tobytes())
        return h.digest()

    def _pass_counts(self, ctx: np.ndarray) -> np.ndarray:
        """``ctx [m, d]`` -> counts ``[m * d, 2]`` (position-major, bit-minor)."""
        return self._counts[np.arange(self.bits)[None, :], ctx].reshape(-1, 2)

    def encode(self, sub: np.ndarray, grid: Sequence[int] | None = None) -> bytes:
        sub = _check_sub(sub, self.bits_per_group)
        t, h, w = _check_grid(grid, sub.shape[0])
        planes = sub.reshape(t, h, w, self.bits)
        odd = _odd(h, w)
        writer = RangeWriter()
        for i in range(t):
            ctx = frame_contexts(planes[i - 1] if i else None, planes[i])
            for sel in (~odd, odd):
                writer.encode(planes[i][sel].reshape(-1), self._pass_counts(ctx[sel]))
        return writer.finish()

    def decode(self, data: bytes, n: int, grid: Sequence[int] | None = None) -> np.ndarray:
        t, h, w = _check_grid(grid, n)
        planes = np.zeros((t, h, w, self.bits), dtype=np.int64)
        odd = _odd(h, w)
        reader = RangeReader(data)
        for i in range(t):
            prev = planes[i - 1] if i else None
            for sel in (~odd, odd):  # the odd pass's contexts read the even bits just decoded
                ctx = frame_contexts(prev, planes[i])[sel]
                planes[i][sel] = reader.decode(self._pass_counts(ctx)).reshape(-1, self.bits)
        reader.finish()  # the payload must be exactly the coding of these symbols
        return planes.reshape(n, self.bits)

    def bits_per_token(self, indices: torch.Tensor | np.ndarray) -> float:
        """Ideal code length of token grids ``[..., t, h, w]`` under this prior, in bits per token."""
        ctx, symbols = _contexts_and_bits(indices, self.bits)
        p = self._counts[np.arange(self.bits), ctx]
        picked = np.take_along_axis(p, symbols[..., None], -1)[..., 0].astype(np.float64)
        return float((PRECISION - np.log2(picked)).sum() / (symbols.size / self.bits))

    def save(self, path: str | Path) -> None:
        """Write a safetensors file (``freqs`` int64); a directory means ``dir/context_prior.safetensors``."""
        meta = {"kind": "context", "version": "1", "bits": str(self.bits)}
        save_tables(path, CONTEXT_PRIOR_FILENAME, {"freqs": self.freqs}, meta)

    @classmethod
    def load(cls, path: str | Path) -> "ContextPrior":
        """Read a file written by :meth:`save` (a directory means ``dir/context_prior.safetensors``)."""
        _, tensors = load_tables(path, CONTEXT_PRIOR_FILENAME, "context", lambda m: m.get("version") == "1")
        return cls(tensors["freqs"])


def _contexts_and_bits(indices: torch.Tensor | np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Token grids ``[..., t, h, w]`` -> (contexts, bits), both ``[..., t, h, w, d]`` int64."""
    idx = torch.as_tensor(np.asarray(indices) if isinstance(indices, np.ndarray) else indices).long()
    if idx.ndim < 3:
        raise ValueError(f"token grids must have shape [..., t, h, w], got {tuple(idx.shape)}")
    if idx.numel() and (idx.min() < 0 or idx.max() >= 2**bits):
        raise ValueError(f"token ids must lie in [0, 2**{bits}), got [{int(idx.min())}, {int(idx.max())}]")
    planes = split_indices(idx, (1,) * bits).numpy()
    t = planes.shape[-4]
    ctx = np.stack([frame_contexts(planes[..., i - 1, :, :, :] if i else None, planes[..., i, :, :, :])
                    for i in range(t)], axis=-4)
    return ctx, planes


def fit_context_prior(indices: torch.Tensor | np.ndarray, bits: int, alpha: int = 1) -> ContextPrior:
    """Count each bit's value per context in token grids ``[..., t, h, w]`` plus ``alpha`` (Laplace smoothing)."""
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    if alpha < 0 or int(alpha) != alpha:
        raise ValueError(f"alpha must be a non-negative integer, got {alpha}")
    ctx, planes = _contexts_and_bits(indices, bits)
    flat = (np.arange(bits) * NUM_CONTEXTS * 2 + ctx * 2 + planes).reshape(-1)
    freqs = np.bincount(flat, minlength=bits * NUM_CONTEXTS * 2).reshape(bits, NUM_CONTEXTS, 2)
    return ContextPrior(freqs.astype(np.int64) + int(alpha))


def _load_context(src: PriorSource) -> ContextPrior:
    path = file_beside_model(src, CONTEXT_PRIOR_FILENAME, "context", ContextPrior, "fit_context_prior")
    prior = ContextPrior.load(path)
    if prior.bits != src.tokenizer.config.token_bits:
        raise CodecError(f"{path} models {prior.bits}-bit tokens, the tokenizer has {src.tokenizer.config.token_bits}")
    return prior


register_prior("context", 3, _load_context, needs="the tokenizer's directory")(ContextPrior)
