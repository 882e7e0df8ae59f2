"""Writing videos (.mp4/.mov h264 via PyAV, .mkv lossless FFV1, .gif via Pillow), images and comparison grids.

Shape letters: t frames, h height, w width, n images; inputs are ``uint8`` RGB.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
from PIL import Image

__all__ = ["frame_rate_fraction", "make_grid", "write_image", "write_video"]

_H264_EXTENSIONS = (".mp4", ".mov")
_LOSSLESS_EXTENSIONS = (".mkv",)


def frame_rate_fraction(fps: float) -> Fraction:
    """A container-friendly rational frame rate (29.97 -> 30000/1001)."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"{what}: expected uint8 [t, h, w, 3] with t >= 1, got {frames.dtype} {list(frames.shape)}")
    return np.ascontiguousarray(frames)


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: replicate the last row/column when h or w is odd."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(
    path: str | Path, frames: np.ndarray, fps: float, crf: int = 18, keyframe_interval: int | None = None
) -> Path:
    """Write ``uint8 [t, h, w, 3]`` frames; the format follows the extension.

    - ``.mp4`` / ``.mov``: H.264 (libx264, yuv420p, constant quality ``crf``; 0 is
      lossless luma but chroma is still subsampled). Odd heights/widths are padded by
      one replicated row/column, as yuv420p requires even sizes, so such a file reads
      back one pixel taller/wider. ``keyframe_interval`` sets the GOP length (default:
      the encoder's, 250 for libx264); short GOPs make random access cheaper. The
      index is written at the front of the file (faststart) for streaming.
    - ``.mkv``: FFV1 in RGB (bgr0), lossless (frames read back bit-exactly).
    - ``.gif``: Pillow, a 256-colour palette per frame; GIF stores frame durations in
      1/100 s, so the frame rate reads back rounded (24 fps -> 25 fps).
    """
    path = Path(path)
    frames = _check_frames(frames)
    rate = frame_rate_fraction(fps)
    ext = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".gif":
        _write_gif(path, frames, fps)
        return path
    if ext in _H264_EXTENSIONS:
        frames = _pad_even(frames)
        codec, pix_fmt, options = "libx264", "yuv420p", {"crf": str(int(crf)), "preset": "medium"}
    elif ext in _LOSSLESS_EXTENSIONS:
        codec, pix_fmt, options = "ffv1", "bgr0", {}
    else:
        raise ValueError(f"write_video: unsupported extension {ext!r} for {path}; expected .mp4, .mov, .mkv or .gif")
    if keyframe_interval is not None:
        if keyframe_interval < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
        options["g"] = str(int(keyframe_interval))
    _, h, w, _ = frames.shape
    container_options = {"movflags": "+faststart"} if ext in _H264_EXTENSIONS else {}
    with av.open(str(path), mode="w", options=container_options) as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    images = [
        Image.fromarray(f).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for f in frames
    ]
    duration = max(10, int(round(1000.0 / fps)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0, optimize=False)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write ``uint8 [h, w, 3]`` (or ``[h, w]`` grayscale) to a PNG/JPEG/WebP/BMP chosen by extension."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise ValueError(f"write_image: expected uint8 [h, w, 3] or [h, w], got {image.dtype} {list(image.shape)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(image).save(path)
    except (ValueError, KeyError) as e:
        raise ValueError(f"write_image: cannot write {path} ({e}); expected a .png, .jpg, .webp or .bmp path") from None
    return path


def make_grid(
    images: Sequence[np.ndarray] | np.ndarray, nrow: int = 8, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile ``n`` images ``uint8 [h, w, 3]`` into one ``uint8`` image, ``nrow`` images per row.

    Images are placed left to right, top to bottom, separated (and framed) by
    ``padding`` pixels of ``pad_value``. All images must share one size.
    """
    items = [np.asarray(im) for im in images]
    if not items:
        raise ValueError("make_grid: expected at least one image")
    shape = items[0].shape
    for k, im in enumerate(items):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3:
            raise ValueError(f"make_grid: image {k} must be uint8 [h, w, 3], got {im.dtype} {list(im.shape)}")
        if im.shape != shape:
            raise ValueError(f"make_grid: image {k} has shape {list(im.shape)}, expected {list(shape)} like image 0")
    if nrow < 1:
        raise ValueError(f"make_grid: nrow must be >= 1, got {nrow}")
    h, w, _ = shape
    ncol = min(nrow, len(items))
    nrows = math.ceil(len(items) / ncol)
    grid = np.full(
        (nrows * (h + padding) + padding, ncol * (w + padding) + padding, 3), pad_value, dtype=np.uint8
    )
    for k, im in enumerate(items):
        r, c = divmod(k, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        grid[y : y + h, x : x + w] = im
    return grid
