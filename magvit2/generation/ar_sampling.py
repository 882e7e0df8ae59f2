"""Sampling from :class:`AutoregressiveTokenModel`: raster order, one position at a time.

For each position the sub-tokens are drawn by the chain rule (group 0, then group 1
given it, ...), each from temperature-scaled, top-k / top-p filtered logits with the
Gumbel-max trick (noise from ``generator``). With classifier-free guidance the batch is
doubled (conditional and null class) and the logits become ``l_u + s (l_c - l_u)``.

A KV cache makes each position cost one slot of compute; ``use_cache=False`` recomputes
the whole prefix at every position (the reference the cache is tested against). Both
paths consume the random stream identically, so a fixed seed gives the same tokens.
A ``prefix`` of known tokens (frame prediction: the first latent frames) is fed in one
chunk and kept.

Shape letters: b batch, n positions, p prefix length, g groups, k vocabulary of one group.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from magvit2.generation.ar import AutoregressiveTokenModel
from magvit2.generation.sampling import gumbel_noise
from magvit2.quantizers.factorize import join_indices, split_indices
from magvit2.errors import UserError

__all__ = ["ARSampleOutput", "ar_sample", "filter_logits"]


class ARSampleOutput(NamedTuple):
    """``tokens [b, n]`` int64 and ``sub_tokens [b, n, g]``."""

    tokens: torch.Tensor
    sub_tokens: torch.Tensor


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to ``-inf``; ``[..., k] -> [..., k]``.

    Top-p keeps the smallest set of most likely entries whose probability reaches ``top_p``
    (Holtzman et al. 2020); the most likely entry is always kept.
    """
    if top_k is not None:
        if top_k < 1:
            raise UserError(f"top_k must be >= 1, got {top_k}")
        k = min(top_k, logits.shape[-1])
        kth = logits.topk(k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass strictly before each entry
        drop_sorted = before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _draw(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
          generator: torch.Generator | None) -> torch.Tensor:
    """One categorical draw per row of ``logits [b, k]`` (greedy when ``temperature == 0``)."""
    noise = gumbel_noise(logits.shape, generator, logits.device)
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    return (logits + noise).argmax(-1)


@torch.no_grad()
def ar_sample(
    model: AutoregressiveTokenModel,
    batch: int,
    *,
    cond: torch.Tensor | None = None,
    prefix: torch.Tensor | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    guidance_scale: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> ARSampleOutput:
    """Sample ``batch`` token sequences of the model's length ``n``.

    Args:
        model: an :class:`AutoregressiveTokenModel` in eval mode.
        cond: ``[b]`` class labels (None = null class).
        prefix: ``[b, p]`` known first tokens (kept as given).
        temperature, top_k, top_p: sampling controls (temperature 0 = greedy).
        guidance_scale: None = no guidance; else ``s`` in ``l_u + s (l_c - l_u)`` against the null class.
        use_cache: incremental decoding with a KV cache (else recompute the prefix each position).
        generator: random source; a fixed seed gives identical outputs.
    """
    if model.training:
        raise ValueError("ar_sample needs model.eval() (dropout would make samples irreproducible)")
    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}")
    cfg = model.config
    n, bits = cfg.seq_len, cfg.bits_per_group
    device = next(model.parameters()).device
    sub = torch.zeros(batch, n, len(bits), dtype=torch.long, device=device)
    p = 0
    if prefix is not None:
        if prefix.dim() != 2 or prefix.shape[0] != batch or prefix.shape[1] > n:
            raise ValueError(f"prefix must be [{batch}, p <= {n}] token ids, got {tuple(prefix.shape)}")
        p = prefix.shape[1]
        sub[:, :p] = split_indices(prefix.to(device), bits)
    if cond is not None:
        cond = cond.to(device)
    guided = guidance_scale is not None
    if guided:  # rows [0, b) conditional, [b, 2b) null class
        if cond is None:
            raise ValueError("guidance_scale needs class labels cond")
        cond = torch.cat([cond, model.null_cond(batch, device)])
    rows = 2 * batch if guided else batch
    cache = model.empty_cache(rows, device, next(model.parameters()).dtype) if use_cache else None

    for i in range(p, n):
        tokens = sub.repeat(2, 1, 1) if guided else sub
        start = cache[0].length if cache is not None else 0
        h = model.hidden_slots(tokens[:, :i], cond, start, i + 1, cache)[:, -1]  # [rows, d]
        for g in range(len(bits)):
            prev = sub[:, i].repeat(2, 1) if guided else sub[:, i]  # [rows, g], groups < g already drawn
            logits = model.group_logits(h, prev, g).float()
            if guided:  # classifier-free guidance: l_u + s (l_c - l_u)
                lc, lu = logits[:batch], logits[batch:]
                logits = lu + guidance_scale * (lc - lu)
            sub[:, i, g] = _draw(logits, temperature, top_k, top_p, generator)
    return ARSampleOutput(join_indices(sub, bits), sub)
