"""Building blocks shared by the masked (MLM) and autoregressive (AR) token models.

* :class:`SubTokenEmbedding`: a token is a tuple of ``g`` sub-tokens; each group has
  its own table with one extra row, the [MASK] id ``2^bits_g``. The embedding of a
  position is the sum of its sub-token embeddings.
* :class:`PositionEmbedding`: "learned" (one vector per raster position) or
  "factorized" (``e_t[t] + e_h[h] + e_w[w]``).
* :class:`FactorizedHead`: one linear head per group, optionally tied to the group's
  embedding table; logits of unequal groups are padded with ``-inf`` to the largest size.
* :class:`Transformer`: pre-norm blocks, attention through
  ``F.scaled_dot_product_attention``, bidirectional or causal, with an optional
  :class:`KVCache` per layer for incremental causal decoding. With ``modulated=True``
  every block's two LayerNorms and residual branches are modulated by a per-sample
  condition vector (adaLN, Peebles & Xie 2023): ``x + (1 + a) * f(ln(x) * (1 + s) + t)``
  with ``(t, s, a)`` a linear function of ``silu(cond)``. The modulation starts at zero,
  so a modulated block computes exactly its unmodulated self until it learns otherwise
  (weights of an unmodulated model load into it unchanged).

Shape letters: b batch, n / l sequence length, s cached length, d width,
g sub-token groups, k vocabulary of one group, e heads, c head width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "KVCache",
    "Attention",
    "Block",
    "Transformer",
    "SubTokenEmbedding",
    "PositionEmbedding",
    "FactorizedHead",
    "stack_groups",
    "init_weights",
]


@dataclass
class KVCache:
    """Keys and values of one attention layer for the first ``length`` positions.

    ``k`` and ``v`` are preallocated ``[b, e, s_max, c]``; :meth:`Attention.forward`
    writes new positions at ``length`` and advances it.
    """

    k: torch.Tensor
    v: torch.Tensor
    length: int = 0

    @classmethod
    def empty(cls, batch: int, heads: int, max_len: int, head_dim: int,
              device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> "KVCache":
        shape = (batch, heads, max_len, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype), 0)

    @property
    def max_len(self) -> int:
        return self.k.shape[2]


class Attention(nn.Module):
    """Multi-head self-attention (``F.scaled_dot_product_attention``)."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, causal: bool = False, cache: KVCache | None = None) -> torch.Tensor:
        """``x [b, l, d] -> [b, l, d]``.

        With ``cache`` (causal only) the ``l`` new positions follow the ``cache.length``
        cached ones: they attend to all cached keys and causally among themselves.
        """
        q, k, v = rearrange(self.qkv(x), "b l (three e c) -> three b e l c", three=3, e=self.heads)
        p = self.dropout if self.training else 0.0
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        else:
            if not causal:
                raise ValueError("a KV cache is only valid for causal attention")
            start, l = cache.length, x.shape[1]
            if start + l > cache.max_len:
                raise ValueError(f"KV cache overflow: {start} cached + {l} new > capacity {cache.max_len}")
            cache.k[:, :, start:start + l] = k
            cache.v[:, :, start:start + l] = v
            cache.length = start + l
            keys, values = cache.k[:, :, :start + l], cache.v[:, :, :start + l]
            mask = None
            if l > 1:  # query i sits at absolute position start + i and sees keys <= start + i
                qpos = torch.arange(start, start + l, device=x.device)[:, None]
                kpos = torch.arange(start + l, device=x.device)[None, :]
                mask = kpos <= qpos
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=p)
        return self.proj(rearrange(out, "b e l c -> b l (e c)"))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``; with ``modulated``,
    both are modulated by ``cond [b, d]`` (see the module doc)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 modulated: bool = False) -> None:
        super().__init__()
        hidden = int(round(width * mlp_ratio))
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width)) if modulated else None
        self.reset_modulation()

    def reset_modulation(self) -> None:
        """Zero the modulation: the block then computes its unmodulated function."""
        if self.modulation is not None:
            nn.init.zeros_(self.modulation[1].weight)
            nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: torch.Tensor, causal: bool = False, cache: KVCache | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.modulation is None:
            x = x + self.drop(self.attn(self.norm1(x), causal=causal, cache=cache))
            return x + self.drop(self.mlp(self.norm2(x)))
        if cond is None or cond.shape != (x.shape[0], x.shape[-1]):
            raise ValueError(f"a modulated block needs cond [b, d] = {(x.shape[0], x.shape[-1])}, "
                             f"got {None if cond is None else tuple(cond.shape)}")
        t1, s1, a1, t2, s2, a2 = rearrange(self.modulation(cond), "b (m d) -> m b 1 d", m=6)
        x = x + (1 + a1) * self.drop(self.attn(self.norm1(x) * (1 + s1) + t1, causal=causal, cache=cache))
        return x + (1 + a2) * self.drop(self.mlp(self.norm2(x) * (1 + s2) + t2))


class Transformer(nn.Module):
    """A stack of :class:`Block` followed by a final LayerNorm; ``[b, l, d] -> [b, l, d]``
    (``modulated``: every block takes ``cond [b, d]``)."""

    def __init__(self, depth: int, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 modulated: bool = False) -> None:
        super().__init__()
        self.width, self.heads, self.modulated = width, heads, modulated
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout, modulated) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def reset_modulation(self) -> None:
        """Zero every block's modulation (after a generic weight initialisation)."""
        for block in self.blocks:
            block.reset_modulation()

    def empty_cache(self, batch: int, max_len: int, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> list[KVCache]:
        """One empty :class:`KVCache` per block, for up to ``max_len`` positions."""
        return [KVCache.empty(batch, self.heads, max_len, self.width // self.heads, device, dtype) for _ in self.blocks]

    def forward(self, x: torch.Tensor, causal: bool = False, cache: Sequence[KVCache] | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"expected one KVCache per block ({len(self.blocks)}), got {len(cache)}")
        for i, block in enumerate(self.blocks):
            x = block(x, causal=causal, cache=None if cache is None else cache[i], cond=cond)
        return self.norm(x)


class SubTokenEmbedding(nn.Module):
    """Sum of per-group sub-token embeddings; row ``2^bits_g`` of table ``g`` is [MASK]."""

    def __init__(self, bits_per_group: Sequence[int], width: int) -> None:
        super().__init__()
        self.bits_per_group = tuple(int(b) for b in bits_per_group)
        self.tables = nn.ModuleList(nn.Embedding(2 ** b + 1, width) for b in self.bits_per_group)

    @property
    def mask_ids(self) -> tuple[int, ...]:
        """The [MASK] id of each group (one past its largest sub-token)."""
        return tuple(2 ** b for b in self.bits_per_group)

    def forward(self, sub: torch.Tensor) -> torch.Tensor:
        """``sub [b, n, g]`` (ids in ``[0, 2^bits_g]``) -> ``[b, n, d]``."""
        if sub.shape[-1] != len(self.tables):
            raise ValueError(f"expected {len(self.tables)} sub-tokens in the last dim, got shape {tuple(sub.shape)}")
        return sum(table(sub[..., g]) for g, table in enumerate(self.tables))


class PositionEmbedding(nn.Module):
    """Position vectors ``[n, d]`` for the raster-flattened grid (t, h, w)."""

    def __init__(self, grid: Sequence[int], width: int, kind: str = "learned") -> None:
        super().__init__()
        self.grid, self.kind = tuple(grid), kind
        t, h, w = self.grid
        if kind == "learned":
            self.full = nn.Parameter(torch.zeros(t * h * w, width))
        elif kind == "factorized":
            self.t = nn.Parameter(torch.zeros(t, width))
            self.h = nn.Parameter(torch.zeros(h, width))
            self.w = nn.Parameter(torch.zeros(w, width))
        else:
            raise ValueError(f"position embedding kind must be 'learned' or 'factorized', got {kind!r}")

    def forward(self) -> torch.Tensor:
        if self.kind == "learned":
            return self.full
        pos = self.t[:, None, None] + self.h[None, :, None] + self.w[None, None, :]
        return rearrange(pos, "t h w d -> (t h w) d")


class FactorizedHead(nn.Module):
    """One prediction head per sub-token group.

    With ``tied`` embeddings (a :class:`SubTokenEmbedding`), group ``g``'s logits are
    ``h @ E_g[:2^bits_g].T + bias_g`` (the [MASK] row is never predicted).
    """

    def __init__(self, bits_per_group: Sequence[int], width: int, tied: SubTokenEmbedding | None = None) -> None:
        super().__init__()
        self.bits_per_group = tuple(int(b) for b in bits_per_group)
        self.sizes = tuple(2 ** b for b in self.bits_per_group)
        self.tied = tied
        if tied is None:
            self.heads = nn.ModuleList(nn.Linear(width, k) for k in self.sizes)
        else:
            self.biases = nn.ParameterList(nn.Parameter(torch.zeros(k)) for k in self.sizes)

    def group(self, h: torch.Tensor, g: int) -> torch.Tensor:
        """``h [..., d] -> [..., 2^bits_g]`` logits of group ``g``."""
        if self.tied is None:
            return self.heads[g](h)
        return F.linear(h, self.tied.tables[g].weight[: self.sizes[g]], self.biases[g])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h [b, n, d] -> [b, n, g, k]``, ``k = max_g 2^bits_g``; padding entries are ``-inf``."""
        return stack_groups([self.group(h, g) for g in range(len(self.sizes))])


def stack_groups(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack per-group logits ``[..., k_g]`` into ``[..., g, max k]``, padding with ``-inf``."""
    k = max(x.shape[-1] for x in logits)
    padded = [F.pad(x, (0, k - x.shape[-1]), value=float("-inf")) if x.shape[-1] < k else x for x in logits]
    return torch.stack(padded, dim=-2)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal(0, std) for linear/embedding weights and position tables, zeros for biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, PositionEmbedding):
            for p in m.parameters():
                nn.init.normal_(p, std=std)
