"""Standard-codec anchors (H.264 / HEVC / VVC) for rate-distortion comparisons.

Frames go to the static FFmpeg of ``imageio-ffmpeg`` (libx264, libx265,
libvvenc) as raw RGB on stdin, are converted to YUV 4:2:0 (8-bit; 10-bit for
vvenc, its only input format), coded at a constant QP into a raw elementary
stream, and decoded back to RGB. FFmpeg is GPL and runs only as a subprocess.

Bits are counted on the elementary stream with SEI NAL units removed
(x264 and x265 write their whole settings string into an SEI, hundreds of bytes
that a decoder does not need and that would dominate tiny test clips).
Frames are edge-padded to a multiple of 8 (the codecs' minimum block) and
cropped back; bits per pixel use the true size: ``8 * bytes / (t * h * w)``.

Short clips miss rate targets, so sweep QP (:func:`magvit2.eval.rd.rd_curve_anchor`)
and interpolate in log-bpp instead of asking for a bitrate.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from magvit2.data.io import fps_to_fraction
from magvit2.errors import UserError

__all__ = ["ANCHOR_CODECS", "AnchorResult", "encode_anchor", "ffmpeg_exe"]

#: codec name -> (ffmpeg encoder, raw muxer, file suffix, input pixel format, SEI NAL unit types)
_CODECS: dict[str, tuple[str, str, str, str, str]] = {
    "h264": ("libx264", "h264", ".264", "yuv420p", "6"),
    "hevc": ("libx265", "hevc", ".hevc", "yuv420p", "39|40"),
    "vvc": ("libvvenc", "vvc", ".266", "yuv420p10le", "23|24"),
}
ANCHOR_CODECS = tuple(_CODECS)
_VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@dataclass(frozen=True)
class AnchorResult:
    """One anchor encode: stream size, decoded ``uint8 [t, h, w, 3]`` frames, rate, and wall-clock times
    (each includes starting FFmpeg and piping raw frames)."""

    codec: str
    qp: int
    num_bytes: int
    frames: np.ndarray
    encode_seconds: float
    decode_seconds: float

    @property
    def bits_per_pixel(self) -> float:
        t, h, w, _ = self.frames.shape
        return 8.0 * self.num_bytes / (t * h * w)


def ffmpeg_exe() -> str:
    """Path of the static FFmpeg shipped by ``imageio-ffmpeg``."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise UserError("anchors need the imageio-ffmpeg package (static FFmpeg with x264/x265/vvenc)") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"ffmpeg failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def _encoder_args(codec: str, qp: int, preset: str) -> list[str]:
    encoder = _CODECS[codec][0]
    if codec == "vvc":
        if preset not in _VVENC_PRESETS:
            raise UserError(f"vvc preset must be one of {_VVENC_PRESETS}, got {preset!r}")
        # qpa=0: no perceptual QP adaptation, the usual setting for PSNR-based comparisons
        return ["-c:v", encoder, "-preset", preset, "-qp", str(qp), "-qpa", "0"]
    if preset not in _X26X_PRESETS:
        raise UserError(f"{codec} preset must be one of {_X26X_PRESETS}, got {preset!r}")
    args = ["-c:v", encoder, "-preset", preset, "-qp", str(qp)]
    if codec == "hevc":
        args += ["-x265-params", "log-level=error"]
    return args


def encode_anchor(frames: np.ndarray, codec: str, qp: int, preset: str = "medium",
                  fps: float | Fraction = 30) -> AnchorResult:
    """Code ``uint8 [t, h, w, 3]`` frames with ``codec`` in {"h264", "hevc", "vvc"} at constant ``qp``.

    Returns the elementary-stream size (SEI removed) and the decoded frames at the input size.
    """
    if codec not in _CODECS:
        raise UserError(f"codec must be one of {ANCHOR_CODECS}, got {codec!r}")
    qp_max = 63 if codec == "vvc" else 51
    if not 0 <= int(qp) <= qp_max:
        raise UserError(f"{codec} qp must be in [0, {qp_max}], got {qp}")
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [t, h, w, 3], got {getattr(frames, 'dtype', type(frames))} "
                         f"{getattr(frames, 'shape', '')}")
    t, h, w, _ = frames.shape
    padded = np.pad(frames, ((0, 0), (0, -h % 8), (0, -w % 8), (0, 0)), mode="edge")
    hp, wp = padded.shape[1:3]
    _, muxer, suffix, pix_fmt, sei = _CODECS[codec]
    rate = str(fps_to_fraction(fps))
    exe = ffmpeg_exe()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="magvit2-anchor-") as tmp:
        stream = Path(tmp) / f"out{suffix}"
        _run([exe, "-hide_banner", "-loglevel", "error", "-y",
              "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{wp}x{hp}", "-r", rate, "-i", "-",
              "-pix_fmt", pix_fmt, *_encoder_args(codec, int(qp), preset),
              "-bsf:v", f"filter_units=remove_types={sei}", "-f", muxer, str(stream)],
             stdin=np.ascontiguousarray(padded).tobytes())
        num_bytes = stream.stat().st_size
        encoded = time.perf_counter()
        raw = _run([exe, "-hide_banner", "-loglevel", "error", "-i", str(stream),
                    "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        decoded_at = time.perf_counter()
    if len(raw) != t * hp * wp * 3:
        raise RuntimeError(f"{codec} decode returned {len(raw)} bytes, expected {t} frames of {wp}x{hp} RGB")
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(t, hp, wp, 3)[:, :h, :w].copy()
    return AnchorResult(codec=codec, qp=int(qp), num_bytes=num_bytes, frames=decoded,
                        encode_seconds=encoded - start, decode_seconds=decoded_at - encoded)
