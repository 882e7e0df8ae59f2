"""The ``.mv2`` bitstream container: a checked header followed by one payload per group.

Layout (little-endian, every field fixed-size)::

    magic         4s   b"MV2C"
    version       B    FORMAT_VERSION
    fingerprint   16s  tokenizer digest (8 bytes) + prior digest (8 bytes)
    width         I    true frame width (before padding)
    height        I    true frame height
    num_frames    I    true frame count
    fps_num       I    frame rate as the rational fps_num / fps_den
    fps_den       I
    spatial       B    tokenizer spatial downsampling factor
    temporal      B    tokenizer temporal downsampling factor
    token_bits    B    bits per token
    prior_kind    B    0 uniform, 1 static, 2 lm
    lm_chunks     H    decoding chunks per group (lm prior; 0 otherwise)
    lm_order      B    0 raster, 1 strided (lm prior)
    num_split     B    number of sub-tokens per token, then num_split x B (bits of each)
    num_groups    I    then num_groups x (frames H, payload_bytes I, payload_crc32 I)
    header_crc32  I    zlib.crc32 of every header byte above

A group of ``frames`` true frames is coded at the smallest valid tokenizer
length ``1 + temporal * k >= frames`` (the last frame repeated); the decoder
trims it back. CRC-32 detects every single-bit error, so any one flipped bit of
a file is caught by the header CRC, a payload CRC, or the magic check.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Protocol

import torch

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "PRIOR_KINDS",
    "CodecError",
    "GroupEntry",
    "Header",
    "pack_container",
    "unpack_container",
    "fingerprint",
    "tokenizer_digest",
    "state_dict_digest",
    "fps_to_fraction",
]

MAGIC = b"MV2C"
FORMAT_VERSION = 1
PRIOR_KINDS = ("uniform", "static", "lm")
LM_ORDERS = ("raster", "strided")

_FIXED = struct.Struct("<4sB16sIIIIIBBBBHBB")  # up to and including num_split
_GROUP = struct.Struct("<HII")
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")


class CodecError(ValueError):
    """A compressed file is truncated, corrupted, foreign, or needs a different model."""


class _HasDigest(Protocol):
    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class GroupEntry:
    """One group: its true frame count, payload size in bytes and payload CRC-32."""

    frames: int
    num_bytes: int
    crc32: int


@dataclass(frozen=True)
class Header:
    """Everything the decoder needs besides the tokenizer and the prior (see the module docstring)."""

    fingerprint: bytes
    width: int
    height: int
    num_frames: int
    fps: Fraction
    spatial_factor: int
    temporal_factor: int
    token_bits: int
    prior_kind: str
    bits_per_group: tuple[int, ...]
    groups: tuple[GroupEntry, ...]
    lm_chunks: int = 0
    lm_order: str = "raster"

    @property
    def num_bytes(self) -> int:
        """Header size in bytes (magic to header CRC inclusive)."""
        return _FIXED.size + len(self.bits_per_group) * _U8.size + _U32.size * 2 + len(self.groups) * _GROUP.size

    def validate(self) -> None:
        def bad(msg: str) -> CodecError:
            return CodecError(f"invalid header: {msg}")

        if len(self.fingerprint) != 16:
            raise bad(f"fingerprint must be 16 bytes, got {len(self.fingerprint)}")
        if self.width < 1 or self.height < 1 or self.num_frames < 1:
            raise bad(f"empty video {self.num_frames}x{self.height}x{self.width}")
        if self.fps <= 0:
            raise bad(f"fps must be positive, got {self.fps}")
        if self.spatial_factor < 1 or self.temporal_factor < 1:
            raise bad(f"factors must be >= 1, got spatial {self.spatial_factor}, temporal {self.temporal_factor}")
        if self.prior_kind not in PRIOR_KINDS or self.lm_order not in LM_ORDERS:
            raise bad(f"unknown prior {self.prior_kind!r} / order {self.lm_order!r}")
        if not self.bits_per_group or any(b < 1 for b in self.bits_per_group):
            raise bad(f"sub-token split {self.bits_per_group} must be positive")
        if sum(self.bits_per_group) != self.token_bits:
            raise bad(f"sub-token split {self.bits_per_group} does not sum to {self.token_bits} token bits")
        if (self.prior_kind == "lm") != (self.lm_chunks > 0):
            raise bad(f"lm_chunks={self.lm_chunks} inconsistent with prior {self.prior_kind!r}")
        if not self.groups or any(g.frames < 1 for g in self.groups):
            raise bad("every group needs at least one frame")
        if sum(g.frames for g in self.groups) != self.num_frames:
            raise bad(f"group frames sum to {sum(g.frames for g in self.groups)}, expected {self.num_frames}")


def fps_to_fraction(fps: float | Fraction | int) -> Fraction:
    """A frame rate as a small exact rational (29.97002997 -> 30000/1001)."""
    try:
        f = Fraction(fps).limit_denominator(100_000)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}") from None
    if f <= 0 or f.numerator >= 2**32:
        raise ValueError(f"fps must be positive and below 2**32, got {fps!r}")
    return f


def pack_container(header: Header, payloads: Iterable[bytes]) -> bytes:
    """Header + payloads -> file bytes (group sizes and CRCs are taken from ``payloads``)."""
    payloads = [bytes(p) for p in payloads]
    if len(payloads) != len(header.groups):
        raise ValueError(f"{len(header.groups)} groups in the header but {len(payloads)} payloads")
    groups = tuple(GroupEntry(g.frames, len(p), zlib.crc32(p)) for g, p in zip(header.groups, payloads))
    header = Header(**{**header.__dict__, "groups": groups})
    header.validate()
    head = bytearray(
        _FIXED.pack(
            MAGIC, FORMAT_VERSION, header.fingerprint, header.width, header.height, header.num_frames,
            header.fps.numerator, header.fps.denominator, header.spatial_factor, header.temporal_factor,
            header.token_bits, PRIOR_KINDS.index(header.prior_kind), header.lm_chunks,
            LM_ORDERS.index(header.lm_order), len(header.bits_per_group),
        )
    )
    for b in header.bits_per_group:
        head += _U8.pack(b)
    head += _U32.pack(len(groups))
    for g in groups:
        head += _GROUP.pack(g.frames, g.num_bytes, g.crc32)
    head += _U32.pack(zlib.crc32(bytes(head)))
    return bytes(head) + b"".join(payloads)


def unpack_container(data: bytes) -> tuple[Header, list[bytes]]:
    """File bytes -> (header, payloads), checking magic, version, lengths and every CRC.

    Raises :class:`CodecError` (one line) on anything that is not an intact file.
    """
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CodecError("not a magvit2 codec file (bad magic bytes)")
    if len(data) < _FIXED.size:
        raise CodecError(f"truncated file: {len(data)} bytes is shorter than the {_FIXED.size}-byte fixed header")
    (_, version, fp, width, height, frames, fps_num, fps_den, spatial, temporal,
     bits, kind, chunks, order, n_split) = _FIXED.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise CodecError(f"unsupported format version {version} (this decoder reads version {FORMAT_VERSION})")
    pos = _FIXED.size
    need = pos + n_split * _U8.size + _U32.size
    if len(data) < need:
        raise CodecError(f"truncated file: header needs at least {need} bytes, got {len(data)}")
    split = tuple(_U8.unpack_from(data, pos + i)[0] for i in range(n_split))
    pos += n_split * _U8.size
    (num_groups,) = _U32.unpack_from(data, pos)
    pos += _U32.size
    need = pos + num_groups * _GROUP.size + _U32.size
    if len(data) < need:
        raise CodecError(f"truncated file: header of {num_groups} groups needs {need} bytes, got {len(data)}")
    entries = [GroupEntry(*_GROUP.unpack_from(data, pos + i * _GROUP.size)) for i in range(num_groups)]
    pos += num_groups * _GROUP.size
    (crc,) = _U32.unpack_from(data, pos)
    if zlib.crc32(data[:pos]) != crc:
        raise CodecError("corrupted header (CRC-32 mismatch)")
    pos += _U32.size
    if kind >= len(PRIOR_KINDS) or order >= len(LM_ORDERS) or fps_den == 0:
        raise CodecError(f"invalid header: prior kind {kind}, lm order {order}, fps denominator {fps_den}")
    header = Header(
        fingerprint=fp, width=width, height=height, num_frames=frames, fps=Fraction(fps_num, fps_den),
        spatial_factor=spatial, temporal_factor=temporal, token_bits=bits, prior_kind=PRIOR_KINDS[kind],
        bits_per_group=split, groups=tuple(entries), lm_chunks=chunks, lm_order=LM_ORDERS[order],
    )
    header.validate()
    total = pos + sum(g.num_bytes for g in entries)
    if len(data) < total:
        raise CodecError(f"truncated file: expected {total} bytes, got {len(data)}")
    if len(data) > total:
        raise CodecError(f"trailing data: expected {total} bytes, got {len(data)}")
    payloads = []
    for i, g in enumerate(entries):
        p = data[pos : pos + g.num_bytes]
        if zlib.crc32(p) != g.crc32:
            raise CodecError(f"corrupted payload of group {i} (CRC-32 mismatch)")
        payloads.append(p)
        pos += g.num_bytes
    return header, payloads


# ----- fingerprints ---------------------------------------------------------


def state_dict_digest(state: Mapping[str, torch.Tensor], prefix: bytes = b"") -> bytes:
    """sha256 over sorted (name, dtype, shape, raw bytes) of a state dict."""
    h = hashlib.sha256(prefix)
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def _config_json(config: Any) -> str:
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.dumps(config, sort_keys=True, default=repr)


def tokenizer_digest(tokenizer: Any) -> bytes:
    """sha256 of the tokenizer's config JSON and weights (full 32 bytes)."""
    prefix = b"magvit2-tokenizer|" + _config_json(getattr(tokenizer, "config", None)).encode() + b"|"
    return state_dict_digest(tokenizer.state_dict(), prefix)


def fingerprint(tokenizer: Any, prior: _HasDigest, tokenizer_hash: bytes | None = None) -> bytes:
    """16 bytes identifying the model pair: ``sha256(tokenizer)[:8] + sha256(prior)[:8]``.

    ``tokenizer_hash`` may pass a precomputed :func:`tokenizer_digest` (hashing large weights takes time).
    """
    th = tokenizer_hash if tokenizer_hash is not None else tokenizer_digest(tokenizer)
    return th[:8] + prior.digest()[:8]
