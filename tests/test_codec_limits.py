"""Codec files from strangers: forged headers (CRCs recomputed) are refused before the decoder allocates
what they ask for, limits on decoded size hold, and every payload must be used up exactly."""
from __future__ import annotations

import tracemalloc
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from magvit2.cli.main import main
from magvit2.codec import CodecConfig, CodecError, DecodeLimits, VideoCodec, decompress, fit_static_prior, read_header
from magvit2.codec.container import GroupEntry, pack_raw_header, parse_raw_header
from magvit2.codec.entropy import RangeReader
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer


@pytest.fixture(scope="module")
def tok() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig.preset("tiny")).eval()


def _frames(t: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def clip_file(tok) -> bytes:
    """17 frames of 64x64 in one group, uniform prior: the issue's forging case at a quarter of the size."""
    return VideoCodec(tok, config=CodecConfig(group_frames=17)).encode(_frames(17, 64, 64), fps=25).data


def _split(data: bytes):
    raw, pos = parse_raw_header(data)
    payloads = []
    for g in raw.groups:
        payloads.append(data[pos : pos + g.num_bytes])
        pos += g.num_bytes
    return raw, payloads


def _forge(data: bytes, payloads: list[bytes] | None = None, **fields) -> bytes:
    """Change header fields and/or payloads and recompute every CRC, as an attacker would."""
    raw, old = _split(data)
    payloads = old if payloads is None else payloads
    raw = replace(raw, **fields)
    groups = tuple(GroupEntry(g.frames, len(p), zlib.crc32(p)) for g, p in zip(raw.groups, payloads))
    return pack_raw_header(replace(raw, groups=groups)) + b"".join(payloads)


def _no_pixel_decoding(tok, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer's decoder ran on a forged file")

    monkeypatch.setattr(tok, "decode", refuse)


# ----- forged geometry ---------------------------------------------------------------------------


def test_raw_header_pack_parse_round_trip(clip_file) -> None:
    raw, payloads = _split(clip_file)
    assert pack_raw_header(raw) + b"".join(payloads) == clip_file


def test_forged_width_is_refused_before_anything_of_its_size_is_allocated(tok, clip_file, monkeypatch) -> None:
    decompress(clip_file, tok)  # the intact file decodes
    forged = _forge(clip_file, width=8 * 64)  # the attack: 8x the width, CRCs recomputed
    assert read_header(forged).width == 512  # a well-formed header...
    _no_pixel_decoding(tok, monkeypatch)
    forged_tokens = 5 * 16 * 128  # ...whose token grid needs 8x the payload's symbols
    codec = VideoCodec(tok)  # what decompress does, built outside the trace (it hashes the weights)
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="too short"):
            codec.decode(forged)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < forged_tokens * 8 // 2, peak  # not even the int64 token array of the forged grid


def test_narrower_forged_geometry_leaves_bytes_over(tok, clip_file, monkeypatch) -> None:
    _no_pixel_decoding(tok, monkeypatch)
    with pytest.raises(CodecError, match="not the coding"):
        decompress(_forge(clip_file, width=32), tok)
    with pytest.raises(CodecError, match="not the coding"):
        decompress(_forge(clip_file, num_frames=9, groups=(GroupEntry(9, 0, 0),)), tok)


def test_geometry_and_split_must_match_the_tokenizer(tok, clip_file) -> None:
    with pytest.raises(CodecError, match="geometry"):
        decompress(_forge(clip_file, spatial_factor=8), tok)
    with pytest.raises(CodecError, match="geometry"):
        decompress(_forge(clip_file, temporal_factor=2), tok)
    with pytest.raises(CodecError, match="invalid header"):
        decompress(_forge(clip_file, token_bits=40, bits_per_group=(20, 20)), tok)  # above the coder's alphabet
    with pytest.raises(CodecError, match="invalid header"):
        decompress(_forge(clip_file, lm_order=1), tok)  # an LM field in a uniform-prior file


# ----- limits --------------------------------------------------------------------------------------


def test_65535_squared_frames_are_refused_from_the_header_alone(tok, clip_file, monkeypatch) -> None:
    huge = _forge(clip_file, width=65535, height=65535)

    def no_payload_parsing(*args, **kwargs):
        raise AssertionError("payloads were touched")

    monkeypatch.setattr(RangeReader, "__init__", no_payload_parsing)
    _no_pixel_decoding(tok, monkeypatch)
    with pytest.raises(CodecError, match=r"65535x65535.*max_pixels=2,097,152.*--max-pixels"):
        read_header(huge)
    with pytest.raises(CodecError, match="max_pixels"):
        decompress(huge, tok)
    # with the limit lifted, the payload budget still refuses it before any symbol is decoded
    monkeypatch.undo()
    _no_pixel_decoding(tok, monkeypatch)
    with pytest.raises(CodecError, match="too short"):
        decompress(huge, tok, limits=DecodeLimits(max_pixels=2**32))


def test_frame_limits_and_raising_them(tok) -> None:
    data = VideoCodec(tok, config=CodecConfig(group_frames=5)).encode(_frames(9, 16, 16)).data
    with pytest.raises(CodecError, match=r"max_frames=8 .*--max-frames"):
        decompress(data, tok, limits=DecodeLimits(max_frames=8))
    with pytest.raises(CodecError, match=r"max_group_frames=4 .*--max-group-frames"):
        decompress(data, tok, limits=DecodeLimits(max_group_frames=4))
    with pytest.raises(CodecError, match="max_pixels"):
        decompress(data, tok, limits=DecodeLimits(max_pixels=255))
    out = decompress(data, tok, limits=DecodeLimits(max_pixels=256, max_frames=9, max_group_frames=5))
    assert out.frames.shape == (9, 16, 16, 3)
    with pytest.raises(CodecError, match="positive"):
        DecodeLimits(max_frames=0)


def test_cli_decompress_limits(tok, tmp_path: Path, capsys) -> None:
    tok.save_pretrained(tmp_path / "tok")
    data = VideoCodec(tok, config=CodecConfig(group_frames=5)).encode(_frames(5, 16, 16)).data
    (tmp_path / "x.mv2c").write_bytes(data)
    out = tmp_path / "out.npy"
    base = ["decompress", str(tmp_path / "x.mv2c"), "-o", str(out), "--model", str(tmp_path / "tok")]
    assert main(base + ["--max-pixels", "100"]) == 2
    assert "--max-pixels" in capsys.readouterr().err and not out.exists()
    assert main(base + ["--max-pixels", "256", "--max-frames", "5"]) == 0
    assert np.load(out).shape == (5, 16, 16, 3)


# ----- exact payload consumption -------------------------------------------------------------------


@pytest.mark.parametrize("prior", ["uniform", "static"])
def test_payloads_must_be_used_up_exactly(tok, prior: str) -> None:
    frames = _frames(5, 16, 16)
    codec = VideoCodec(tok, config=CodecConfig(group_frames=5))
    obj = None
    if prior == "static":
        obj = fit_static_prior(codec.encode(frames).tokens[0] // 3, codec.prior.bits_per_group)  # a skewed table
        codec = VideoCodec(tok, obj, CodecConfig(group_frames=5))
    data = codec.encode(frames).data
    (payload,) = _split(data)[1]
    decompress(data, tok, obj)
    rng = np.random.default_rng(1)
    bad = {
        "a word appended": payload + bytes(4),
        "a word dropped": payload[:-4],
        "garbage of the same length": rng.integers(0, 256, len(payload), dtype=np.uint8).tobytes(),
        "last word changed": payload[:-4] + bytes(b ^ 0x5A for b in payload[-4:]),
        "empty": b"",
    }
    for what, p in bad.items():
        with pytest.raises(CodecError, match="payload"):
            decompress(_forge(data, payloads=[p]), tok, obj)
            pytest.fail(f"{what}: accepted")


def test_other_container_versions_are_refused_clearly(clip_file) -> None:
    for version in (0, 2, 255):
        with pytest.raises(CodecError, match=f"unsupported format version {version}"):
            read_header(_forge(clip_file, version=version))


def test_garbage_under_a_peaked_model_is_a_codec_error() -> None:
    """constriction asserts on some invalid streams (found by the fuzzer); the reader turns that into a CodecError."""
    from magvit2.codec.entropy import counts_from_logits

    for seed in range(1000):
        rng = np.random.default_rng(seed)
        words = rng.integers(0, 2**32, size=int(rng.integers(1, 12)), dtype=np.uint64).astype("<u4").tobytes()
        logits = np.zeros((16, 256))
        logits[np.arange(16), rng.integers(0, 256, 16)] = 3.0
        try:  # garbage that happens to be a canonical stream decodes; everything else must be a CodecError
            r = RangeReader(words)
            r.decode(counts_from_logits(logits))
            r.finish()
        except CodecError:
            pass
