"""FSQ behind the quantizer interface: every grid point is reachable and round-trips, the
straight-through gradient flows, the config checks its levels, and a tokenizer builds it from config."""
from __future__ import annotations

import math

import pytest
import torch

from magvit2.config.base import ConfigError
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.quantizers import FSQ, LFQ, Quantizer, QuantizerConfig, QuantizerOutput, build_quantizer
from magvit2.tokenizer import VideoTokenizer


@pytest.mark.parametrize("levels", [(5, 3, 4), (8, 3), (2, 2, 2), (7,)])
def test_every_code_is_reachable_and_round_trips(levels) -> None:
    q = FSQ(levels)
    n = math.prod(levels)
    assert q.codebook_size == n and q.token_bits == (n - 1).bit_length() and q.dim == len(levels)
    codes = q.indices_to_codes(torch.arange(n)[None])  # [1, d, n]: every code once
    assert codes.unique(dim=2).shape[2] == n  # distinct grid points
    assert codes.abs().max() <= 1.0
    scale = torch.linspace(0.3, 6.0, 200)  # narrow to wide: every level of every channel is reached
    z = torch.randn(64, len(levels), 200, generator=torch.Generator().manual_seed(0)) * scale
    out = q(z)
    assert isinstance(out, QuantizerOutput)
    assert set(out.indices.unique().tolist()) == set(range(n))  # every level of every channel is reached
    torch.testing.assert_close(q.indices_to_codes(out.indices), out.quantized.detach(), rtol=0, atol=1e-6)
    assert torch.equal(q.latent_to_indices(z), out.indices)


def test_straight_through_gradient_and_zero_loss() -> None:
    q = FSQ((5, 5))
    z = torch.randn(3, 2, 4, requires_grad=True)
    out = q(z)
    assert float(out.loss) == 0.0 and set(out.metrics) == {"rounding_error"}
    out.quantized.sum().backward()
    assert z.grad is not None and bool((z.grad > 0).all())  # d/dz tanh(...) * h / width > 0


def test_config_and_factory() -> None:
    cfg = QuantizerConfig(kind="fsq", levels=(8, 5, 5, 5))
    q = build_quantizer(cfg, 4)
    assert isinstance(q, FSQ) and isinstance(q, Quantizer) and q.codebook_size == 1000
    assert isinstance(build_quantizer(QuantizerConfig(), 6), LFQ)
    with pytest.raises(ConfigError, match="set bits=4"):
        build_quantizer(cfg, 6)
    with pytest.raises(ConfigError, match="unknown quantizer kind 'vq'"):
        build_quantizer(QuantizerConfig(kind="vq"), 4)
    with pytest.raises(ConfigError, match="levels"):
        TokenizerConfig.preset("tiny", bits=2, quantizer=QuantizerConfig(kind="fsq", levels=(1, 4)))
    tc = TokenizerConfig.preset("tiny", bits=4, quantizer=cfg)
    assert (tc.codebook_size, tc.token_bits) == (1000, 10)
    assert TokenizerConfig.from_dict(tc.to_dict()) == tc


def test_tokenizer_with_fsq_encodes_and_decodes() -> None:
    cfg = TokenizerConfig.preset("tiny", bits=3, quantizer=QuantizerConfig(kind="fsq", levels=(4, 4, 4)))
    tok = VideoTokenizer(cfg).eval()
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    out = tok(x)
    idx = tok.encode(x)
    assert torch.equal(idx, out.indices) and int(idx.max()) < 64
    assert tok.decode(idx).shape == x.shape
