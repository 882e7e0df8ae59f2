"""The ``.mv2c`` bitstream container: a checked header followed by one payload per group.

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
    prior_kind    B    prior code (magvit2.codec.priors.PRIORS: 0 uniform, 1 static, 2 lm, 3 context)
    lm_chunks     H    decoding chunks per group (lm prior; 0 otherwise)
    lm_order      B    0 raster, 1 strided (lm prior)
    num_split     B    number of sub-tokens per token, then num_split x B (bits of each)
    num_groups    I    then num_groups x (frames H, payload_bytes I, payload_crc32 I)
    header_crc32  I    zlib.crc32 of every header byte above

A group of ``frames`` true frames is coded at the smallest valid tokenizer
length ``1 + temporal * k >= frames`` (the last frame repeated); the decoder
trims it back. CRC-32 detects every single-bit error, so any one flipped bit of
a file is caught by the header CRC, a payload CRC, or the magic check.

Files from strangers: anyone can recompute a CRC, so the decoder trusts no
field. Before it allocates anything it refuses a header whose size exceeds the
:class:`DecodeLimits` (pixels per frame, frames, frames per group) or whose
geometry (factors, token bits, sub-token split) differs from the tokenizer's;
while decoding, the range reader refuses a payload too short for the symbols
the header implies, and at the end one that is not exactly the coding of the
symbols it gave (:class:`magvit2.codec.entropy.RangeReader`). Any of these is a
one-line :class:`CodecError`.
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

from magvit2.codec.entropy import MAX_ALPHABET_BITS, CodecError
from magvit2.data.io import fps_to_fraction

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "PRIOR_KINDS",
    "CodecError",
    "DecodeLimits",
    "GroupEntry",
    "Header",
    "RawHeader",
    "pack_container",
    "unpack_container",
    "pack_raw_header",
    "parse_raw_header",
    "fingerprint",
    "tokenizer_digest",
    "state_dict_digest",
    "fps_to_fraction",
]

MAGIC = b"MV2C"
FORMAT_VERSION = 1
#: header code -> prior kind (code = index); filled by magvit2.codec.priors.register_prior, the one prior registry
PRIOR_KINDS: list[str] = []
LM_ORDERS = ("raster", "strided")
DEFAULT_MAX_PIXELS = 2**21  #: pixels per frame a file may ask for by default (1920x1080 fits)
DEFAULT_MAX_FRAMES = 10_000  #: frames a file may ask for by default
DEFAULT_MAX_GROUP_FRAMES = 1_024  #: frames of one group (decoded at once) a file may ask for by default

_FIXED = struct.Struct("<4sB16sIIIIIBBBBHBB")  # up to and including num_split
_GROUP = struct.Struct("<HII")
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")


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
        if not self.bits_per_group or any(not 1 <= b <= MAX_ALPHABET_BITS for b in self.bits_per_group):
            raise bad(f"sub-token split {self.bits_per_group} must be in [1, {MAX_ALPHABET_BITS}] bits each")
        if sum(self.bits_per_group) != self.token_bits:
            raise bad(f"sub-token split {self.bits_per_group} does not sum to {self.token_bits} token bits")
        lm = self.prior_kind == "lm"
        if lm != (self.lm_chunks > 0) or (not lm and self.lm_order != "raster"):
            raise bad(f"lm_chunks={self.lm_chunks}, lm_order={self.lm_order!r} inconsistent with prior "
                      f"{self.prior_kind!r}")
        if not self.groups or any(g.frames < 1 for g in self.groups):
            raise bad("every group needs at least one frame")
        if sum(g.frames for g in self.groups) != self.num_frames:
            raise bad(f"group frames sum to {sum(g.frames for g in self.groups)}, expected {self.num_frames}")


def _check_limit(name: str, value: int, limit: int, what: str) -> None:
    if value > limit:
        raise CodecError(f"file asks for {what} {value:,}, above the decoding limit {name}={limit:,} (raise it "
                         f"with --{name.replace('_', '-')} N or DecodeLimits({name}=N) if you trust the file)")


@dataclass(frozen=True)
class DecodeLimits:
    """Ceilings on what a file may make the decoder produce, checked before anything is allocated.

    A few kilobytes of header can ask for any size of video (a decompression
    bomb), so :func:`unpack_container` refuses a file above these limits before
    it decodes a payload. The defaults admit 1920x1080 frames (``max_pixels``
    = 2**21 = 2,097,152 per frame) and 10,000 frames (over 5 minutes at 30 fps);
    raise them for larger files you trust (``magvit2 decompress --max-pixels N
    --max-frames N``). ``max_group_frames`` bounds the frames decoded at once
    (the decoder's working set), 1,024 by default.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_group_frames: int = DEFAULT_MAX_GROUP_FRAMES

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_frames", "max_group_frames"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise CodecError(f"DecodeLimits.{name} must be a positive integer, got {getattr(self, name)!r}")

    def check(self, header: "Header") -> None:
        """Raise :class:`CodecError` naming the first limit ``header`` exceeds and how to raise it."""
        _check_limit("max_pixels", header.width * header.height, self.max_pixels,
                     f"{header.width}x{header.height} =")
        _check_limit("max_frames", header.num_frames, self.max_frames, "a frame count of")
        _check_limit("max_group_frames", max(g.frames for g in header.groups), self.max_group_frames,
                     "a group of")


@dataclass(frozen=True)
class RawHeader:
    """The header fields exactly as stored (no meaning checked): the inverse pair of :func:`parse_raw_header`.

    ``prior_kind`` and ``lm_order`` are the stored indices into :data:`PRIOR_KINDS` / :data:`LM_ORDERS`.
    Format tools (the structured fuzzer, converters) edit these and :func:`pack_raw_header` them.
    """

    version: int
    fingerprint: bytes
    width: int
    height: int
    num_frames: int
    fps_num: int
    fps_den: int
    spatial_factor: int
    temporal_factor: int
    token_bits: int
    prior_kind: int
    lm_chunks: int
    lm_order: int
    bits_per_group: tuple[int, ...]
    groups: tuple[GroupEntry, ...]

    @classmethod
    def from_header(cls, header: Header) -> "RawHeader":
        return cls(
            FORMAT_VERSION, header.fingerprint, header.width, header.height, header.num_frames,
            header.fps.numerator, header.fps.denominator, header.spatial_factor, header.temporal_factor,
            header.token_bits, PRIOR_KINDS.index(header.prior_kind), header.lm_chunks,
            LM_ORDERS.index(header.lm_order), tuple(header.bits_per_group), tuple(header.groups),
        )

    def to_header(self) -> Header:
        """The checked :class:`Header` (raises :class:`CodecError` for values that mean nothing)."""
        if self.prior_kind >= len(PRIOR_KINDS) or self.lm_order >= len(LM_ORDERS) or self.fps_den == 0:
            raise CodecError(f"invalid header: prior kind {self.prior_kind}, lm order {self.lm_order}, "
                             f"fps denominator {self.fps_den}")
        header = Header(
            fingerprint=self.fingerprint, width=self.width, height=self.height, num_frames=self.num_frames,
            fps=Fraction(self.fps_num, self.fps_den), spatial_factor=self.spatial_factor,
            temporal_factor=self.temporal_factor, token_bits=self.token_bits,
            prior_kind=PRIOR_KINDS[self.prior_kind], bits_per_group=self.bits_per_group, groups=self.groups,
            lm_chunks=self.lm_chunks, lm_order=LM_ORDERS[self.lm_order],
        )
        header.validate()
        return header


def pack_raw_header(raw: RawHeader) -> bytes:
    """Header bytes of ``raw`` (group sizes and CRCs as given), ending in a freshly computed header CRC-32."""
    try:
        head = bytearray(_FIXED.pack(
            MAGIC, raw.version, raw.fingerprint, raw.width, raw.height, raw.num_frames, raw.fps_num, raw.fps_den,
            raw.spatial_factor, raw.temporal_factor, raw.token_bits, raw.prior_kind, raw.lm_chunks, raw.lm_order,
            len(raw.bits_per_group),
        ))
        head += b"".join(_U8.pack(b) for b in raw.bits_per_group)
        head += _U32.pack(len(raw.groups))
        head += b"".join(_GROUP.pack(g.frames, g.num_bytes, g.crc32) for g in raw.groups)
    except struct.error as e:
        raise ValueError(f"a header field does not fit its stored width ({e})") from e
    head += _U32.pack(zlib.crc32(bytes(head)))
    return bytes(head)


def parse_raw_header(data: bytes) -> tuple[RawHeader, int]:
    """File bytes -> (stored header fields, offset of the first payload), checking magic, version,
    lengths and the header CRC only. Reads nothing beyond the header (cost bounded by the file size)."""
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
    split = tuple(data[pos : pos + n_split])
    pos += n_split * _U8.size
    (num_groups,) = _U32.unpack_from(data, pos)
    pos += _U32.size
    need = pos + num_groups * _GROUP.size + _U32.size
    if len(data) < need:
        raise CodecError(f"truncated file: header of {num_groups} groups needs {need} bytes, got {len(data)}")
    entries = tuple(GroupEntry(*e) for e in _GROUP.iter_unpack(data[pos : pos + num_groups * _GROUP.size]))
    pos += num_groups * _GROUP.size
    (crc,) = _U32.unpack_from(data, pos)
    if zlib.crc32(data[:pos]) != crc:
        raise CodecError("corrupted header (CRC-32 mismatch)")
    raw = RawHeader(version, fp, width, height, frames, fps_num, fps_den, spatial, temporal, bits, kind, chunks,
                    order, split, entries)
    return raw, pos + _U32.size


def pack_container(header: Header, payloads: Iterable[bytes]) -> bytes:
    """Header + payloads -> file bytes (group sizes and CRCs are taken from ``payloads``)."""
    payloads = [bytes(p) for p in payloads]
    if len(payloads) != len(header.groups):
        raise ValueError(f"{len(header.groups)} groups in the header but {len(payloads)} payloads")
    groups = tuple(GroupEntry(g.frames, len(p), zlib.crc32(p)) for g, p in zip(header.groups, payloads))
    header = Header(**{**header.__dict__, "groups": groups})
    header.validate()
    return pack_raw_header(RawHeader.from_header(header)) + b"".join(payloads)


def unpack_container(data: bytes, limits: DecodeLimits | None = None) -> tuple[Header, list[bytes]]:
    """File bytes -> (header, payloads), checking magic, version, lengths, every CRC and the decoding limits.

    Raises :class:`CodecError` (one line) on anything that is not an intact file,
    and on a file asking for more than ``limits`` (default :class:`DecodeLimits`).
    """
    data = bytes(data)
    raw, pos = parse_raw_header(data)
    header = raw.to_header()
    (limits or DecodeLimits()).check(header)
    total = pos + sum(g.num_bytes for g in header.groups)
    if len(data) < total:
        raise CodecError(f"truncated file: expected {total} bytes, got {len(data)}")
    if len(data) > total:
        raise CodecError(f"trailing data: expected {total} bytes, got {len(data)}")
    payloads = []
    for i, g in enumerate(header.groups):
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
    if hasattr(config, "identity"):  # fields added since at their old values are left out (old files decode)
        config = config.identity()
    elif hasattr(config, "to_dict"):
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
