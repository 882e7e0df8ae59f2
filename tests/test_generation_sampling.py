"""MaskGIT decoding invariants (magvit2.generation.sampling) and AR sampling (ar_sampling)."""
import math

import pytest
import torch

from magvit2.generation import AutoregressiveTokenModel, LMConfig, MaskedTokenModel, ar_sample, filter_logits
from magvit2.generation.masking import frame_context_mask, mask_schedule
from magvit2.generation.sampling import maskgit_sample
from magvit2.quantizers.factorize import join_indices, split_indices

BITS = (4, 4)



class Recorder:
    """A logits_fn whose logits depend on the input and the condition; records its inputs."""

    def __init__(self, n: int, seed: int = 0, k: int = 16):
        g = torch.Generator().manual_seed(seed)
        self.base = torch.randn(n, 2, k, generator=g)
        self.mix = torch.randn(2, k, generator=g)
        self.calls = []

    def __call__(self, sub, masked, cond):
        self.calls.append((sub.clone(), masked.clone(), cond))
        ctx = sub.masked_fill(sub >= 16, 0).float().mean(dim=(1, 2))[:, None, None, None]  # input dependence
        bias = 0.0 if cond is None else cond.float()[:, None, None, None]
        return self.base + ctx * self.mix + bias * self.mix.flip(-1)


def expected_counts(n_free: int, steps: int, name: str) -> list[int]:
    out, prev = [], n_free
    for t in range(steps):
        prev = min(math.floor(mask_schedule((t + 1) / steps, name).item() * n_free), max(prev - 1, 0))
        out.append(prev)
    return out


@pytest.mark.parametrize("name", ["cosine", "arccos", "linear"])
@pytest.mark.parametrize("n,steps", [(32, 8), (32, 12), (5, 8)])
def test_maskgit_schedule_exact_and_everything_filled(name, n, steps):
    fn = Recorder(n)
    out = maskgit_sample(fn, 3, n, BITS, steps, schedule=name, generator=torch.Generator().manual_seed(0))
    assert (out.fixed_at >= 0).all() and out.tokens.shape == (3, n)  # nothing left masked
    expect = expected_counts(n, steps, name)
    prev = n
    for t in range(steps):
        fixed_now = (out.fixed_at == t).sum(1)
        assert fixed_now.tolist() == [prev - expect[t]] * 3
        assert out.num_masked[t].tolist() == [expect[t]] * 3
        prev = expect[t]
    for sub, masked, _ in fn.calls:  # masked inputs carry [MASK] ids; fixed values are never revised
        assert (sub[masked] == 16).all()
        assert torch.equal(sub[~masked], out.sub_tokens[~masked])
    assert torch.equal(out.tokens, join_indices(out.sub_tokens, BITS))


def test_maskgit_context_is_kept():
    n, b = 32, 2
    known = frame_context_mask((2, 4, 4), 1, b)
    known_tokens = torch.randint(0, 256, (b, n), generator=torch.Generator().manual_seed(5))
    fn = Recorder(n)
    out = maskgit_sample(fn, b, n, BITS, 6, known_tokens=known_tokens, known_mask=known,
                         generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.tokens[known], known_tokens[known])
    assert (out.fixed_at[known] == -1).all() and (out.fixed_at[~known] >= 0).all()
    for sub, masked, _ in fn.calls:
        assert not (masked & known).any()
        assert torch.equal(join_indices(sub, BITS)[known], known_tokens[known])
    assert out.num_masked[0].tolist() == [expected_counts(16, 6, "cosine")[0]] * b


@pytest.mark.parametrize("temperature", [1.0, 3.0, 0.0])
def test_maskgit_point_mass_logits(temperature):
    n = 32
    target = (torch.arange(n) * 37 + 11) % 256
    logits = torch.full((n, 2, 16), float("-inf"))
    logits.scatter_(-1, split_indices(target, BITS)[..., None], 0.0)
    out = maskgit_sample(lambda s, m, c: logits.expand(s.shape[0], -1, -1, -1), 4, n, BITS, 5,
                         temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.tokens, target.expand(4, -1))


def test_maskgit_guidance_zero_is_unconditional_and_one_is_conditional():
    n, b = 32, 3
    cond, null = torch.tensor([1, 2, 3]), torch.zeros(3, dtype=torch.long)
    fn = Recorder(n)
    guided0 = maskgit_sample(fn, b, n, BITS, 8, cond=cond, null_cond=null, guidance_scale=0.0,
                             generator=torch.Generator().manual_seed(7))
    uncond = maskgit_sample(fn, b, n, BITS, 8, cond=null, generator=torch.Generator().manual_seed(7))
    assert torch.equal(guided0.tokens, uncond.tokens)
    guided1 = maskgit_sample(fn, b, n, BITS, 8, cond=cond, null_cond=null, guidance_scale=1.0,
                             generator=torch.Generator().manual_seed(7))
    condonly = maskgit_sample(fn, b, n, BITS, 8, cond=cond, generator=torch.Generator().manual_seed(7))
    assert torch.equal(guided1.tokens, condonly.tokens) and not torch.equal(guided1.tokens, uncond.tokens)
    with pytest.raises(ValueError, match="null_cond"):
        maskgit_sample(fn, b, n, BITS, 8, cond=cond, guidance_scale=2.0)


def test_maskgit_deterministic_for_fixed_generator():
    fn = Recorder(32)
    kw = dict(temperature=1.5, temperature_schedule="linear", guidance_scale=3.0, guidance_schedule="linear",
              cond=torch.tensor([1, 1]), null_cond=torch.zeros(2, dtype=torch.long))
    a = maskgit_sample(fn, 2, 32, BITS, 8, generator=torch.Generator().manual_seed(3), **kw)
    b = maskgit_sample(fn, 2, 32, BITS, 8, generator=torch.Generator().manual_seed(3), **kw)
    c = maskgit_sample(fn, 2, 32, BITS, 8, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.fixed_at, b.fixed_at)
    assert not torch.equal(a.tokens, c.tokens)


def test_maskgit_keeps_most_confident_by_product_of_subtoken_probs():
    # greedy, no confidence noise: positions are fixed in order of p(s_0) * p(s_1)
    n = 24
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(n, 2, 16)
    peaks = torch.rand(n, 2, generator=g) * 6
    logits[:, :, 3] = peaks
    probs = logits.softmax(-1)[:, :, 3]
    conf = probs.prod(-1)
    out = maskgit_sample(lambda s, m, c: logits.expand(s.shape[0], -1, -1, -1), 1, n, BITS, 6,
                         temperature=0.0, choice_temperature=0.0, generator=g)
    order = out.fixed_at[0]
    for i in range(n):
        for j in range(n):
            if conf[i] > conf[j]:
                assert order[i] <= order[j]
    # the product ranking differs from either group's alone, so the test can tell them apart
    assert not torch.equal(conf.argsort(), probs[:, 0].argsort())
    assert not torch.equal(conf.argsort(), probs[:, 1].argsort())


def test_maskgit_subtoken_joint_is_product_of_heads():
    bits = (2, 2)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 2, 4, generator=g) * 1.5
    tau = 2.0
    out = maskgit_sample(lambda s, m, c: logits.expand(s.shape[0], -1, -1, -1), 20000, 1, bits, 1,
                         temperature=tau, generator=g)
    freq = torch.bincount(out.tokens[:, 0], minlength=16).float() / 20000
    p = (logits[0] / tau).softmax(-1)
    joint = (p[1][:, None] * p[0][None, :]).flatten()  # index = s_0 + 4 s_1
    assert (freq - joint).abs().max() < 0.015


# ----- autoregressive sampling ---------------------------------------------------
def test_filter_logits_brute_force():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 12, generator=g)
    kept = torch.isfinite(filter_logits(logits, top_k=4))
    assert (kept.sum(-1) == 4).all()
    assert torch.equal(kept, logits >= logits.topk(4, -1).values[:, -1:])
    p = 0.7
    kept = torch.isfinite(filter_logits(logits, top_p=p))
    probs = logits.softmax(-1)
    for row in range(50):
        order = probs[row].argsort(descending=True).tolist()
        mass, want = 0.0, set()
        for idx in order:  # smallest prefix whose mass reaches p
            want.add(idx)
            mass += probs[row, idx].item()
            if mass >= p:
                break
        assert set(torch.nonzero(kept[row])[:, 0].tolist()) == want


@pytest.mark.parametrize("kw", [dict(), dict(guidance_scale=2.0, top_k=8, top_p=0.9, temperature=1.3)])
def test_ar_cache_and_no_cache_sample_the_same(kw):
    cfg = LMConfig.preset("tiny")
    model = AutoregressiveTokenModel(cfg).eval()
    prefix = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(9))
    cond = torch.tensor([0, 1])
    a = ar_sample(model, 2, cond=cond, prefix=prefix, use_cache=True, generator=torch.Generator().manual_seed(1), **kw)
    b = ar_sample(model, 2, cond=cond, prefix=prefix, use_cache=False, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a.tokens, b.tokens)
    assert torch.equal(a.tokens[:, :5], prefix)
    c = ar_sample(model, 2, cond=cond, prefix=prefix, generator=torch.Generator().manual_seed(2), **kw)
    assert not torch.equal(a.tokens, c.tokens)


def test_ar_greedy_is_self_consistent_with_teacher_forcing():
    cfg = LMConfig.preset("tiny", groups=3)
    model = AutoregressiveTokenModel(cfg).eval()
    out = ar_sample(model, 2, cond=torch.tensor([1, 0]), temperature=0.0)
    logits = model(out.sub_tokens, torch.tensor([1, 0])).logits
    assert torch.equal(logits.argmax(-1), out.sub_tokens)  # chain rule: each group's argmax given earlier ones


def test_ar_guidance_zero_is_unconditional():
    cfg = LMConfig.preset("tiny")
    model = AutoregressiveTokenModel(cfg).eval()
    a = ar_sample(model, 2, cond=torch.tensor([0, 1]), guidance_scale=0.0, generator=torch.Generator().manual_seed(4))
    b = ar_sample(model, 2, cond=None, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.tokens, b.tokens)
    with pytest.raises(ValueError, match="eval"):
        ar_sample(model.train(), 1)


def test_mlm_model_plugs_into_sampler_with_guidance():
    cfg = LMConfig.preset("tiny")
    model = MaskedTokenModel(cfg).eval()
    out = maskgit_sample(model.logits, 2, cfg.seq_len, cfg.bits_per_group, 4, cond=torch.tensor([0, 1]),
                         null_cond=model.null_cond(2), guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert out.tokens.shape == (2, 32) and (out.tokens < 256).all() and (out.fixed_at >= 0).all()
