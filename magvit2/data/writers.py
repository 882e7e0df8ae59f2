"""Writing videos (.mp4/.mov h264 via PyAV, .mkv lossless FFV1, .gif via Pillow), images, raw frames
(.npy), comparison grids and clip grids.

Every file goes through :func:`magvit2.files.atomic_write`: an existing output is never replaced by a
partial one, and outputs get the permissions a plain ``open(path, "w")`` would give.

Shape letters: b clips, t frames, h height, w width, n images; inputs are ``uint8`` RGB
(``write_clips`` takes float videos in [-1, 1]).
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np
import torch
from PIL import Image

from magvit2.data.io import fps_to_fraction
from magvit2.data.transforms import to_uint8
from magvit2.files import atomic_write
from magvit2.errors import UserError

__all__ = ["make_grid", "write_clips", "write_frames", "write_image", "write_video", "VIDEO_OUTPUTS",
           "IMAGE_OUTPUTS", "FRAMES_OUTPUT"]

_H264_EXTENSIONS = (".mp4", ".mov")
_LOSSLESS_EXTENSIONS = (".mkv",)
VIDEO_OUTPUTS = (".mp4", ".mov", ".mkv", ".gif")  #: what :func:`write_video` writes
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  #: what :func:`write_image` writes
FRAMES_OUTPUT = ".npy"  #: raw frames, bit-exact


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
    path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float, crf: int = 18,
    keyframe_interval: int | None = None,
) -> Path:
    """Write ``uint8 [t, h, w, 3]`` frames, or an iterable of such chunks (consumed one at a time, so a
    stream of any length is written in the memory of one chunk); the format follows the extension.

    - ``.mp4`` / ``.mov``: H.264 (libx264, yuv420p, constant quality ``crf``; 0 is
      lossless luma but chroma is still subsampled). Odd heights/widths are padded by
      one replicated row/column, as yuv420p requires even sizes, so such a file reads
      back one pixel taller/wider. ``keyframe_interval`` sets the GOP length (default:
      the encoder's, 250 for libx264); short GOPs make random access cheaper. The
      index is written at the front of the file (faststart) for streaming.
    - ``.mkv``: FFV1 in RGB (bgr0), lossless (frames read back bit-exactly).
    - ``.gif``: Pillow, a 256-colour palette per frame; GIF stores frame durations in
      1/100 s, so the frame rate reads back rounded (24 fps -> 25 fps); a GIF is assembled whole.
    """
    path = Path(path)
    chunks = iter([frames] if isinstance(frames, np.ndarray) else frames)
    first = _check_frames(next(chunks, np.zeros((0, 0, 0, 3), np.uint8)))
    rate = fps_to_fraction(fps)
    ext = path.suffix.lower()
    if ext == ".gif":
        with atomic_write(path) as tmp:
            _write_gif(tmp, np.concatenate([first] + [_check_frames(c) for c in chunks]), float(fps))
        return path
    if ext in _H264_EXTENSIONS:
        codec, pix_fmt, options = "libx264", "yuv420p", {"crf": str(int(crf)), "preset": "medium"}
    elif ext in _LOSSLESS_EXTENSIONS:
        codec, pix_fmt, options = "ffv1", "bgr0", {}
    else:
        raise UserError(f"write_video: unsupported extension {ext!r} for {path}; expected .mp4, .mov, .mkv or .gif")
    if keyframe_interval is not None:
        if keyframe_interval < 1:
            raise ValueError(f"keyframe_interval must be >= 1, got {keyframe_interval}")
        options["g"] = str(int(keyframe_interval))
    even = ext in _H264_EXTENSIONS
    _, h, w, _ = (_pad_even(first) if even else first).shape
    container_options = {"movflags": "+faststart"} if ext in _H264_EXTENSIONS else {}
    with atomic_write(path) as tmp, av.open(str(tmp), mode="w", options=container_options) as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for chunk in itertools.chain([first], chunks):
            chunk = _check_frames(chunk)
            chunk = _pad_even(chunk) if even else chunk
            if chunk.shape[1:3] != (h, w):
                raise ValueError(f"write_video: every chunk needs the first one's size {h}x{w}, got {list(chunk.shape)}")
            for frame in chunk:
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
    if path.suffix.lower() not in IMAGE_OUTPUTS:
        raise UserError(f"write_image: cannot write {path}; expected a path ending in one of {IMAGE_OUTPUTS}")
    with atomic_write(path) as tmp:
        Image.fromarray(image).save(tmp)
    return path


def write_frames(path: str | Path, frames: np.ndarray, fps: float | Fraction = 30) -> Path:
    """Write ``uint8 [t, h, w, 3]`` frames as the extension says: a video (:data:`VIDEO_OUTPUTS`; ``.mkv``
    is lossless), ``.npy`` (bit-exact, no frame rate), or an image (:data:`IMAGE_OUTPUTS`; one frame only)."""
    path = Path(path)
    frames = _check_frames(frames)
    ext = path.suffix.lower()
    if ext in VIDEO_OUTPUTS:
        return write_video(path, frames, fps=float(fps))
    if ext == FRAMES_OUTPUT:
        with atomic_write(path) as tmp:
            np.save(tmp, frames, allow_pickle=False)
        return path
    if ext in IMAGE_OUTPUTS:
        if frames.shape[0] != 1:
            raise UserError(f"{path}: an image holds one frame, got {frames.shape[0]}; write to one of {VIDEO_OUTPUTS}")
        return write_image(path, frames[0])
    raise UserError(f"output {path} must end in one of {VIDEO_OUTPUTS + (FRAMES_OUTPUT,) + IMAGE_OUTPUTS}")


def write_clips(path: str | Path, videos: torch.Tensor, fps: float, nrow: int) -> Path:
    """``videos [b, 3, t, h, w]`` in [-1, 1] as one file: a video whose frames tile the clips side by side
    (``nrow`` per row; .mp4/.gif/...), or an image with one row of frames per clip (.png/...)."""
    path = Path(path)
    clips = to_uint8(videos)  # [b, t, h, w, c]
    ext = path.suffix.lower()
    if ext in IMAGE_OUTPUTS:
        return write_image(path, make_grid([f for clip in clips for f in clip], nrow=clips.shape[1]))
    if ext in VIDEO_OUTPUTS:
        frames = np.stack([make_grid(list(clips[:, i]), nrow=nrow) for i in range(clips.shape[1])])
        return write_video(path, frames, fps=fps)
    raise UserError(f"output {path} must end in one of {VIDEO_OUTPUTS + IMAGE_OUTPUTS}")


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
