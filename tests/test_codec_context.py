"""The context prior: exact round trips on any grid, real savings on correlated tokens (and none
invented on independent ones), the codec end to end, and its file beside the tokenizer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from magvit2.codec import (
    CONTEXT_PRIOR_FILENAME, CodecConfig, CodecError, ContextPrior, PriorSource, VideoCodec, compress, decompress,
    fit_context_prior, fit_static_prior, load_prior, read_header,
)
from magvit2.codec.priors import UniformPrior
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer


def _correlated(n: int, t: int, h: int, w: int, bits: int, flip: float, seed: int = 0) -> np.ndarray:
    """Token grids ``[n, t, h, w]`` whose bits are spatially smooth (2x2 blocks) and change between
    latent frames with probability ``flip`` (``flip=0.5``: frames independent)."""
    rng = np.random.default_rng(seed)
    planes = [np.repeat(np.repeat(rng.integers(0, 2, (n, 1, -(-h // 2), -(-w // 2), bits)), 2, 2), 2, 3)[:, :, :h, :w]]
    for _ in range(t - 1):
        planes.append(np.where(rng.random(planes[0].shape) < flip, 1 - planes[-1], planes[-1]))
    return (np.concatenate(planes, 1) << np.arange(bits)).sum(-1)


def _sub(grid: np.ndarray, bits: int) -> np.ndarray:
    return ((grid.reshape(-1)[:, None] >> np.arange(bits)) & 1).astype(np.int64)


def _split5(grid: np.ndarray) -> np.ndarray:
    idx = grid.reshape(-1)
    return np.stack([idx & 31, idx >> 5], axis=1)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 3, 5), (4, 1, 1), (3, 7, 2), (5, 6, 7)])
def test_round_trip_is_exact_on_any_grid(shape: tuple[int, int, int]) -> None:
    prior = fit_context_prior(_correlated(8, 5, 6, 7, 6, 0.2), 6)
    grid = _correlated(1, *shape, 6, 0.2, seed=1)[0]
    sub = _sub(grid, 6)
    data = prior.encode(sub, shape)
    np.testing.assert_array_equal(prior.decode(data, sub.shape[0], shape), sub)


def test_it_codes_redundancy_and_invents_none() -> None:
    bits, shape = 10, (5, 8, 8)
    train, test = _correlated(40, *shape, bits, 0.1), _correlated(1, *shape, bits, 0.1, seed=9)[0]
    prior = fit_context_prior(train, bits)
    sizes = {"context": len(prior.encode(_sub(test, bits), shape)),
             "static": len(fit_static_prior(train, (5, 5)).encode(_split5(test))),
             "uniform": len(UniformPrior((5, 5)).encode(_split5(test)))}
    # the first latent frame has only spatial context; the others flip 10% of bits: H(0.1) = 0.47 bit
    assert sizes["context"] < 0.6 * sizes["uniform"], sizes
    assert sizes["static"] > 0.95 * sizes["uniform"], sizes  # a per-token table sees none of it
    assert prior.bits_per_token(test) == pytest.approx(8 * sizes["context"] / test.size, rel=0.05)
    # independent frames and pixels: nothing to gain, and almost nothing lost to the context split
    noise = np.random.default_rng(3).integers(0, 2**bits, (41, *shape))
    flat = fit_context_prior(noise[:40], bits)
    assert 0.99 * bits < flat.bits_per_token(noise[40]) < 1.03 * bits


def test_the_grid_is_required_and_checked() -> None:
    prior = fit_context_prior(_correlated(2, 2, 3, 3, 4, 0.2), 4)
    sub = _sub(_correlated(1, 2, 3, 3, 4, 0.2)[0], 4)
    with pytest.raises(ValueError, match="token grid"):
        prior.encode(sub)
    with pytest.raises(ValueError, match="does not hold"):
        prior.encode(sub, (2, 3, 4))
    with pytest.raises(ValueError, match="shape"):
        ContextPrior(np.ones((4, 7, 2), dtype=np.int64))


@pytest.fixture(scope="module")
def tok() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig.preset("tiny")).eval()


def _frames(t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = [(127 + 120 * np.sin(0.2 * xx + 0.1 * yy + 0.3 * i + np.arange(3)[:, None, None])).transpose(1, 2, 0)
           for i in range(t)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def test_codec_end_to_end_and_the_file_beside_the_model(tok, tmp_path) -> None:
    frames = _frames(9, 24, 32)
    config = CodecConfig(group_frames=5)
    ref = VideoCodec(tok, config=config).encode(frames)
    prior = fit_context_prior(torch.stack(ref.tokens), tok.config.token_bits)
    prior.save(tmp_path)
    assert (tmp_path / CONTEXT_PRIOR_FILENAME).is_file()
    loaded = load_prior("context", PriorSource(tok, tmp_path))
    assert loaded.digest() == prior.digest()
    data = compress(frames, tok, prior="context", prior_obj=loaded, config=config)
    header = read_header(data)
    assert header.prior_kind == "context" and header.bits_per_group == (1,) * tok.config.token_bits
    dec = decompress(data, tok, prior_obj=ContextPrior.load(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(dec.tokens, ref.tokens))
    assert len(data) < len(ref.data)  # fitted on these very tokens
    with pytest.raises(CodecError, match="context"):
        decompress(data, tok)
    other = fit_context_prior(torch.stack(ref.tokens).flip(-1), tok.config.token_bits)
    with pytest.raises(CodecError, match="different context prior"):
        decompress(data, tok, prior_obj=other)


def test_missing_and_foreign_files_are_refused(tok, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=CONTEXT_PRIOR_FILENAME):
        load_prior("context", PriorSource(tok, tmp_path))
    with pytest.raises(CodecError, match="model directory"):
        load_prior("context", PriorSource(tok))
    fit_static_prior(torch.zeros(4, dtype=torch.long), (4, 4)).save(tmp_path / CONTEXT_PRIOR_FILENAME)
    with pytest.raises(CodecError, match="not a context prior file"):
        load_prior("context", PriorSource(tok, tmp_path))
    fit_context_prior(torch.zeros(1, 1, 2, 2, dtype=torch.long), tok.config.token_bits + 1).save(tmp_path)
    with pytest.raises(CodecError, match="bit tokens"):
        load_prior("context", PriorSource(tok, tmp_path))
