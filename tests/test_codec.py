"""Entropy coding and priors: exact probability quantization, range-coder round trips, prior bit rates."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from magvit2.codec.entropy import (
    LOGIT_STEP_INV, PRECISION, RangeReader, RangeWriter, _exp_table, counts_from_logits, counts_from_weights,
    ideal_bits,
)
from magvit2.codec.container import CodecError
from magvit2.codec.priors import LMPrior, StaticPrior, UniformPrior, default_split, fit_static_prior


# ----- probability quantization --------------------------------------------------------------


def test_counts_from_weights_invariants() -> None:
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 17, 512, 4096):
        w = rng.integers(0, 10**6, size=(20, k))
        w[0] = 0  # all-zero row -> uniform
        w[1, :] = 0
        w[1, -1] = 5  # a single non-zero weight
        c = counts_from_weights(w)
        assert c.dtype == np.int64 and c.shape == w.shape
        assert (c.sum(-1) == 2**PRECISION).all() and (c >= 1).all()
        assert c[0].max() - c[0].min() <= k  # uniform up to the remainder
        # order preserving: a larger weight never gets a smaller count
        for row_w, row_c in zip(w[:5], c[:5]):
            o = np.argsort(row_w, kind="stable")
            assert (np.diff(row_c[o])[np.diff(row_w[o]) > 0] >= 0).all()
        # close to the exact proportional share
        p = (w[2:] + 1e-300) / (w[2:] + 1e-300).sum(-1, keepdims=True)
        assert np.abs(c[2:] / 2**PRECISION - p).max() < (k + 1) / 2**PRECISION + 1e-12


def test_uniform_counts_are_exact_for_powers_of_two() -> None:
    for b in (1, 5, 9, 12):
        c = counts_from_weights(np.ones(2**b, dtype=np.int64))
        assert (c == 2 ** (PRECISION - b)).all()


def test_counts_from_weights_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="integer"):
        counts_from_weights(np.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        counts_from_weights(np.array([1, -1]))
    with pytest.raises(ValueError, match="alphabet"):
        counts_from_weights(np.ones(2 ** (PRECISION - 3), dtype=np.int64))


def test_exp_table_matches_math_exp() -> None:
    t = _exp_table()
    ref = np.array([round(2**30 * math.exp(-i / LOGIT_STEP_INV)) for i in range(len(t))])
    assert np.abs(t - ref).max() <= 1 and t[0] == 2**30 and (np.diff(t) <= 0).all()


def test_counts_from_logits_is_softmax_and_shift_invariant() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(50, 64))
    c = counts_from_logits(logits)
    p = torch.softmax(torch.from_numpy(logits), -1).numpy()
    assert (c.sum(-1) == 2**PRECISION).all() and (c >= 1).all()
    assert np.abs(c / 2**PRECISION - p).max() < 0.02
    # cross-entropy cost of the rounding is tiny
    kl = (p * (np.log(p) - np.log(c / 2**PRECISION))).sum(-1)
    assert kl.max() < 1e-3
    # an exactly representable shift changes nothing; float32 vs float64 of the same values neither
    assert (counts_from_logits(logits + 3.0) == c).all()
    l32 = logits.astype(np.float32)
    assert (counts_from_logits(l32) == counts_from_logits(l32.astype(np.float64))).all()
    with pytest.raises(ValueError, match="finite"):
        counts_from_logits(np.array([0.0, np.nan]))


# ----- range coder ---------------------------------------------------------------------------


def _random_distributions(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:  # flat-ish
        return rng.integers(0, 1000, size=(n, k))
    if kind == 1:  # very peaked, many zero weights
        w = np.zeros((n, k), dtype=np.int64)
        w[np.arange(n), rng.integers(0, k, n)] = 10**9
        return w + rng.integers(0, 2, size=(n, k))
    return np.rint(np.exp(rng.normal(scale=4.0, size=(n, k)) + 20)).astype(np.int64)


def test_range_coder_round_trip_many_random_distributions() -> None:
    rng = np.random.default_rng(2)
    w_, chunks, ideal = RangeWriter(), [], 0.0
    for _ in range(300):
        k = int(rng.choice([2, 3, 7, 64, 300, 512]))
        n = int(rng.integers(0, 40))
        c = counts_from_weights(_random_distributions(rng, n, k))
        # symbols drawn from the quantized distribution, plus some least-likely ones
        s = np.array([rng.choice(k, p=row / row.sum()) for row in c], dtype=np.int64)
        if n:
            s[0] = int(np.argmin(c[0]))
        w_.encode(s, c)
        chunks.append((s, c))
        ideal += ideal_bits(s, c) if n else 0.0
        if rng.random() < 0.3:  # interleave i.i.d. runs
            ci = counts_from_weights(rng.integers(0, 50, size=k))
            si = rng.integers(0, k, size=int(rng.integers(0, 30)))
            w_.encode_iid(si, ci)
            chunks.append((si, ci))
            ideal += ideal_bits(si, ci)
    data = w_.finish()
    r = RangeReader(data)
    for s, c in chunks:
        got = r.decode(c) if c.ndim == 2 else r.decode_iid(len(s), c)
        np.testing.assert_array_equal(got, s)
    assert 8 * len(data) <= ideal * 1.001 + 64  # near the ideal code length


def test_uniform_prior_costs_exactly_d_bits_per_token() -> None:
    rng = np.random.default_rng(3)
    prior = UniformPrior((9, 9))
    sub = rng.integers(0, 512, size=(4000, 2))
    data = prior.encode(sub)
    assert 4000 * 18 / 8 <= len(data) <= 4000 * 18 / 8 + 8
    np.testing.assert_array_equal(prior.decode(data, 4000), sub)


def test_coder_rejects_out_of_range_symbols() -> None:
    with pytest.raises(ValueError, match="symbols"):
        RangeWriter().encode_iid(np.array([4]), counts_from_weights(np.ones(4, dtype=np.int64)))


# ----- static prior ----------------------------------------------------------------------------


def test_default_split() -> None:
    assert default_split(18) == (9, 9) and default_split(8) == (8,) and default_split(10) == (5, 5)
    assert default_split(19) == (7, 6, 6)


def test_static_prior_fit_save_load_and_rate(tmp_path) -> None:
    rng = np.random.default_rng(4)
    # skewed 10-bit tokens: low bits geometric, high bits nearly constant
    lo = np.minimum(rng.geometric(0.3, size=5000) - 1, 31)
    hi = (rng.random(5000) < 0.1).astype(np.int64)
    idx = torch.from_numpy(lo | (hi << 5))
    prior = fit_static_prior(idx, (5, 5), alpha=1)
    assert prior.freqs[0].sum() == 5000 + 32 and prior.freqs[1][1] == hi.sum() + 1
    prior.save(tmp_path / "static_prior.safetensors")
    loaded = StaticPrior.load(tmp_path)
    assert loaded.digest() == prior.digest()
    sub = np.stack([lo, hi], 1)
    data = loaded.encode(sub)
    np.testing.assert_array_equal(prior.decode(data, len(sub)), sub)
    uniform = UniformPrior((5, 5)).encode(sub)
    assert len(data) < 0.5 * len(uniform)
    assert 8 * len(data) <= ideal_bits(lo, prior.counts()[0]) + ideal_bits(hi, prior.counts()[1]) + 64
    with pytest.raises(ValueError, match="token ids"):
        fit_static_prior(torch.tensor([1024]), (5, 5))


# ----- language-model prior -------------------------------------------------------------------


class NeighbourLM(torch.nn.Module):
    """Tiny deterministic conv LM: logits = strength * (3x3 conv over one-hot known tokens) per frame."""

    def __init__(self, grid: tuple[int, int, int], bits: int, strength: float = 3.0) -> None:
        super().__init__()
        self.grid, self.k = grid, 2**bits
        kernel = torch.tensor([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]])
        self.kernel = torch.nn.Parameter(strength * kernel)

    def forward(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        t, h, w = self.grid
        onehot = F.one_hot(tokens[..., 0], self.k).float() * known[..., None].float()  # [1, n, k]
        x = rearrange(onehot, "1 (t h w) k -> (t k) 1 h w", t=t, h=h, w=w)
        y = F.conv2d(x, self.kernel[None, None], padding=1)
        return rearrange(y, "(t k) 1 h w -> 1 (t h w) 1 k", t=t, k=self.k)


def _blocky_tokens(rng: np.random.Generator, grid: tuple[int, int, int], k: int) -> np.ndarray:
    t, h, w = grid
    base = rng.integers(0, k, size=(t, h // 4 + 1, w // 4 + 1)).repeat(4, 1).repeat(4, 2)[:, :h, :w]
    noise = rng.random((t, h, w)) < 0.1
    return np.where(noise, rng.integers(0, k, size=(t, h, w)), base).reshape(-1, 1)


@pytest.mark.parametrize("order,chunks", [("strided", 6), ("raster", 24)])
def test_lm_prior_round_trip_and_beats_uniform(order: str, chunks: int) -> None:
    grid, bits = (2, 12, 12), 6
    sub = _blocky_tokens(np.random.default_rng(5), grid, 2**bits)
    lm = NeighbourLM(grid, bits)
    prior = LMPrior(lm, (bits,), num_chunks=chunks, order=order)
    data = prior.encode(sub)
    assert prior.encode(sub) == data  # deterministic
    np.testing.assert_array_equal(prior.decode(data, len(sub)), sub)
    uniform = UniformPrior((bits,)).encode(sub)
    assert len(data) < 0.75 * len(uniform)
    # schedule covers every position exactly once
    pos = np.concatenate(prior.chunks(len(sub)))
    assert sorted(pos.tolist()) == list(range(len(sub)))
    # a different schedule than the encoder's is refused: too many symbols for the payload, or symbols that
    # do not re-encode to it
    other = prior.with_schedule(3, order)
    with pytest.raises(CodecError, match="payload"):
        other.decode(data, len(sub))


def test_lm_prior_multi_subtoken_and_identity() -> None:
    grid = (1, 6, 6)

    def fn(tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        # sub-token 1 predicted from sub-token 0 of the left neighbour (0 when unknown)
        left = torch.roll(tokens[..., 0] * known, 1, dims=1)
        logits = torch.zeros(1, tokens.shape[1], 2, 8)
        logits[..., 1, :] = 4.0 * F.one_hot(left % 8, 8)
        return logits

    with pytest.raises(ValueError, match="identity"):
        LMPrior(fn, (3, 3))
    p = LMPrior(fn, (3, 3), num_chunks=36, order="raster", identity="left-copy-v1")
    rng = np.random.default_rng(6)
    a = rng.integers(0, 8, size=36)
    sub = np.stack([a, np.roll(a, 1)], 1)
    data = p.encode(sub)
    np.testing.assert_array_equal(p.decode(data, 36), sub)
    assert len(data) < len(UniformPrior((3, 3)).encode(sub))
    assert p.digest() != LMPrior(fn, (3, 3), identity="left-copy-v2").digest()
    assert p.digest() == p.with_schedule(2, "strided").digest()  # the schedule lives in the file header
