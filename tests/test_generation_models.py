"""Config, masked and autoregressive token models, KV cache and losses (magvit2.generation)."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from magvit2.config.base import ConfigError
from magvit2.generation import (
    AutoregressiveTokenModel,
    LMConfig,
    MaskedTokenModel,
)
from magvit2.losses.lm import ar_loss, drop_labels, factorized_cross_entropy, mlm_loss
from magvit2.quantizers.factorize import split_indices



def tiny(**kw) -> LMConfig:
    return LMConfig.preset("tiny", **kw)


def rand_sub(cfg: LMConfig, b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return split_indices(torch.randint(0, 2 ** cfg.bits, (b, cfg.seq_len), generator=g), cfg.bits_per_group)


# ----- config ------------------------------------------------------------------
def test_presets_and_round_trips(tmp_path):
    assert {"tiny", "digits", "image-256", "video-17x128", "video-17x128-fp"} <= set(LMConfig.preset_names())
    paper = LMConfig.preset("video-17x128")
    assert paper.grid == (5, 16, 16) and paper.seq_len == 1280 and paper.bits_per_group == (9, 9)
    assert (paper.depth, paper.width, paper.heads) == (24, 1024, 16)
    cfg = tiny()
    assert cfg.bits_per_group == (4, 4) and cfg.seq_len == 32
    assert LMConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "lm.yaml"
    cfg.to_yaml(path)
    assert LMConfig.from_yaml(path) == cfg
    over = cfg.override(["grid=[1,4,4]", "mask_schedule=arccos"])
    assert over.grid == (1, 4, 4) and over.mask_schedule == "arccos"


@pytest.mark.parametrize("bad", [dict(width=65), dict(groups=9), dict(mask_schedule="x"), dict(pos_embedding="x"),
                                 dict(grid=(0, 4, 4)), dict(bits=40, groups=1)])
def test_config_rejects(bad):
    with pytest.raises(ConfigError):
        tiny(**bad)


# ----- masked model -------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(tie_weights=True, pos_embedding="factorized"), dict(bits=7, num_classes=0)])
def test_mlm_shapes_and_masked_values_ignored(kw):
    cfg = tiny(**kw)
    model = MaskedTokenModel(cfg).eval()
    sub = rand_sub(cfg, 3)
    masked = torch.zeros(3, cfg.seq_len, dtype=torch.bool)
    masked[:, ::3] = True
    cond = torch.tensor([0, 1, 0]) if cfg.num_classes else None
    out = model(sub, masked, cond)
    kmax = 2 ** max(cfg.bits_per_group)
    assert out.logits.shape == (3, cfg.seq_len, cfg.groups, kmax) and out.hidden.shape == (3, cfg.seq_len, cfg.width)
    for g, b in enumerate(cfg.bits_per_group):  # unequal groups are padded with -inf
        assert torch.isfinite(out.logits[..., g, : 2 ** b]).all()
        assert torch.isneginf(out.logits[..., g, 2 ** b:]).all()
    other = torch.where(masked[..., None], (sub + 1) % 8, sub)  # change only masked positions' values
    torch.testing.assert_close(model(other, masked, cond).logits, out.logits)
    unmasked_change = sub.clone()
    unmasked_change[:, 1] = (sub[:, 1] + 1) % 8  # position 1 is visible: its value matters
    assert not torch.allclose(model(unmasked_change, masked, cond).logits, out.logits)


def test_mlm_tied_weights_share_tables():
    model = MaskedTokenModel(tiny(tie_weights=True))
    assert not hasattr(model.head, "heads")
    h = torch.randn(2, 64)
    expected = h @ model.embed.tables[1].weight[:16].T + model.head.biases[1]
    torch.testing.assert_close(model.head.group(h, 1), expected)


def test_mlm_class_conditioning_matters():
    cfg = tiny()
    model = MaskedTokenModel(cfg).eval()
    sub, masked = rand_sub(cfg, 2), torch.ones(2, cfg.seq_len, dtype=torch.bool)
    a = model(sub, masked, torch.tensor([0, 0])).logits
    b = model(sub, masked, torch.tensor([1, 1])).logits
    null = model(sub, masked, None).logits
    assert not torch.allclose(a, b)
    torch.testing.assert_close(null, model(sub, masked, model.null_cond(2)).logits)
    with pytest.raises(ValueError, match="cond"):
        model(sub, masked, torch.tensor([0.0, 1.0]))


def test_class_everywhere_adds_the_class_to_every_input():
    """With class_everywhere the class embedding enters every position: zeroing the prefix path alone
    (an attention-free model) leaves a class effect, which the prefix-only model cannot have."""
    for flag in (False, True):
        cfg = tiny(class_everywhere=flag, depth=1)
        model = MaskedTokenModel(cfg).eval()
        model.transformer.blocks[0].attn.proj.weight.data.zero_()  # no attention output: no path from the prefix
        model.transformer.blocks[0].attn.proj.bias.data.zero_()
        sub, masked = rand_sub(cfg, 2), torch.ones(2, cfg.seq_len, dtype=torch.bool)
        a = model(sub, masked, torch.tensor([0, 0])).logits
        b = model(sub, masked, torch.tensor([1, 1])).logits
        assert torch.allclose(a, b) != flag


@pytest.mark.parametrize("kind", [MaskedTokenModel, AutoregressiveTokenModel])
def test_class_modulation_starts_as_the_plain_model_and_then_conditions_every_block(kind):
    """A modulated model computes exactly the unmodulated one at initialisation (the weights of a plain model
    load into it, only the zero modulation missing); once the modulation is non-zero, the class reaches
    the output even with attention cut off and no class added to the inputs."""
    torch.manual_seed(0)
    plain = kind(tiny()).eval()
    mod = kind(tiny(class_modulation=True)).eval()
    result = mod.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == [] and result.missing_keys and all(".modulation." in k for k in result.missing_keys)
    sub, cond = rand_sub(plain.config, 2), torch.tensor([0, 1])
    run = (lambda m: m(sub, torch.ones(2, plain.config.seq_len, dtype=torch.bool), cond).logits) \
        if kind is MaskedTokenModel else (lambda m: m(sub, cond).logits)
    torch.testing.assert_close(run(mod), run(plain), rtol=0, atol=0)
    for block in mod.transformer.blocks:  # no path from the class but the modulation
        block.attn.proj.weight.data.zero_()
        block.attn.proj.bias.data.zero_()
    sub = sub[:1].expand(2, *sub.shape[1:])  # one token sequence, two classes
    first = 0 if kind is MaskedTokenModel else 1  # the AR model's slot 0 reads the class itself
    out = run(mod)[:, first:]
    assert torch.allclose(out[0], out[1]) and not mod.config.class_everywhere
    torch.nn.init.normal_(mod.transformer.blocks[0].modulation[1].weight, std=0.1)
    out = run(mod)[:, first:]
    assert not torch.allclose(out[0], out[1])
    assert LMConfig.from_dict(tiny(class_modulation=True).to_dict()).class_modulation
    assert "class_modulation" not in tiny().identity()  # old models keep their identity


# ----- autoregressive model -----------------------------------------------------
def test_ar_causality():
    cfg = tiny()
    model = AutoregressiveTokenModel(cfg).eval()
    sub, cond = rand_sub(cfg, 2), torch.tensor([0, 1])
    base = model(sub, cond).logits
    j = 13
    changed = sub.clone()
    changed[:, j] = (sub[:, j] + 5) % 16
    out = model(changed, cond).logits
    torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)  # earlier positions untouched
    torch.testing.assert_close(out[:, j, 0], base[:, j, 0], rtol=0, atol=1e-6)  # group 0 of j: tokens < j only
    assert not torch.allclose(out[:, j, 1], base[:, j, 1])  # group 1 of j reads sub-token 0 of j
    assert not torch.allclose(out[:, j + 1:], base[:, j + 1:])  # later positions see token j
    only_last_group = sub.clone()
    only_last_group[:, j, 1] = (sub[:, j, 1] + 3) % 16
    torch.testing.assert_close(model(only_last_group, cond).logits[:, : j + 1], base[:, : j + 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(tie_weights=True, pos_embedding="factorized", groups=3, bits=8),
                                dict(class_everywhere=True)])
def test_ar_kv_cache_matches_full_forward(kw):
    cfg = tiny(**kw)
    model = AutoregressiveTokenModel(cfg).eval()
    sub, cond = rand_sub(cfg, 2), torch.tensor([1, 0])
    full = model(sub, cond).hidden
    cache = model.empty_cache(2)
    chunks = [(0, 5), (5, 6), (6, 20), (20, cfg.seq_len)]  # prefill, single slots and chunks
    parts = [model.hidden_slots(sub, cond, s, e, cache) for s, e in chunks]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="KV cache holds"):
        model.hidden_slots(sub, cond, 3, 4, cache)


# ----- losses -------------------------------------------------------------------
def test_factorized_cross_entropy_brute_force():
    g = torch.Generator().manual_seed(0)
    bits = (3, 2)
    logits = torch.randn(2, 5, 2, 8, generator=g)
    logits[:, :, 1, 4:] = float("-inf")
    targets = torch.stack([torch.randint(0, 8, (2, 5), generator=g), torch.randint(0, 4, (2, 5), generator=g)], -1)
    weight = torch.rand(2, 5, generator=g) < 0.5
    weight[0, 0] = True
    eps = 0.1
    loss, acc, tok_acc = factorized_cross_entropy(logits, targets, weight, bits, eps)
    total, correct = 0.0, []
    for b in range(2):
        for i in range(5):
            if not weight[b, i]:
                continue
            row = []
            for grp, k in enumerate((8, 4)):
                logp = torch.log_softmax(logits[b, i, grp, :k], -1)
                total += -(1 - eps) * logp[targets[b, i, grp]] - eps * logp.mean()
                row.append(int(logp.argmax() == targets[b, i, grp]))
            correct.append(row)
    correct = torch.tensor(correct, dtype=torch.float)
    torch.testing.assert_close(loss, torch.as_tensor(total / weight.sum(), dtype=torch.float32))
    torch.testing.assert_close(acc, correct.mean(0))
    torch.testing.assert_close(tok_acc, correct.prod(1).mean())


def test_mlm_loss_only_masked_free_positions():
    cfg = tiny(class_dropout=0.0)
    model = MaskedTokenModel(cfg).train()
    tokens = torch.randint(0, 256, (4, 2, 4, 4), generator=torch.Generator().manual_seed(0))
    known = torch.zeros(4, 32, dtype=torch.bool)
    known[:, :16] = True  # first latent frame is context
    out = mlm_loss(model, tokens, torch.tensor([0, 1, 0, 1]), known, torch.Generator().manual_seed(1))
    assert not (out.masked & known).any() and out.masked.any()
    assert out.accuracy.shape == (2,) and 0 < out.mask_ratio <= 1
    # recompute the loss from the returned mask: masked positions only
    sub = split_indices(tokens.flatten(1), cfg.bits_per_group)
    model.eval()
    out_eval = mlm_loss(model, tokens, torch.tensor([0, 1, 0, 1]), known, torch.Generator().manual_seed(1))
    logits = model(sub, out_eval.masked, torch.tensor([0, 1, 0, 1])).logits
    ref = sum(F.cross_entropy(logits[..., g, :16][out_eval.masked], sub[..., g][out_eval.masked], reduction="sum")
              for g in range(2)) / out_eval.masked.sum()
    torch.testing.assert_close(out_eval.loss, ref)
    out_eval.loss.backward()
    assert model.embed.tables[0].weight.grad is not None


def test_ar_loss_skips_context():
    cfg = tiny()
    model = AutoregressiveTokenModel(cfg).eval()
    tokens = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    known = torch.zeros(2, 32, dtype=torch.bool)
    known[:, :16] = True
    out = ar_loss(model, tokens, None, known)
    logits = model(split_indices(tokens, (4, 4)), None).logits
    sub = split_indices(tokens, (4, 4))
    ref = sum(F.cross_entropy(logits[:, 16:, g].reshape(-1, 16), sub[:, 16:, g].reshape(-1), reduction="sum")
              for g in range(2)) / 32
    torch.testing.assert_close(out.loss, ref)


def test_drop_labels_rate():
    cfg = dataclasses.replace(tiny(), class_dropout=0.25)
    cond = torch.zeros(20000, dtype=torch.long)
    dropped = drop_labels(cond, cfg, torch.Generator().manual_seed(0))
    frac = (dropped == cfg.null_class).float().mean().item()
    assert abs(frac - 0.25) < 0.015 and set(dropped.unique().tolist()) == {0, cfg.null_class}
