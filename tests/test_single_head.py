"""One head per token (``LMConfig.groups=1``) samples the joint token distribution; sub-token heads
sample the product of their marginals, which puts mass on tokens that never occur together."""
from __future__ import annotations

import torch

from magvit2.generation import LMConfig, MaskedTokenModel
from magvit2.generation.heads import merge_sub_token_heads
from magvit2.generation.sampling import maskgit_sample
from magvit2.quantizers.factorize import join_indices, split_indices

N = 64
VALID = torch.tensor([[0, 1], [1, 0]])  # two tokens of 2 x 1 bit: (0, 1) and (1, 0), never (0, 0) or (1, 1)


def _joint_logits(sub, masked, cond):  # one 4-way head: only the two valid tokens
    logits = torch.full((sub.shape[0], N, 1, 4), float("-inf"))
    logits[..., 0, join_indices(VALID, (1, 1))] = 0.0
    return logits


def _marginal_logits(sub, masked, cond):  # two 2-way heads: each sub-token is 0 or 1 with p = 1/2
    return torch.zeros(sub.shape[0], N, 2, 2)


def test_single_head_samples_only_joint_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    joint = maskgit_sample(_joint_logits, 8, N, (2,), steps=4, generator=g).tokens
    factored = maskgit_sample(_marginal_logits, 8, N, (1, 1), steps=4, generator=g).tokens
    valid = set(join_indices(VALID, (1, 1)).tolist())
    assert set(joint.unique().tolist()) <= valid
    invalid = sum(int(t) not in valid for t in factored.reshape(-1))
    assert invalid > N * 8 // 4  # about half of the factored draws are tokens that never occur


def test_single_head_model_predicts_whole_tokens() -> None:
    cfg = LMConfig(bits=6, groups=1, grid=(1, 4, 4), num_classes=2, depth=1, width=32, heads=2)
    assert cfg.bits_per_group == (6,)
    model = MaskedTokenModel(cfg)
    tokens = torch.randint(0, 64, (2, 16))
    sub = split_indices(tokens, cfg.bits_per_group)
    logits = model.logits(sub, torch.ones(2, 16, dtype=torch.bool), torch.tensor([0, 1]))
    assert logits.shape == (2, 16, 1, 64)


def test_merging_sub_token_heads_keeps_the_distribution() -> None:
    torch.manual_seed(0)
    cfg = LMConfig(bits=6, groups=2, grid=(1, 4, 4), num_classes=3, depth=1, width=32, heads=2)
    factored = MaskedTokenModel(cfg).eval()
    for p in factored.parameters():  # away from the init, biases included
        p.data.add_(torch.randn_like(p) * 0.1)
    merged = merge_sub_token_heads(factored).eval()
    assert merged.config.groups == 1
    tokens = torch.randint(0, 64, (4, 16))
    masked = torch.rand(4, 16) < 0.5
    cond = torch.tensor([0, 1, 2, 3])
    sub = split_indices(tokens, cfg.bits_per_group)
    lp = torch.log_softmax(factored.logits(sub, masked, cond), dim=-1)  # [b, n, 2, 8]
    want = sum(lp[:, :, g].gather(-1, split_indices(torch.arange(64), (3, 3))[:, g].expand(4, 16, 64))
               for g in range(2))  # log prod_g p_g(s_g(t)) for every token t
    got = torch.log_softmax(merged.logits(tokens[..., None], masked, cond)[:, :, 0], dim=-1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
