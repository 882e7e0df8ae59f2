"""One softmax head per token instead of per sub-token: :func:`merge_sub_token_heads`.

Sub-token heads (``LMConfig.groups > 1``) model ``p(token) = prod_g p_g(s_g)`` at a position whose
inputs are all masked: the product of independent marginals. When the sub-tokens of real tokens are
correlated (a digit's stroke codes use certain high bits only with certain low bits), that product
puts mass on tokens that never occur, and MaskGIT's first steps sample them. With small vocabularies
(2^10 for the digits tokenizer) one ``2^bits``-way head (``groups=1``) is cheap and samples whole
tokens from their joint distribution.

:func:`merge_sub_token_heads` turns a trained factorized model into a one-head model that computes
*exactly* the same distribution (so training can continue from it instead of starting over):

- the token embedding of token ``t`` is ``sum_g E_g[s_g(t)]`` (the factorized model's input
  embedding of ``t``), the [MASK] row is ``sum_g E_g[MASK_g]``;
- the head's row for ``t`` is ``sum_g W_g[s_g(t)]`` (and the same for the bias), so the joint
  logit is ``sum_g logit_g(s_g)`` and its softmax is ``prod_g softmax_g``.

Shape letters: v = 2^bits tokens, g groups, d width.
"""
from __future__ import annotations

import dataclasses

import torch
from einops import reduce

from magvit2.generation.mlm import MaskedTokenModel
from magvit2.quantizers.factorize import split_indices

__all__ = ["merge_sub_token_heads"]


@torch.no_grad()
def merge_sub_token_heads(model: MaskedTokenModel) -> MaskedTokenModel:
    """A ``groups=1`` copy of ``model`` with the same token distribution (see the module doc)."""
    cfg = model.config
    if cfg.tie_weights:
        raise ValueError("merge_sub_token_heads needs untied heads (tie_weights=False)")
    if cfg.groups == 1:
        return model
    merged = MaskedTokenModel(dataclasses.replace(cfg, groups=1))
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(("embed.", "head."))}
    missing, _ = merged.load_state_dict(own, strict=False)
    sub = split_indices(torch.arange(2 ** cfg.bits), cfg.bits_per_group)  # [v, g]
    mask_row = torch.stack([t.weight[m] for t, m in zip(model.embed.tables, model.mask_ids)]).sum(0)
    rows = reduce(torch.stack([t.weight[sub[:, g]] for g, t in enumerate(model.embed.tables)]), "g v d -> v d", "sum")
    merged.embed.tables[0].weight.copy_(torch.cat([rows, mask_row[None]]))
    heads = model.head.heads
    merged.head.heads[0].weight.copy_(sum(h.weight[sub[:, g]] for g, h in enumerate(heads)))
    merged.head.heads[0].bias.copy_(sum(h.bias[sub[:, g]] for g, h in enumerate(heads)))
    assert sorted(missing) == ["embed.tables.0.weight", "head.heads.0.bias", "head.heads.0.weight"], missing
    return merged.train(model.training)
