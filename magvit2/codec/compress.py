"""Tokens as a video format: compress frames to a ``.mv2c`` file and back.

A video is cut into causal groups of ``group_frames = 1 + temporal * k`` frames
(the tokenizer's own ``config.group_frames`` by default); the last group is padded by
repeating its last frame up to the next valid length. Frames are replicate-padded on
the bottom/right to a multiple of the tokenizer's spatial factor
(:mod:`magvit2.tokenizer.groups`). Each group is tokenized, its tokens split into
sub-tokens and entropy-coded under a prior (:mod:`magvit2.codec.priors`); the container
stores the true size and frame count so the decoder crops the padding away. Token grids
come from :meth:`TokenizerConfig.latent_shape`, never from probing the model.

The codec is lossless on tokens: ``decompress(compress(x)).frames`` equals
``tokenizer.decode(tokenizer.encode(group))`` of the same padded groups, cropped.

Bits per pixel (:class:`CompressStats`) count the whole file, header included:
``8 * file bytes / (frames * width * height)``.

Shapes: frames ``[t, h, w, c]`` uint8 with c = 3; videos ``[b, c, t, h, w]`` in [-1, 1];
tokens ``[b, t', h', w']``.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from einops import rearrange

from magvit2.codec.container import (
    CodecError, DecodeLimits, GroupEntry, Header, fingerprint, pack_container, tokenizer_digest, unpack_container,
)
from magvit2.codec.io import check_frames, write_frames
from magvit2.codec.priors import PRIORS, PriorSource, TokenPrior, load_prior, prior_for_header, prior_kinds
from magvit2.config.base import Config
from magvit2.data.io import MediaError, fps_to_fraction, read_media, stream_media
from magvit2.data.transforms import resize_short_side, to_tensor, to_uint8
from magvit2.data.writers import VIDEO_OUTPUTS, write_video
from magvit2.files import write_bytes_atomic
from magvit2.quantizers.factorize import join_indices, split_indices
from magvit2.tokenizer.groups import pad_video, valid_length
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.tokenizer.stream import split_stream

__all__ = [
    "FILE_EXTENSION",
    "CodecConfig",
    "Geometry",
    "CompressStats",
    "EncodedVideo",
    "DecodedVideo",
    "VideoCodec",
    "tokenizer_geometry",
    "compress",
    "decompress",
    "compress_file",
    "decompress_file",
    "decompress_to_file",
    "read_header",
    "resolve_prior",
]

#: the codec's file extension (MPEG-2 video already uses .m2v)
FILE_EXTENSION = ".mv2c"
READ_CHUNK_FRAMES = 16  #: frames read at a time by :func:`compress_file`


@dataclass
class CodecConfig(Config):
    """Codec settings that are not part of the model."""

    group_frames: int = 17  #: frames per causal group; must be 1 + temporal_factor * k
    max_subtoken_bits: int = 9  #: tokens are coded as sub-tokens of at most this many bits (uniform prior)


@CodecConfig.register_preset("default")
def _default() -> CodecConfig:
    return CodecConfig()


@dataclass(frozen=True)
class Geometry:
    """What the file header records of the tokenizer: ``spatial`` and ``temporal`` downsampling, ``bits`` per token."""

    spatial: int
    temporal: int
    bits: int

    def coded_frames(self, frames: int) -> int:
        """Smallest valid tokenizer length ``1 + temporal * k >= frames``."""
        return valid_length(frames, self.temporal)


@dataclass(frozen=True)
class CompressStats:
    """Sizes of one compressed file; ``bits_per_pixel`` includes the header."""

    num_bytes: int
    header_bytes: int
    num_frames: int
    width: int
    height: int
    num_groups: int
    num_tokens: int
    seconds: float = 0.0

    @property
    def bits_per_pixel(self) -> float:
        return 8.0 * self.num_bytes / (self.num_frames * self.width * self.height)

    @property
    def bits_per_token(self) -> float:
        """Payload bits per token (header excluded)."""
        return 8.0 * (self.num_bytes - self.header_bytes) / max(self.num_tokens, 1)


@dataclass(frozen=True)
class EncodedVideo:
    """File bytes, the token grid of every group ``[t', h', w']`` and the size statistics."""

    data: bytes
    tokens: list[torch.Tensor]
    stats: CompressStats


@dataclass(frozen=True)
class DecodedVideo:
    """Decoded frames ``uint8 [t, h, w, 3]``, frame rate, and the tokens of every group ``[t', h', w']``."""

    frames: np.ndarray
    fps: float
    fps_fraction: Fraction
    tokens: list[torch.Tensor]
    group_frames: tuple[int, ...]
    header: Header


def _model_device(tokenizer: VideoTokenizer) -> tuple[torch.device, torch.dtype]:
    p = next(iter(tokenizer.parameters()), None)
    if p is None:
        return torch.device("cpu"), torch.float32
    return p.device, (p.dtype if p.dtype.is_floating_point else torch.float32)


@contextmanager
def _eval_mode(tokenizer: VideoTokenizer) -> Iterator[None]:
    training = tokenizer.training
    tokenizer.train(False)
    try:
        with torch.inference_mode():
            yield
    finally:
        tokenizer.train(training)


def tokenizer_geometry(tokenizer: VideoTokenizer) -> Geometry:
    """Spatial/temporal factors and token bits, from the tokenizer's config."""
    cfg = tokenizer.config
    return Geometry(cfg.spatial_factor, cfg.temporal_factor, cfg.token_bits)


class VideoCodec:
    """A tokenizer plus a prior: ``encode(frames) -> EncodedVideo``, ``decode(bytes) -> DecodedVideo``."""

    def __init__(self, tokenizer: VideoTokenizer, prior: TokenPrior | str = "uniform",
                 config: CodecConfig | None = None) -> None:
        self.tokenizer = tokenizer
        # Default group length: the tokenizer's own (the clip length it was trained on).
        self.config = config or CodecConfig(group_frames=tokenizer.config.group_frames)
        self.geometry = tokenizer_geometry(tokenizer)
        g = self.geometry
        if self.config.group_frames < 1 or (self.config.group_frames - 1) % g.temporal:
            raise CodecError(f"group_frames must be 1 + {g.temporal}k for this tokenizer, got {self.config.group_frames}")
        if self.config.group_frames >= 2**16:
            raise CodecError(f"group_frames must be below 65536, got {self.config.group_frames}")
        if isinstance(prior, str):  # a kind: its loader builds it from the tokenizer alone, or says what it needs
            prior = load_prior(prior, PriorSource(tokenizer, max_subtoken_bits=self.config.max_subtoken_bits))
        if sum(prior.bits_per_group) != g.bits:
            raise CodecError(f"prior splits {sum(prior.bits_per_group)} bits per token, the tokenizer has {g.bits}")
        self.prior = prior
        self._tok_hash = tokenizer_digest(tokenizer)
        self.fingerprint = fingerprint(tokenizer, prior, self._tok_hash)

    # ----- encoding ---------------------------------------------------------
    def encode(self, frames: np.ndarray | Iterable[np.ndarray], fps: float | Fraction = 30) -> EncodedVideo:
        """``uint8 [t, h, w, 3]`` frames, or an iterable of such chunks -> file bytes, tokens and stats.

        Chunks are read as they arrive and tokenized one group (GOP) of ``config.group_frames`` frames
        at a time, so memory holds one group and the coded bytes, never the video. A group is one
        causal stream (only its first frame is coded alone) and a decoder can start at any group.
        """
        start = time.perf_counter()
        fps_frac = fps_to_fraction(fps)
        g = self.geometry
        device, dtype = _model_device(self.tokenizer)
        payloads, entries, tokens = [], [], []
        t, size = 0, None

        def clips(chunks: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:  # [1, c, t, h, w]
            nonlocal size
            for chunk in chunks:
                chunk = check_frames(chunk)
                if size is not None and chunk.shape[1:3] != size:
                    raise MediaError(f"every frame needs the first frame's size {size}, got {chunk.shape[1:3]}")
                size = chunk.shape[1:3]
                yield to_tensor(chunk)[None]

        with _eval_mode(self.tokenizer):
            for gop in split_stream(clips([frames] if isinstance(frames, np.ndarray) else frames),
                                    self.config.group_frames):
                clip = torch.cat(list(gop), dim=2)
                n = clip.shape[2]
                t += n
                clip = pad_video(clip, valid_length(n, g.temporal), g.spatial).to(device=device, dtype=dtype)
                idx = self.tokenizer.encode(clip)
                want = (1, *self.tokenizer.config.latent_shape(*clip.shape[2:]))
                if tuple(idx.shape) != want:
                    raise ValueError(f"tokenizer.encode returned shape {tuple(idx.shape)}, expected {want}")
                idx = idx[0].to("cpu", torch.long)
                if idx.min() < 0 or idx.max() >= 2**g.bits:
                    raise ValueError(f"tokenizer.encode returned ids outside [0, 2**{g.bits})")
                sub = split_indices(rearrange(idx, "t h w -> (t h w)"), self.prior.bits_per_group)
                payloads.append(self.prior.encode(sub.numpy(), tuple(idx.shape)))
                entries.append(GroupEntry(n, 0, 0))
                tokens.append(idx)
        h, w = size or (0, 0)
        if t == 0:
            raise MediaError("no frames to compress")
        if h >= 2**32 or w >= 2**32 or t >= 2**32:
            raise CodecError(f"video too large for the container: {t} frames of {w}x{h}")
        header = Header(
            fingerprint=self.fingerprint, width=w, height=h, num_frames=t, fps=fps_frac,
            spatial_factor=g.spatial, temporal_factor=g.temporal, token_bits=g.bits,
            prior_kind=self.prior.kind, bits_per_group=tuple(self.prior.bits_per_group), groups=tuple(entries),
            **self.prior.header_fields(),
        )
        data = pack_container(header, payloads)
        stats = CompressStats(num_bytes=len(data), header_bytes=header.num_bytes, num_frames=t, width=w, height=h,
                              num_groups=len(payloads), num_tokens=sum(x.numel() for x in tokens),
                              seconds=time.perf_counter() - start)
        return EncodedVideo(data, tokens, stats)

    # ----- decoding ---------------------------------------------------------
    def _check_models(self, header: Header) -> TokenPrior:
        if header.fingerprint[:8] != self._tok_hash[:8]:
            raise CodecError(f"file was encoded with a different tokenizer (fingerprint {header.fingerprint[:8].hex()}, "
                             f"this tokenizer is {self._tok_hash[:8].hex()})")
        g = self.geometry
        if (header.spatial_factor, header.temporal_factor, header.token_bits) != (g.spatial, g.temporal, g.bits):
            raise CodecError(f"file geometry (spatial {header.spatial_factor}, temporal {header.temporal_factor}, "
                             f"{header.token_bits} bits) does not match the tokenizer {g}")
        prior = prior_for_header(header, self.prior if self.prior.kind == header.prior_kind else None)
        if header.fingerprint[8:] != prior.digest()[:8]:
            raise CodecError(f"file was encoded with a different {header.prior_kind} prior "
                             f"(fingerprint {header.fingerprint[8:].hex()}, this prior is {prior.digest()[:8].hex()})")
        return prior

    def decode_tokens(self, data: bytes, limits: DecodeLimits | None = None) -> tuple[Header, list[torch.Tensor]]:
        """File bytes -> header and the token grid ``[t', h', w']`` of every group (no pixel decoding).

        A file asking for more than ``limits`` (default :class:`DecodeLimits`) is refused before decoding.
        """
        header, payloads = unpack_container(data, limits)
        prior = self._check_models(header)
        g = self.geometry
        hp, wp = header.height + (-header.height % g.spatial), header.width + (-header.width % g.spatial)
        tokens = []
        for entry, payload in zip(header.groups, payloads):
            shape = self.tokenizer.config.latent_shape(g.coded_frames(entry.frames), hp, wp)
            n = shape[0] * shape[1] * shape[2]
            try:
                sub = prior.decode(payload, n, shape)
            except CodecError:
                raise
            except (ValueError, RuntimeError) as e:  # constriction reports exhausted / invalid streams this way
                raise CodecError(f"payload does not decode ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
            idx = join_indices(torch.from_numpy(sub), header.bits_per_group)
            tokens.append(rearrange(idx, "(t h w) -> t h w", t=shape[0], h=shape[1], w=shape[2]))
        return header, tokens

    def decode(self, data: bytes, limits: DecodeLimits | None = None) -> DecodedVideo:
        """File bytes -> frames ``uint8 [t, h, w, 3]`` at the true size and frame count (``limits``: see
        :class:`DecodeLimits`). Holds the output; :meth:`decode_groups` holds one group at a time."""
        header, tokens = self.decode_tokens(data, limits)
        frames = np.concatenate(list(self.decode_groups(header, tokens)))
        return DecodedVideo(frames=frames, fps=float(header.fps), fps_fraction=header.fps, tokens=tokens,
                            group_frames=tuple(e.frames for e in header.groups), header=header)

    def decode_groups(self, header: Header, tokens: list[torch.Tensor]) -> Iterator[np.ndarray]:
        """The frames ``uint8 [t, h, w, 3]`` of each group in turn (from :meth:`decode_tokens`), cropped to
        the true size: a video of any length is decoded in the memory of one group."""
        device, _ = _model_device(self.tokenizer)
        for entry, idx in zip(header.groups, tokens):
            with _eval_mode(self.tokenizer):
                video = self.tokenizer.decode(idx[None].to(device))
            if video.ndim != 5 or video.shape[1] != 3 or video.shape[2] < entry.frames \
                    or video.shape[3] < header.height or video.shape[4] < header.width:
                raise ValueError(f"tokenizer.decode returned shape {tuple(video.shape)}, expected "
                                 f"[1, 3, >={entry.frames}, >={header.height}, >={header.width}]")
            yield to_uint8(video[0])[: entry.frames, : header.height, : header.width]


# ----- functional API ---------------------------------------------------------

# First bytes of formats a user may hand to decompress by mistake -> what they are.
_FOREIGN_MAGIC = {
    b"\x00\x00\x01\xb3": "an MPEG-1/2 video elementary stream (.m2v/.mpv)",
    b"\x00\x00\x01\xba": "an MPEG program stream (.mpg/.vob)",
}


def _refuse_foreign(data: bytes) -> None:
    """A one-line CodecError for well-known video formats (the container would only say 'bad magic')."""
    head = bytes(data[:12])
    what = next((name for magic, name in _FOREIGN_MAGIC.items() if head.startswith(magic)), None)
    if what is None and head[4:8] == b"ftyp":
        what = "an MP4/MOV file"
    elif what is None and head[:1] == b"\x47" and len(data) >= 189 and data[188:189] == b"\x47":
        what = "an MPEG transport stream (.ts/.m2ts)"
    elif what is None and head[:4] == b"\x1a\x45\xdf\xa3":
        what = "a Matroska/WebM file"
    if what is not None:
        raise CodecError(f"this is {what}, not a magvit2 token file ({FILE_EXTENSION}); "
                         f"decode it with a video player or ffmpeg, or compress it first with `magvit2 compress`")


def resolve_prior(prior: TokenPrior | str, prior_obj: TokenPrior | None = None) -> TokenPrior | str:
    """``prior`` kind (see :data:`~magvit2.codec.priors.PRIORS`) plus optional object -> what
    :class:`VideoCodec` takes; CodecError if the kind is unknown or the object is of another kind."""
    if isinstance(prior, TokenPrior):
        return prior
    if prior not in PRIORS:
        raise CodecError(f"prior must be one of {prior_kinds()} or a TokenPrior, got {prior!r}")
    if prior_obj is not None:
        if prior_obj.kind != prior:
            raise CodecError(f"prior={prior!r} but prior_obj is a {prior_obj.kind!r} prior")
        return prior_obj
    return prior


def _load(video: np.ndarray | str | Path, fps: float | Fraction | None,
          max_frames: int | None = None) -> tuple[np.ndarray, Fraction]:
    """Frames and frame rate of a path (video, image, ``.npy``) or an array; 30 fps unless stated."""
    if isinstance(video, (str, Path)):
        clip = read_media(video, max_frames=max_frames)
        return check_frames(clip.frames), fps_to_fraction(fps if fps is not None else (clip.fps or 30))
    return check_frames(video), fps_to_fraction(fps if fps is not None else 30)


def compress(video: np.ndarray | str | Path, tokenizer: VideoTokenizer, prior: TokenPrior | str = "uniform",
             fps: float | Fraction | None = None, prior_obj: TokenPrior | None = None,
             config: CodecConfig | None = None) -> bytes:
    """``uint8 [t, h, w, 3]`` frames (or a video path) -> ``.mv2c`` bytes. ``fps`` defaults to the file's or 30."""
    frames, fps_frac = _load(video, fps)
    return VideoCodec(tokenizer, resolve_prior(prior, prior_obj), config).encode(frames, fps_frac).data


def decompress(data: bytes, tokenizer: VideoTokenizer, prior_obj: TokenPrior | None = None,
               limits: DecodeLimits | None = None) -> DecodedVideo:
    """``.mv2c`` bytes -> :class:`DecodedVideo`; raises :class:`CodecError` for bad files or wrong models.

    ``prior_obj`` is needed for files coded with a prior that the header alone cannot rebuild (``static``,
    ``lm``). A file asking for more than ``limits`` (default :class:`DecodeLimits`: 2**21 pixels per frame,
    10,000 frames) is refused.
    """
    return _decoder_for(data, tokenizer, prior_obj, limits).decode(data, limits)


def _decoder_for(data: bytes, tokenizer: VideoTokenizer, prior_obj: TokenPrior | None,
                 limits: DecodeLimits | None) -> VideoCodec:
    """The codec that decodes ``data``: its header's prior kind, or ``prior_obj`` if it is of that kind."""
    kind = read_header(data, limits).prior_kind
    if prior_obj is not None and prior_obj.kind != kind:
        raise CodecError(f"file uses the {kind!r} prior, got a {prior_obj.kind!r} prior_obj")
    return VideoCodec(tokenizer, prior_obj if prior_obj is not None else kind)


def read_header(data: bytes, limits: DecodeLimits | None = None) -> Header:
    """Parse and fully verify a file (CRCs and decoding limits included) and return its header."""
    _refuse_foreign(data)
    return unpack_container(data, limits)[0]


def compress_file(in_path: str | Path, out_path: str | Path, tokenizer: VideoTokenizer,
                  prior: TokenPrior | str = "uniform", prior_obj: TokenPrior | None = None,
                  config: CodecConfig | None = None, fps: float | Fraction | None = None,
                  max_frames: int | None = None, size: int | None = None) -> CompressStats:
    """Compress a video, image or ``.npy`` frames file to ``out_path``, atomically (an existing file is
    replaced only by a complete one); ``size`` resizes the short side first. Returns the sizes and bits per pixel.

    The input is read chunk by chunk (:func:`~magvit2.data.io.stream_media`), so a video of any length
    is compressed in the memory of one group of frames; a video cut short raises a one-line MediaError."""
    media = stream_media(in_path, chunk_frames=READ_CHUNK_FRAMES, max_frames=max_frames)
    fps_frac = fps_to_fraction(fps if fps is not None else (media.fps or 30))
    chunks = media.chunks if not size else (to_uint8(resize_short_side(to_tensor(c)[None], size)[0])
                                            for c in media.chunks)
    enc = VideoCodec(tokenizer, resolve_prior(prior, prior_obj), config).encode(chunks, fps_frac)
    write_bytes_atomic(out_path, enc.data)
    return enc.stats


def decompress_file(in_path: str | Path, out_path: str | Path | None, tokenizer: VideoTokenizer,
                    prior_obj: TokenPrior | None = None, limits: DecodeLimits | None = None) -> DecodedVideo:
    """Decode a ``.mv2c`` file; write the frames (atomically) to ``out_path`` if given: ``.mkv`` / ``.npy``
    are lossless, ``.mp4`` / ``.gif`` are for viewing."""
    path = Path(in_path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    decoded = decompress(path.read_bytes(), tokenizer, prior_obj, limits)
    if out_path is not None:
        write_frames(out_path, decoded.frames, decoded.fps_fraction)
    return decoded


def decompress_to_file(in_path: str | Path, out_path: str | Path, tokenizer: VideoTokenizer,
                       prior_obj: TokenPrior | None = None, limits: DecodeLimits | None = None) -> Header:
    """Decode a ``.mv2c`` file straight into a video file (:data:`~magvit2.data.writers.VIDEO_OUTPUTS`),
    group by group: memory holds the file's tokens and one group of frames, whatever the video's length.
    Other outputs (``.npy``, images) are written whole. Returns the file's header."""
    path, out = Path(in_path), Path(out_path)
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {path}")
    data = path.read_bytes()
    codec = _decoder_for(data, tokenizer, prior_obj, limits)
    header, tokens = codec.decode_tokens(data, limits)
    groups = codec.decode_groups(header, tokens)
    if out.suffix.lower() in VIDEO_OUTPUTS:
        write_video(out, groups, fps=float(header.fps))
    else:
        write_frames(out, np.concatenate(list(groups)), header.fps)
    return header
