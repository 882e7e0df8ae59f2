"""MaskGIT-style masked token model (MAGVIT-2 Sec. 3.3, following MaskGIT / MAGVIT).

A bidirectional transformer over the raster-flattened token grid (t, h, w). Each
d-bit token is factorized into ``g`` sub-tokens (18 -> 9 + 9); the input embedding
of a position is the sum of its sub-token embeddings (a masked position uses the
[MASK] row of every table), plus a position embedding (plus the class embedding
with ``class_everywhere``). A class embedding is prepended as a prefix token (the
null class ``num_classes`` serves classifier-free guidance and unconditional models).
Separate heads predict every sub-token of every position; the training loss reads
only the masked ones.

The network knows nothing about masking schedules or decoding: see
:mod:`magvit2.losses.lm` and :mod:`magvit2.generation.sampling`.
``model.logits`` has the ``logits_fn`` signature that :func:`maskgit_sample` expects.

Shape letters: b batch, n positions, g sub-token groups, k vocabulary of one group
(padded to the largest group with ``-inf``), d width.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from magvit2.generation.config import LMConfig
from magvit2.generation.transformer import (
    FactorizedHead,
    PositionEmbedding,
    SubTokenEmbedding,
    Transformer,
    init_weights,
)

__all__ = ["MLMOutput", "MaskedTokenModel", "class_condition"]


class MLMOutput(NamedTuple):
    """``logits [b, n, g, k]`` for every sub-token; ``hidden [b, n, d]`` final features."""

    logits: torch.Tensor
    hidden: torch.Tensor


def class_condition(cond: torch.Tensor | None, batch: int, config: LMConfig, device: torch.device) -> torch.Tensor:
    """Validate class labels ``[b]`` (``None`` -> all null class ``num_classes``)."""
    if cond is None:
        return torch.full((batch,), config.null_class, dtype=torch.long, device=device)
    if cond.shape != (batch,) or cond.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"cond must be int class labels of shape ({batch},), got {cond.dtype} {tuple(cond.shape)}")
    return cond.long().to(device)


class MaskedTokenModel(nn.Module):
    """Bidirectional masked token transformer: ``(sub_tokens, masked, cond) -> logits``."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        self.embed = SubTokenEmbedding(config.bits_per_group, d)
        self.pos = PositionEmbedding(config.grid, d, config.pos_embedding)
        self.class_embed = nn.Embedding(config.num_classes + 1, d)  # last row: null class
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.depth, d, config.heads, config.mlp_ratio, config.dropout,
                                       modulated=config.class_modulation)
        self.head = FactorizedHead(config.bits_per_group, d, tied=self.embed if config.tie_weights else None)
        init_weights(self, config.init_std)
        self.transformer.reset_modulation()

    @property
    def bits_per_group(self) -> tuple[int, ...]:
        return self.config.bits_per_group

    @property
    def mask_ids(self) -> tuple[int, ...]:
        """[MASK] id of each group: ``2^bits_g``."""
        return self.embed.mask_ids

    def null_cond(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Labels ``[b]`` all equal to the null class (for classifier-free guidance)."""
        return torch.full((batch,), self.config.null_class, dtype=torch.long, device=device)

    def forward(self, sub_tokens: torch.Tensor, masked: torch.Tensor, cond: torch.Tensor | None = None) -> MLMOutput:
        """Predict all sub-tokens.

        Args:
            sub_tokens: ``[b, n, g]`` int sub-token ids (values at masked positions are ignored).
            masked: ``[b, n]`` bool, True where the position is masked.
            cond: ``[b]`` class labels in ``[0, num_classes]`` (``num_classes`` = null) or None.
        """
        b, n = masked.shape
        if sub_tokens.shape != (b, n, len(self.mask_ids)):
            raise ValueError(f"sub_tokens must be [b, n, g] = {(b, n, len(self.mask_ids))}, got {tuple(sub_tokens.shape)}")
        if n != self.config.seq_len:
            raise ValueError(f"expected n = {self.config.seq_len} positions for grid {self.config.grid}, got {n}")
        mask_ids = torch.tensor(self.mask_ids, device=sub_tokens.device)
        sub = torch.where(masked[..., None], mask_ids, sub_tokens.long())
        x = self.embed(sub) + self.pos()  # [b, n, d]
        c = self.class_embed(class_condition(cond, b, self.config, x.device))[:, None]  # [b, 1, d] prefix
        if self.config.class_everywhere:
            x = x + c
        h = self.transformer(self.drop(torch.cat([c, x], dim=1)), causal=False,
                             cond=c[:, 0] if self.config.class_modulation else None)[:, 1:]
        return MLMOutput(self.head(h), h)

    def logits(self, sub_tokens: torch.Tensor, masked: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``forward(...).logits``: the ``logits_fn`` for :func:`magvit2.generation.sampling.maskgit_sample`."""
        return self.forward(sub_tokens, masked, cond).logits
