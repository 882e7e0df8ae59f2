"""Invariants of the causal 3D tokenizer: shapes, causality, shared vocabulary, save/load."""
from __future__ import annotations

import pytest
import torch

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.tokenizer import CheckpointError


@pytest.fixture(scope="module")
def tok(conditioned_tokenizer) -> VideoTokenizer:
    return conditioned_tokenizer()


def _video(t: int, seed: int = 0, h: int = 32, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, t, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("t", [1, 5, 9, 17])
def test_shapes(tok: VideoTokenizer, t: int) -> None:
    x = _video(t)
    idx = tok.encode(x)
    assert idx.shape == (2, 1 + (t - 1) // 4, 8, 8) and idx.dtype == torch.long
    assert int(idx.min()) >= 0 and int(idx.max()) < 2**8
    rec = tok.decode(idx)
    assert rec.shape == x.shape
    out = tok(x)
    assert out.reconstruction.shape == x.shape
    assert torch.equal(out.indices, idx)
    assert out.quantizer.quantized.shape == (2, 8, *idx.shape[1:])


@pytest.mark.parametrize("t", [2, 3, 4, 6, 16])
def test_bad_frame_count(tok: VideoTokenizer, t: int) -> None:
    with pytest.raises(ValueError, match="frame count must be 1"):
        tok.encode(_video(t))


def test_bad_shapes(tok: VideoTokenizer) -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        tok.encode(_video(5, h=30))
    with pytest.raises(ValueError, match=r"expected a video \[b, 3"):
        tok.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="tokens must lie"):
        tok.decode(torch.full((1, 1, 8, 8), 256))


@torch.no_grad()
def test_causality(tok: VideoTokenizer) -> None:
    """Changing frames >= 1 + 4m changes no latent frame < m + 1 and no reconstructed frame <= 4m."""
    x = _video(17)
    z = tok.encode_latent(x)
    rec = tok.decode(tok.encode(x))
    for m in range(4):
        start = 1 + 4 * m
        y = x.clone()
        y[:, :, start:] = _video(17, seed=m + 1)[:, :, start:]
        z2 = tok.encode_latent(y)
        rec2 = tok.decode(tok.encode(y))
        assert torch.equal(z[:, :, : m + 1], z2[:, :, : m + 1]), f"latent frames <= {m} changed"
        assert not torch.allclose(z[:, :, m + 1 :], z2[:, :, m + 1 :]), "future change had no effect at all"
        assert torch.equal(rec[:, :, :start], rec2[:, :, :start]), f"reconstructed frames < {start} changed"


@torch.no_grad()
def test_shared_vocabulary(tok: VideoTokenizer) -> None:
    """An image's tokens equal the first latent frame of any video starting with it."""
    x = _video(17)
    img_tokens = tok.encode(x[:, :, :1])
    for t in (5, 9, 17):
        assert torch.equal(tok.encode(x[:, :, :t])[:, :1], img_tokens)
    assert torch.allclose(tok.decode(img_tokens)[:, :, 0], tok.decode(tok.encode(x))[:, :, 0], atol=1e-5)


def test_save_load_round_trip(tok: VideoTokenizer, tmp_path) -> None:
    tok.save_pretrained(tmp_path / "m")
    loaded = VideoTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.config == tok.config
    x = _video(9)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), tok.encode(x))
        assert torch.equal(loaded(x).reconstruction, tok(x).reconstruction)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        VideoTokenizer.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a magvit2 model"):
        VideoTokenizer.from_pretrained(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="does not describe"):
        VideoTokenizer.from_pretrained(bad)


def test_paper_video_preset_grid() -> None:
    """video-17x128: 17x128x128 -> 5x16x16 tokens in a 2^18 vocabulary (run on the meta device)."""
    cfg = TokenizerConfig.preset("video-17x128")
    assert cfg.latent_shape(17, 128, 128) == (5, 16, 16) and cfg.codebook_size == 2**18
    with torch.device("meta"):
        model = VideoTokenizer(cfg)
        z = model.encode_latent(torch.empty(1, 3, 17, 128, 128))
    assert tuple(z.shape) == (1, 18, 5, 16, 16)


def test_gradients_reach_encoder(tok: VideoTokenizer) -> None:
    tok.train()
    try:
        out = tok(_video(5))
        loss = (out.reconstruction - _video(5)).pow(2).mean() + out.quantizer.loss
        loss.backward()
        g = tok.encoder.conv_in.weight.grad
        assert g is not None and g.abs().sum() > 0
    finally:
        tok.zero_grad(set_to_none=True)
        tok.eval()
