"""Autoregressive token model: a causal transformer over the same factorized tokens.

The sequence is the raster-flattened grid (t, h, w), as for the masked model, with the
same sub-token embeddings, position embeddings and class prefix. Slot ``j`` of the
transformer input predicts token ``j``:

    input_j = (class_embed(cond) if j == 0 else embed(token_{j-1})) + pos_j

(with ``class_everywhere``, every slot also adds ``class_embed(cond)``)

so the class (or the null class) acts as the start token and no extra slot is needed.

Joint over sub-tokens: unlike the masked model, the AR model is sampled one position
at a time, so it models the joint of a position's sub-tokens exactly by the chain rule,
``p(s_0, s_1 | h) = p(s_0 | h) p(s_1 | h, s_0)``. Group ``g`` reads
``z_g = h + sum_{g' < g} U_{g'}[s_{g'}]`` (a small extra embedding of the earlier
sub-tokens of the same position) through a residual MLP before its head; group 0 reads
``h`` directly. Training uses teacher forcing on the true sub-tokens; sampling draws
group 0 first, then group 1 given it, and so on (:mod:`magvit2.generation.ar_sampling`).

Incremental decoding: :meth:`AutoregressiveTokenModel.hidden_slots` computes slots
``[start, end)`` given a per-layer KV cache holding slots ``[0, start)``.

Shape letters: b batch, n positions, m given prefix length, l new slots, g groups,
k vocabulary of one group (padded with ``-inf``), d width.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from magvit2.generation.config import LMConfig
from magvit2.generation.mlm import class_condition
from magvit2.generation.transformer import (
    FactorizedHead,
    KVCache,
    PositionEmbedding,
    SubTokenEmbedding,
    Transformer,
    init_weights,
    stack_groups,
)

__all__ = ["AROutput", "AutoregressiveTokenModel"]


class AROutput(NamedTuple):
    """``logits [b, n, g, k]``: position j, group g given tokens < j and sub-tokens < g of token j;
    ``hidden [b, n, d]`` the transformer output of each slot."""

    logits: torch.Tensor
    hidden: torch.Tensor


class AutoregressiveTokenModel(nn.Module):
    """Causal token transformer with chain-rule sub-token heads and a KV cache."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        d, bits = config.width, config.bits_per_group
        self.embed = SubTokenEmbedding(bits, d)  # the [MASK] rows are unused here
        self.pos = PositionEmbedding(config.grid, d, config.pos_embedding)
        self.class_embed = nn.Embedding(config.num_classes + 1, d)  # last row: null class
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.depth, d, config.heads, config.mlp_ratio, config.dropout,
                                       modulated=config.class_modulation)
        self.head = FactorizedHead(bits, d, tied=self.embed if config.tie_weights else None)
        self.intra_embed = nn.ModuleList(nn.Embedding(2 ** b, d) for b in bits[:-1])  # U_g, g < G - 1
        self.intra_mlp = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d)) for _ in bits[1:]
        )
        init_weights(self, config.init_std)
        self.transformer.reset_modulation()

    @property
    def bits_per_group(self) -> tuple[int, ...]:
        return self.config.bits_per_group

    def null_cond(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Labels ``[b]`` all equal to the null class (for classifier-free guidance)."""
        return torch.full((batch,), self.config.null_class, dtype=torch.long, device=device)

    def empty_cache(self, batch: int, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> list[KVCache]:
        """Per-layer KV caches for a whole sequence of ``n`` slots."""
        return self.transformer.empty_cache(batch, self.config.seq_len, device, dtype)

    def hidden_slots(self, sub_prefix: torch.Tensor, cond: torch.Tensor | None, start: int, end: int,
                     cache: Sequence[KVCache] | None = None) -> torch.Tensor:
        """Transformer outputs ``[b, l, d]`` of slots ``[start, end)``, ``l = end - start``.

        ``sub_prefix [b, m, g]`` are the known tokens (``m >= end - 1``); slot j reads token j - 1.
        Without ``cache`` ``start`` must be 0; with it, the cache must hold exactly slots ``[0, start)``.
        """
        b, m = sub_prefix.shape[:2]
        n = self.config.seq_len
        if not 0 <= start < end <= n or m < end - 1:
            raise ValueError(f"need 0 <= start < end <= {n} and prefix length >= end - 1, got start={start} end={end} m={m}")
        if cache is None and start != 0:
            raise ValueError("without a KV cache, slots must start at 0")
        if cache is not None and cache[0].length != start:
            raise ValueError(f"KV cache holds {cache[0].length} slots, expected start={start}")
        c = self.class_embed(class_condition(cond, b, self.config, sub_prefix.device))[:, None]  # [b, 1, d]
        parts = [c] if start == 0 else []
        first = max(start - 1, 0)
        if end - 1 > first:
            parts.append(self.embed(sub_prefix[:, first:end - 1].long()))
        x = torch.cat(parts, dim=1) + self.pos()[start:end]
        if self.config.class_everywhere:
            x = x + c
        return self.transformer(self.drop(x), causal=True, cache=cache,
                                cond=c[:, 0] if self.config.class_modulation else None)

    def group_logits(self, h: torch.Tensor, prev: torch.Tensor, g: int) -> torch.Tensor:
        """Logits ``[..., 2^bits_g]`` of group ``g`` from ``h [..., d]`` and the earlier sub-tokens ``prev [..., >= g]``."""
        if g == 0:
            return self.head.group(h, 0)
        if prev.shape[-1] < g:
            raise ValueError(f"group {g} needs the {g} earlier sub-tokens, got shape {tuple(prev.shape)}")
        z = h + sum(self.intra_embed[i](prev[..., i].long()) for i in range(g))
        return self.head.group(z + self.intra_mlp[g - 1](z), g)

    def forward(self, sub_tokens: torch.Tensor, cond: torch.Tensor | None = None) -> AROutput:
        """Teacher-forced logits for all positions. ``sub_tokens [b, n, g]``, ``cond [b]`` or None."""
        b, n, groups = sub_tokens.shape
        if n != self.config.seq_len or groups != len(self.bits_per_group):
            raise ValueError(f"sub_tokens must be [b, {self.config.seq_len}, {len(self.bits_per_group)}], got {tuple(sub_tokens.shape)}")
        h = self.hidden_slots(sub_tokens, cond, 0, n)
        logits = stack_groups([self.group_logits(h, sub_tokens, g) for g in range(groups)])
        return AROutput(logits, h)
