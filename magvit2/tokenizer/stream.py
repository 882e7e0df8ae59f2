"""Videos of any length: the tokenizer run on a stream of chunks, and its temporal receptive field.

Every layer of the tokenizer is causal in time and per frame in its norms, so a
video can be encoded chunk by chunk: each causal convolution carries its last
``k_t - 1`` input frames from one chunk to the next (:class:`StreamState`), and
the result is the whole clip's result, in memory that does not grow with the
video. Tokens of one stream form one causal sequence: only the stream's first
frame is coded alone like an image.

Chunk rules:

- :func:`encode_stream` takes frame chunks ``[b, c, t, h, w]`` of any lengths
  (``t >= 0``, all of one size). Latent frame ``j`` is complete once input frame
  ``j * temporal_factor`` has arrived, so a chunk yields the token frames it
  completes (possibly none). When the stream ends after ``T`` frames with
  ``(T - 1) % temporal_factor != 0``, its last frame is repeated up to the next
  valid length ``1 + k * temporal_factor`` (as :func:`~magvit2.tokenizer.groups.pad_video`
  does), so every frame is covered; decoders trim back to ``T``.
- :func:`decode_stream` takes token chunks ``[b, t', h', w']`` with ``t' >= 1``;
  the first yields ``1 + r (t' - 1)`` frames and every later one ``r t'``
  (``r = temporal_factor``).

For every chunking, the streamed tokens equal ``tokenizer.encode`` of the whole
clip exactly, and the streamed frames equal ``tokenizer.decode`` of all tokens up
to float rounding (tested in ``tests/test_stream.py``). A new stream (a keyframe)
is a new call.

Shape letters: b batch, c channels, t frames, h height, w width, d latent bits;
t', h', w' the token grid.
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

import torch

from magvit2.tokenizer.config import TokenizerConfig
from magvit2.layers.conv import StreamState
from magvit2.tokenizer.groups import pad_video, reconstruct_video
from magvit2.errors import UserError

__all__ = ["StreamState", "encode_stream", "decode_stream", "split_stream", "reconstruct_stream", "ReceptiveField",
           "temporal_receptive_field"]


@torch.no_grad()
def encode_stream(tokenizer, chunks: Iterable[torch.Tensor], pad_end: bool = True) -> Iterator[torch.Tensor]:
    """Token frames ``[b, t', h', w']`` as the chunks ``[b, c, t, h, w]`` of one stream arrive.

    Empty results are not yielded. With ``pad_end`` the stream's last frame is repeated up to
    the next valid length when the stream ends (see the module docstring); without it, frames
    after the last complete latent frame produce no tokens.
    """
    state, last, seen = StreamState(), None, 0
    f = tokenizer.config.temporal_factor
    for chunk in chunks:
        _check_chunk(tokenizer.config, chunk, last)
        if chunk.shape[2] == 0:
            continue
        seen += chunk.shape[2]
        last = chunk[:, :, -1:].clone()  # a copy, so the caller's chunk can be freed
        yield from _encode_chunk(tokenizer, chunk, state)
    if last is None:
        raise UserError("encode_stream: the stream held no frame")
    missing = (-(seen - 1)) % f
    if pad_end and missing:
        yield from _encode_chunk(tokenizer, last.expand(-1, -1, missing, -1, -1), state)


def _encode_chunk(tokenizer, chunk: torch.Tensor, state: StreamState) -> Iterator[torch.Tensor]:
    z = tokenizer.encoder(chunk, state)
    if z.shape[2]:
        yield tokenizer.quantizer.latent_to_indices(z)


def _check_chunk(cfg: TokenizerConfig, chunk: torch.Tensor, previous: torch.Tensor | None) -> None:
    if chunk.ndim != 5 or chunk.shape[1] != cfg.in_channels:
        raise ValueError(f"expected frame chunks [b, {cfg.in_channels}, t, h, w], got shape {tuple(chunk.shape)}")
    f, (h, w) = cfg.spatial_factor, chunk.shape[3:]
    if h % f or w % f:
        raise UserError(f"height and width must be multiples of {f}, got {h}x{w}")
    if previous is not None and (previous.shape[0], *previous.shape[3:]) != (chunk.shape[0], h, w):
        raise ValueError(f"every chunk of a stream needs the same batch and size; got {tuple(chunk.shape)} "
                         f"after {tuple(previous.shape)}")


@torch.no_grad()
def decode_stream(tokenizer, tokens: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Frame chunks ``[b, c, t, h, w]`` as the token chunks ``[b, t', h', w']`` of one stream arrive."""
    state = StreamState()
    dtype = next(tokenizer.parameters()).dtype
    for idx in tokens:
        tokenizer.check_indices(idx)
        if idx.shape[1] == 0:
            continue
        yield tokenizer.decoder(tokenizer.quantizer.indices_to_codes(idx, dtype=dtype), state)


def split_stream(chunks: Iterable[torch.Tensor], frames: int | None) -> Iterator[Iterator[torch.Tensor]]:
    """Cut a stream of chunks ``[b, c, t, h, w]`` into consecutive segments of ``frames`` frames (the
    last may be shorter; ``None``: one segment), each an iterator of chunks. Chunks are split at
    segment boundaries, never copied; consume each segment before asking for the next."""
    if frames is not None and frames < 1:
        raise ValueError(f"segment length must be >= 1 frame, got {frames}")
    it = (c for c in chunks if c.shape[2])
    head = next(it, None)

    def segment() -> Iterator[torch.Tensor]:
        nonlocal head
        room = frames
        while head is not None and (room is None or room > 0):
            c = head
            if room is not None and c.shape[2] > room:
                c, head = c[:, :, :room], c[:, :, room:]
            else:
                head = next(it, None)
            room = None if room is None else room - c.shape[2]
            yield c

    while head is not None:
        seg = segment()
        yield seg
        for _ in seg:  # the consumer stopped early: skip the rest of this segment
            pass


@torch.no_grad()
def reconstruct_stream(tokenizer, chunks: Iterable[torch.Tensor], gop: int | None = None) -> Iterator[torch.Tensor]:
    """Encode and decode a video of any length and size as it streams in: chunks ``[b, c, t, h, w]``
    in, reconstructed chunks of the same total length and size out (a little behind the input).

    Every ``gop`` frames the stream restarts (a keyframe: its first frame is coded alone); ``None``
    codes the whole video as one causal stream. Frames are replicate-padded to multiples of the
    spatial factor and cropped back; each segment's end is padded as :func:`encode_stream` says.
    """
    f = tokenizer.config.spatial_factor
    if not tokenizer.config.causal and not gop:
        raise UserError('a tokenizer with norm_scope "clip" codes clips of at most group_frames frames; '
                        'give a keyframe interval')
    for segment in split_stream(chunks, gop):
        if not tokenizer.config.causal:  # whole-clip norms (Open-MAGVIT2's video model): each segment is one clip
            yield reconstruct_video(tokenizer, torch.cat(list(segment), dim=2), gop)
            continue
        seen, size = 0, None

        def padded(seg: Iterator[torch.Tensor] = segment) -> Iterator[torch.Tensor]:
            nonlocal seen, size
            for c in seg:
                seen, size = seen + c.shape[2], c.shape[3:]
                yield pad_video(c, c.shape[2], f)

        done = 0
        for rec in decode_stream(tokenizer, encode_stream(tokenizer, padded())):
            rec = rec[:, :, : max(0, seen - done), : size[0], : size[1]]
            done += rec.shape[2]
            if rec.shape[2]:
                yield rec.clamp(-1, 1)


class ReceptiveField(NamedTuple):
    """How far back in time the tokenizer looks (counting the frame itself), for a frame far from the start."""

    encoder: int  #: input frames that one latent frame depends on
    decoder: int  #: latent frames that one output frame depends on (the worst phase)
    total: int  #: input frames that one reconstructed frame depends on (the worst phase)
    temporal_factor: int  #: input frames per latent frame


def temporal_receptive_field(cfg: TokenizerConfig) -> ReceptiveField:
    """The temporal receptive field of the encoder, decoder and both, from the architecture.

    A model trained on clips of ``n`` frames has only seen latents whose field reaches back past
    the clip's start into the zero padding when ``encoder > n``: on the later frames of a longer
    stream it meets inputs it never saw. Checked against gradients in ``tests/test_stream.py``.
    """
    kt, nrb, tf = cfg.temporal_kernel, cfg.num_res_blocks, cfg.temporal_factor
    # Encoder, forward order: (kernel, stride) of every temporal conv on the longest path.
    enc = [(kt, 1)]
    for i in range(len(cfg.channel_multipliers)):
        enc += [(kt, 1)] * (2 * nrb)
        if i < len(cfg.temporal_downsample):
            enc.append((kt, 2 if cfg.temporal_downsample[i] else 1))
    enc += [(kt, 1)] * (2 * nrb)
    field, jump = 1, 1
    for k, s in enc:
        field += (k - 1) * jump
        jump *= s
    # Decoder, forward order: ("conv", kernel) or ("up", rate), walked backwards from one output frame.
    dec: list[tuple[str, int]] = [("conv", kt)] + [("conv", kt)] * (2 * nrb)
    for i in reversed(range(len(cfg.channel_multipliers))):
        dec += [("conv", kt)] * (2 * nrb)
        if i > 0:
            dec += [("conv", kt), ("up", 2 if cfg.temporal_downsample[i - 1] else 1)]
    dec.append(("conv", kt))
    worst_dec = worst_total = 0
    far = 1000 * tf
    for j in range(far, far + tf):  # every phase of an output frame against the latent grid
        lo, hi = j, j
        for kind, v in reversed(dec):
            if kind == "conv":
                lo -= v - 1
            else:  # frame j at the higher rate comes from frame ceil(j / v)
                lo, hi = -(-lo // v), -(-hi // v)
        worst_dec = max(worst_dec, hi - lo + 1)
        worst_total = max(worst_total, tf * hi - (tf * lo - field + 1) + 1)
    return ReceptiveField(field, worst_dec, worst_total, tf)
