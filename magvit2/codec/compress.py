"""Tokens as a video format: compress frames to a ``.mv2`` file and back.

A video is cut into causal groups of ``group_frames = 1 + temporal * k`` frames
(17 by default); the last group is padded by repeating its last frame up to
the next valid length. Frames are replicate-padded on the bottom/right to a
multiple of the tokenizer's spatial factor. Each group is tokenized, its
tokens split into sub-tokens and entropy-coded under a prior; the container
stores the true size and frame count so the decoder crops the padding away.

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
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import torch
from einops import rearrange

from magvit2.codec.container import (
    CodecError, DecodeLimits, GroupEntry, Header, fingerprint, fps_to_fraction, pack_container, tokenizer_digest,
    unpack_container,
)
from magvit2.codec.io import check_frames, read_frames, write_frames
from magvit2.codec.priors import LMPrior, TokenPrior, UniformPrior, default_split, prior_from_kind
from magvit2.config.base import Config
from magvit2.quantizers.factorize import join_indices, split_indices
from magvit2.tokenizer.groups import plan_groups, valid_length

__all__ = [
    "Tokenizer",
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
    "read_header",
    "resolve_prior",
]


class Tokenizer(Protocol):
    """What the codec needs from a tokenizer (``magvit2.tokenizer.VideoTokenizer`` fits)."""

    config: Any

    def encode(self, video: torch.Tensor) -> torch.Tensor: ...

    def decode(self, indices: torch.Tensor) -> torch.Tensor: ...

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...


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
    """Tokenizer geometry: ``spatial`` and ``temporal`` downsampling, ``bits`` per token."""

    spatial: int
    temporal: int
    bits: int

    def coded_frames(self, frames: int) -> int:
        """Smallest valid tokenizer length ``1 + temporal * k >= frames``."""
        return valid_length(frames, self.temporal)

    def token_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        return (1 + (t - 1) // self.temporal, h // self.spatial, w // self.spatial)


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


def _model_device(tokenizer: Any) -> tuple[torch.device, torch.dtype]:
    params = getattr(tokenizer, "parameters", None)
    p = next(iter(params()), None) if callable(params) else None
    if p is None:
        return torch.device("cpu"), torch.float32
    return p.device, (p.dtype if p.dtype.is_floating_point else torch.float32)


@contextmanager
def _eval_mode(tokenizer: Any) -> Iterator[None]:
    training = getattr(tokenizer, "training", None)
    if isinstance(training, bool) and hasattr(tokenizer, "train"):
        tokenizer.train(False)
    try:
        with torch.inference_mode():
            yield
    finally:
        if isinstance(training, bool) and hasattr(tokenizer, "train"):
            tokenizer.train(training)


def tokenizer_geometry(tokenizer: Tokenizer) -> Geometry:
    """Spatial/temporal factors and token bits, from the config or, failing that, a probe encode."""
    cfg = getattr(tokenizer, "config", None)
    bits = getattr(tokenizer, "bits", None) or getattr(cfg, "bits", None)
    if not isinstance(bits, int) or bits < 1:
        raise ValueError("tokenizer must expose the token size as tokenizer.bits or tokenizer.config.bits")
    sf, tf = getattr(cfg, "spatial_factor", None), getattr(cfg, "temporal_factor", None)
    if isinstance(sf, int) and isinstance(tf, int):
        return Geometry(sf, tf, bits)
    device, dtype = _model_device(tokenizer)
    with _eval_mode(tokenizer):
        h = tokenizer.encode(torch.zeros(1, 3, 1, 64, 64, device=device, dtype=dtype)).shape[-1]
        if h < 1 or 64 % h:
            raise ValueError(f"probe encode of 64x64 gave {h} token columns; cannot infer the spatial factor")
        sf = 64 // h
        t = tokenizer.encode(torch.zeros(1, 3, 9, sf, sf, device=device, dtype=dtype)).shape[1]
    if t < 2 or 8 % (t - 1):
        raise ValueError(f"probe encode of 9 frames gave {t} token frames; cannot infer the temporal factor")
    return Geometry(sf, 8 // (t - 1), bits)


def _to_video(frames: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.from_numpy(frames).to(device=device, dtype=torch.float32)
    return (rearrange(x, "t h w c -> 1 c t h w") / 127.5 - 1.0).to(dtype)


def _to_frames(video: torch.Tensor) -> np.ndarray:
    x = rearrange(video[0].detach().float().cpu(), "c t h w -> t h w c")
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


class VideoCodec:
    """A tokenizer plus a prior: ``encode(frames) -> EncodedVideo``, ``decode(bytes) -> DecodedVideo``."""

    def __init__(self, tokenizer: Tokenizer, prior: TokenPrior | str = "uniform",
                 config: CodecConfig | None = None) -> None:
        self.tokenizer = tokenizer
        # Default group length: the tokenizer's own (the clip length it was trained on), else 17.
        self.config = config or CodecConfig(group_frames=getattr(getattr(tokenizer, "config", None), "group_frames", 17))
        self.geometry = tokenizer_geometry(tokenizer)
        g = self.geometry
        if self.config.group_frames < 1 or (self.config.group_frames - 1) % g.temporal:
            raise ValueError(f"group_frames must be 1 + {g.temporal}k for this tokenizer, got {self.config.group_frames}")
        if self.config.group_frames >= 2**16:
            raise ValueError(f"group_frames must be below 65536, got {self.config.group_frames}")
        if isinstance(prior, str):
            if prior != "uniform":
                raise ValueError(f"prior {prior!r} needs a prior object (StaticPrior / LMPrior); only 'uniform' is built in")
            prior = UniformPrior(default_split(g.bits, self.config.max_subtoken_bits))
        if sum(prior.bits_per_group) != g.bits:
            raise ValueError(f"prior splits {sum(prior.bits_per_group)} bits per token, the tokenizer has {g.bits}")
        self.prior = prior
        self._tok_hash = tokenizer_digest(tokenizer)
        self.fingerprint = fingerprint(tokenizer, prior, self._tok_hash)

    # ----- encoding ---------------------------------------------------------
    def encode(self, frames: np.ndarray, fps: float | Fraction = 30) -> EncodedVideo:
        """``uint8 [t, h, w, 3]`` frames -> file bytes, tokens and stats."""
        start = time.perf_counter()
        frames = check_frames(frames)
        fps_frac = fps_to_fraction(fps)
        g = self.geometry
        t, h, w, _ = frames.shape
        if h >= 2**32 or w >= 2**32 or t >= 2**32:
            raise ValueError(f"video too large for the container: {frames.shape}")
        ph, pw = -h % g.spatial, -w % g.spatial
        device, dtype = _model_device(self.tokenizer)
        payloads, entries, tokens = [], [], []
        with _eval_mode(self.tokenizer):
            for grp in plan_groups(t, self.config.group_frames, g.temporal):
                clip = frames[grp.start : grp.start + grp.length]
                pad_t = grp.padded - grp.length
                clip = np.pad(clip, ((0, pad_t), (0, ph), (0, pw), (0, 0)), mode="edge")
                idx = self.tokenizer.encode(_to_video(clip, device, dtype))
                want = (1, *g.token_shape(*clip.shape[:3]))
                if tuple(idx.shape) != want:
                    raise ValueError(f"tokenizer.encode returned shape {tuple(idx.shape)}, expected {want}")
                idx = idx[0].to("cpu", torch.long)
                if idx.min() < 0 or idx.max() >= 2**g.bits:
                    raise ValueError(f"tokenizer.encode returned ids outside [0, 2**{g.bits})")
                sub = split_indices(rearrange(idx, "t h w -> (t h w)"), self.prior.bits_per_group)
                payloads.append(self.prior.encode(sub.numpy()))
                entries.append(GroupEntry(grp.length, 0, 0))
                tokens.append(idx)
        lm = isinstance(self.prior, LMPrior)
        header = Header(
            fingerprint=self.fingerprint, width=w, height=h, num_frames=t, fps=fps_frac,
            spatial_factor=g.spatial, temporal_factor=g.temporal, token_bits=g.bits,
            prior_kind=self.prior.kind, bits_per_group=tuple(self.prior.bits_per_group), groups=tuple(entries),
            lm_chunks=self.prior.num_chunks if lm else 0, lm_order=self.prior.order if lm else "raster",
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
        own = self.prior if self.prior.kind == header.prior_kind and header.prior_kind != "uniform" else None
        prior = prior_from_kind(header.prior_kind, header.bits_per_group, own)
        if isinstance(prior, LMPrior):
            prior = prior.with_schedule(header.lm_chunks, header.lm_order)
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
            shape = g.token_shape(g.coded_frames(entry.frames), hp, wp)
            n = shape[0] * shape[1] * shape[2]
            try:
                sub = prior.decode(payload, n)
            except CodecError:
                raise
            except (ValueError, RuntimeError) as e:  # constriction reports exhausted / invalid streams this way
                raise CodecError(f"payload does not decode ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
            idx = join_indices(torch.from_numpy(sub), header.bits_per_group)
            tokens.append(rearrange(idx, "(t h w) -> t h w", t=shape[0], h=shape[1], w=shape[2]))
        return header, tokens

    def decode(self, data: bytes, limits: DecodeLimits | None = None) -> DecodedVideo:
        """File bytes -> frames ``uint8 [t, h, w, 3]`` at the true size and frame count (``limits``: see
        :class:`DecodeLimits`). Holds the output and one group's decoding at a time."""
        header, tokens = self.decode_tokens(data, limits)
        device, _ = _model_device(self.tokenizer)
        frames = np.empty((header.num_frames, header.height, header.width, 3), dtype=np.uint8)
        start = 0
        with _eval_mode(self.tokenizer):
            for entry, idx in zip(header.groups, tokens):
                video = self.tokenizer.decode(idx[None].to(device))
                if video.ndim != 5 or video.shape[1] != 3 or video.shape[2] < entry.frames \
                        or video.shape[3] < header.height or video.shape[4] < header.width:
                    raise ValueError(f"tokenizer.decode returned shape {tuple(video.shape)}, expected "
                                     f"[1, 3, >={entry.frames}, >={header.height}, >={header.width}]")
                frames[start : start + entry.frames] = _to_frames(video)[: entry.frames, : header.height, : header.width]
                start += entry.frames
        return DecodedVideo(frames=frames, fps=float(header.fps), fps_fraction=header.fps, tokens=tokens,
                            group_frames=tuple(e.frames for e in header.groups), header=header)


# ----- functional API ---------------------------------------------------------


def resolve_prior(prior: TokenPrior | str, prior_obj: TokenPrior | None = None) -> TokenPrior | str:
    """``prior`` name plus optional object -> what :class:`VideoCodec` takes; ValueError if they disagree."""
    if isinstance(prior, TokenPrior):
        return prior
    if prior not in ("uniform", "static", "lm"):
        raise ValueError(f"prior must be 'uniform', 'static', 'lm' or a TokenPrior, got {prior!r}")
    if prior_obj is not None:
        if prior_obj.kind != prior:
            raise ValueError(f"prior={prior!r} but prior_obj is a {prior_obj.kind!r} prior")
        return prior_obj
    if prior != "uniform":
        raise ValueError(f"prior={prior!r} needs prior_obj (fit_static_prior / StaticPrior.load, or an LMPrior)")
    return prior


def _load(video: np.ndarray | str | Path, fps: float | Fraction | None) -> tuple[np.ndarray, Fraction]:
    if isinstance(video, (str, Path)):
        frames, file_fps = read_frames(video)
        return frames, fps_to_fraction(fps if fps is not None else file_fps)
    return check_frames(video), fps_to_fraction(fps if fps is not None else 30)


def compress(video: np.ndarray | str | Path, tokenizer: Tokenizer, prior: TokenPrior | str = "uniform",
             fps: float | Fraction | None = None, prior_obj: TokenPrior | None = None,
             config: CodecConfig | None = None) -> bytes:
    """``uint8 [t, h, w, 3]`` frames (or a video path) -> ``.mv2`` bytes. ``fps`` defaults to the file's or 30."""
    frames, fps_frac = _load(video, fps)
    return VideoCodec(tokenizer, resolve_prior(prior, prior_obj), config).encode(frames, fps_frac).data


def decompress(data: bytes, tokenizer: Tokenizer, prior_obj: TokenPrior | None = None,
               limits: DecodeLimits | None = None) -> DecodedVideo:
    """``.mv2`` bytes -> :class:`DecodedVideo`; raises :class:`CodecError` for bad files or wrong models.

    ``prior_obj`` is needed for files coded with the ``static`` or ``lm`` prior. A file asking for
    more than ``limits`` (default :class:`DecodeLimits`: 2**21 pixels per frame, 10,000 frames) is refused.
    """
    kind = read_header(data, limits).prior_kind
    if kind == "uniform":
        return VideoCodec(tokenizer, "uniform").decode(data, limits)
    if prior_obj is None:
        raise CodecError(f"file uses the {kind!r} prior: pass prior_obj")
    if prior_obj.kind != kind:
        raise CodecError(f"file uses the {kind!r} prior, got a {prior_obj.kind!r} prior_obj")
    return VideoCodec(tokenizer, prior_obj).decode(data, limits)


def read_header(data: bytes, limits: DecodeLimits | None = None) -> Header:
    """Parse and fully verify a file (CRCs and decoding limits included) and return its header."""
    return unpack_container(data, limits)[0]


def compress_file(in_path: str | Path, out_path: str | Path, tokenizer: Tokenizer,
                  prior: TokenPrior | str = "uniform", prior_obj: TokenPrior | None = None,
                  config: CodecConfig | None = None, fps: float | Fraction | None = None,
                  max_frames: int | None = None) -> CompressStats:
    """Compress a video file (or ``.npy`` frames) to ``out_path``; returns sizes and bits per pixel."""
    frames, file_fps = read_frames(in_path, max_frames=max_frames)
    codec = VideoCodec(tokenizer, resolve_prior(prior, prior_obj), config)
    enc = codec.encode(frames, fps if fps is not None else file_fps)
    Path(out_path).write_bytes(enc.data)
    return enc.stats


def decompress_file(in_path: str | Path, out_path: str | Path | None, tokenizer: Tokenizer,
                    prior_obj: TokenPrior | None = None, limits: DecodeLimits | None = None) -> DecodedVideo:
    """Decode a ``.mv2`` file; write the frames losslessly to ``out_path`` (``.npy`` / ``.mkv``) if given."""
    decoded = decompress(Path(in_path).read_bytes(), tokenizer, prior_obj, limits)
    if out_path is not None:
        write_frames(out_path, decoded.frames, decoded.fps_fraction)
    return decoded

