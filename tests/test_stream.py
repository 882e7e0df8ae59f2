"""Streaming the tokenizer: for every chunking, the streamed tokens equal the whole clip's exactly and
the streamed frames equal the whole decode to float tolerance; the temporal receptive field
computed from the architecture equals the one gradients show."""
from __future__ import annotations

import random

import pytest
import torch

from magvit2.layers import CausalConv3d
from magvit2.layers.conv import StreamState
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer
from magvit2.tokenizer.groups import pad_video, reconstruct_video, valid_length
from magvit2.tokenizer.stream import reconstruct_stream, split_stream, temporal_receptive_field

CONFIGS = {
    "tiny": TokenizerConfig.preset("tiny"),
    # time halved at every one of three downsamplings (8x), an even temporal kernel
    "time-every-stage": TokenizerConfig(base_channels=8, channel_multipliers=(1, 1, 2, 2), num_res_blocks=1,
                                        temporal_downsample=(True, True, True), temporal_kernel=2, num_groups=4,
                                        bits=6, group_frames=9),
    # the paper's layout: the first downsampling keeps time
    "space-first": TokenizerConfig(base_channels=8, channel_multipliers=(1, 1, 2, 2), num_res_blocks=1,
                                   temporal_downsample=(False, True, True), num_groups=4, bits=6),
}


def _tokenizer(name: str) -> VideoTokenizer:
    torch.manual_seed(0)
    tok = VideoTokenizer(CONFIGS[name]).eval()
    with torch.no_grad():  # the decoder's adaptive norms start at zero: make them matter
        for p in tok.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return tok


def _chunking(total: int, rng: random.Random, largest: int) -> list[int]:
    sizes = []
    while sum(sizes) < total:
        sizes.append(min(rng.randint(1, largest), total - sum(sizes)))
    return sizes


@pytest.mark.parametrize("name", list(CONFIGS))
def test_streamed_tokens_equal_whole_clip(name: str) -> None:
    tok = _tokenizer(name)
    f = tok.config.temporal_factor
    t = 1 + 5 * f
    video = torch.rand(2, 3, t, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    whole = tok.encode(video)
    rng = random.Random(name)
    chunkings = [[t], [1] * t, [1, f, t - 1 - f]] + [_chunking(t, rng, 2 * f + 1) for _ in range(5)]
    for sizes in chunkings:
        streamed = torch.cat(list(tok.encode_stream(video.split(sizes, dim=2))), dim=1)
        assert torch.equal(streamed, whole), sizes


@pytest.mark.parametrize("name", list(CONFIGS))
def test_streamed_frames_equal_whole_decode(name: str) -> None:
    tok = _tokenizer(name)
    tokens = torch.randint(0, tok.config.codebook_size, (2, 7, 4, 4), generator=torch.Generator().manual_seed(2))
    whole = tok.decode(tokens)
    rng = random.Random(name)
    for sizes in [[7], [1] * 7] + [_chunking(7, rng, 3) for _ in range(4)]:
        parts = list(tok.decode_stream(tokens.split(sizes, dim=1)))
        f = tok.config.temporal_factor
        assert [p.shape[2] for p in parts] == [1 + f * (sizes[0] - 1)] + [f * n for n in sizes[1:]]
        torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=0, atol=1e-5)


def test_stream_end_is_padded_like_groups() -> None:
    """A stream of any length is closed with copies of its last frame, as pad_video does."""
    tok = _tokenizer("tiny")
    video = torch.rand(1, 3, 11, 16, 16) * 2 - 1
    streamed = torch.cat(list(tok.encode_stream(video.split([3, 5, 3], dim=2))), dim=1)
    assert torch.equal(streamed, tok.encode(pad_video(video, valid_length(11, 4), 4)))
    unpadded = torch.cat(list(tok.encode_stream(video.split([3, 5, 3], dim=2), pad_end=False)), dim=1)
    assert torch.equal(unpadded, streamed[:, :3])  # frames 9 and 10 complete no latent frame on their own


def test_keyframe_is_a_new_stream() -> None:
    tok = _tokenizer("tiny")
    video = torch.rand(1, 3, 18, 16, 16) * 2 - 1
    gop = torch.cat(list(tok.encode_stream([video[:, :, :9]])) + list(tok.encode_stream([video[:, :, 9:]])), dim=1)
    assert torch.equal(gop[:, 3:], tok.encode(pad_video(video[:, :, 9:], 9, 4)))


def test_stream_rejects_mixed_sizes_and_empty_streams() -> None:
    tok = _tokenizer("tiny")
    with pytest.raises(ValueError, match="same batch and size"):
        list(tok.encode_stream([torch.zeros(1, 3, 2, 16, 16), torch.zeros(1, 3, 2, 16, 8)]))
    with pytest.raises(ValueError, match="no frame"):
        list(tok.encode_stream([]))
    with pytest.raises(ValueError, match="multiples of 4"):
        list(tok.encode_stream([torch.zeros(1, 3, 2, 16, 10)]))


def test_conv_state_keeps_only_a_copy_of_the_tail() -> None:
    conv = CausalConv3d(2, 2, (3, 3, 3), stride=(2, 1, 1))
    x = torch.randn(1, 2, 9, 4, 4)
    state = StreamState()
    outs = [conv(part, state) for part in x.split([2, 0, 3, 4], dim=2)]
    torch.testing.assert_close(torch.cat(outs, 2), conv(x), rtol=0, atol=0)
    cache = state.get(conv)
    assert cache.seen == 9 and cache.frames.shape[2] == 2 and cache.frames.untyped_storage().size() == 2 * 2 * 16 * 4
    assert torch.equal(cache.frames, x[:, :, -2:])


@pytest.mark.parametrize("name", ["tiny", "time-every-stage"])
def test_receptive_field_matches_gradients(name: str) -> None:
    tok = _tokenizer(name).float()
    cfg = tok.config
    rf = temporal_receptive_field(cfg)
    f = cfg.temporal_factor
    t_lat = rf.encoder // f + 3
    video = torch.randn(1, 3, 1 + f * (t_lat - 1), 2 * cfg.spatial_factor, 2 * cfg.spatial_factor, requires_grad=True)
    z = tok.encoder(video)[:, :, -1]
    (z * torch.randn_like(z)).sum().backward()  # a plain sum of a normalised frame has no gradient
    frames = video.grad.abs().sum(dim=(0, 1, 3, 4)).nonzero().flatten()
    assert frames.max() == video.shape[2] - 1 and len(frames) == rf.encoder == frames.max() - frames.min() + 1

    codes = torch.randn(1, cfg.bits, rf.decoder + 4, 2, 2, requires_grad=True)
    out = tok.decoder(codes)
    spans = []
    for j in range(out.shape[2] - f, out.shape[2]):  # every phase, far from the start
        (grad,) = torch.autograd.grad((out[:, :, j] * torch.randn_like(out[:, :, j])).sum(), codes, retain_graph=True)
        used = grad.abs().sum(dim=(0, 1, 3, 4)).nonzero().flatten()
        spans.append(int(used.max() - used.min() + 1))
    assert max(spans) == rf.decoder


def test_split_stream_cuts_at_segment_boundaries() -> None:
    x = torch.arange(21.0).view(1, 1, 21, 1, 1)
    segments = [[c.flatten().tolist() for c in seg] for seg in split_stream(x.split([3, 0, 7, 2, 9], dim=2), 5)]
    assert [sum(s, []) for s in segments] == [list(range(i, min(i + 5, 21))) for i in range(0, 21, 5)]
    assert [len(c) for c in segments[0]] == [3, 2] and [len(c) for c in segments[1]] == [5]
    assert [[c.shape[2] for c in s] for s in split_stream(x.split(8, dim=2), None)] == [[8, 8, 5]]


@pytest.mark.parametrize("gop", [None, 9, 6])
def test_reconstruct_stream_equals_groups(gop: int | None) -> None:
    """Any size and length, keyframes every ``gop`` frames: the same frames as whole-group reconstruction."""
    tok = _tokenizer("tiny")
    video = torch.rand(1, 3, 23, 18, 14, generator=torch.Generator().manual_seed(3)) * 2 - 1
    streamed = list(reconstruct_stream(tok, video.split([5, 1, 9, 8], dim=2), gop))
    whole = torch.cat([reconstruct_video(tok, video[:, :, i : i + (gop or 23)], valid_length(gop or 23, 4))
                       for i in range(0, 23, gop or 23)], dim=2)
    torch.testing.assert_close(torch.cat(streamed, dim=2), whole, rtol=0, atol=1e-5)


def test_reconstruct_stream_holds_a_bounded_number_of_frames() -> None:
    """1,700 frames through a test-sized tokenizer: frames read but not yet written back stay bounded."""
    cfg = TokenizerConfig(base_channels=4, channel_multipliers=(1, 1, 1), num_res_blocks=1,
                          temporal_downsample=(True, True), num_groups=2, bits=4)
    tok = VideoTokenizer(cfg).eval()
    read = written = most = 0

    def reader():
        nonlocal read
        for _ in range(17):
            read += 100
            yield torch.rand(1, 3, 100, 8, 8) * 2 - 1

    for rec in reconstruct_stream(tok, reader(), gop=None):
        written += rec.shape[2]
        most = max(most, read - written)
    assert written == 1700 and most < 110  # one chunk plus the frames of one unfinished latent frame
