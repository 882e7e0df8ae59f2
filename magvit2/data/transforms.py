"""Clip sampling, resize-then-crop geometry, flips and the one uint8 <-> float tensor conversion.

Shape letters: b batch, t frames, h height, w width, c = 3 colour channels.
Numpy frames are ``uint8 [t, h, w, c]``; model tensors are ``float [c, t, h, w]``
(or ``[b, c, t, h, w]``) in ``[-1, 1]``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from magvit2.errors import UserError

__all__ = [
    "CropBox",
    "apply_crop",
    "center_crop",
    "check_num_frames",
    "clip_indices",
    "crop_box",
    "crop_to_multiple",
    "resize_crop_image",
    "resize_frames",
    "resize_short_side",
    "resized_size",
    "to_tensor",
    "to_uint8",
]


def check_num_frames(num_frames: int) -> int:
    """MAGVIT-2's causal tokenizer takes ``T = 1 + 4k`` frames (first frame alone, then groups of 4)."""
    if num_frames < 1 or (num_frames - 1) % 4 != 0:
        raise UserError(f"num_frames must be 1 + 4k (1, 5, 9, 17, ...), got {num_frames}")
    return num_frames


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``uint8 [t, h, w, c]`` (or one image ``[h, w, c]``) -> ``float32 [c, t, h, w]`` in ``[-1, 1]``."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"to_tensor: expected uint8 [t, h, w, 3] or [h, w, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.ndim == 3:
        frames = frames[None]
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32)
    return rearrange(x, "t h w c -> c t h w").div(127.5).sub(1.0).contiguous()


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """``float [c, t, h, w]`` or ``[b, c, t, h, w]`` in ``[-1, 1]`` -> ``uint8 [t, h, w, c]`` or ``[b, t, h, w, c]``.

    Values are clamped to ``[-1, 1]`` and rounded to the nearest level, so
    ``to_uint8(to_tensor(x)) == x`` exactly.
    """
    if not isinstance(video, torch.Tensor) or video.ndim not in (4, 5) or video.shape[-4] != 3:
        shape = list(video.shape) if hasattr(video, "shape") else type(video).__name__
        raise ValueError(f"to_uint8: expected a tensor [c=3, t, h, w] or [b, 3, t, h, w], got {shape}")
    x = video.detach().to("cpu", torch.float32).clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)
    pattern = "c t h w -> t h w c" if x.ndim == 4 else "b c t h w -> b t h w c"
    return np.ascontiguousarray(rearrange(x, pattern).numpy())


def clip_indices(
    num_available: int,
    num_frames: int,
    stride: int = 1,
    offset: str | int = "center",
    generator: np.random.Generator | None = None,
) -> list[int] | None:
    """Frame indices of one clip: ``num_frames`` frames, ``stride`` apart.

    ``offset`` is ``"random"`` (uniform over every start that fits; needs ``generator``),
    ``"center"`` or an explicit start frame. The clip spans ``(num_frames - 1) * stride + 1``
    frames. When the video is shorter than that, the clip starts at 0 and repeats the last
    frame to fill up (callers that prefer to skip short videos check the span first).
    Returns ``None`` for an empty video.
    """
    if num_frames < 1 or stride < 1:
        raise ValueError(f"clip_indices: num_frames and stride must be >= 1, got {num_frames}, {stride}")
    if num_available < 1:
        return None
    span = (num_frames - 1) * stride + 1
    slack = num_available - span
    if slack < 0:
        start = 0
    elif offset == "random":
        if generator is None:
            raise ValueError("clip_indices: offset='random' needs a numpy generator")
        start = int(generator.integers(0, slack + 1))
    elif offset == "center":
        start = slack // 2
    elif isinstance(offset, (int, np.integer)):
        start = min(max(int(offset), 0), slack)
    else:
        raise ValueError(f"clip_indices: offset must be 'random', 'center' or an int, got {offset!r}")
    return [min(start + k * stride, num_available - 1) for k in range(num_frames)]


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(h, w)`` after scaling so that the shorter side equals ``short_side``, keeping the aspect ratio."""
    if height < 1 or width < 1:
        raise ValueError(f"resized_size: expected a positive size, got {height}x{width}")
    if height <= width:
        return short_side, max(short_side, int(round(width * short_side / height)))
    return max(short_side, int(round(height * short_side / width))), short_side


class CropBox(NamedTuple):
    top: int
    left: int
    height: int
    width: int


def crop_box(height: int, width: int, size: int, random: bool, generator: np.random.Generator | None = None) -> CropBox:
    """A ``size x size`` window inside a ``height x width`` frame: uniformly random or centred."""
    if height < size or width < size:
        raise UserError(f"crop_box: a {size}x{size} crop does not fit in {height}x{width}; resize first")
    if random:
        if generator is None:
            raise ValueError("crop_box: random=True needs a numpy generator")
        top = int(generator.integers(0, height - size + 1))
        left = int(generator.integers(0, width - size + 1))
    else:
        top, left = (height - size) // 2, (width - size) // 2
    return CropBox(top, left, size, size)


def apply_crop(frames: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop ``[t, h, w, c]`` frames to ``box``."""
    return frames[:, box.top : box.top + box.height, box.left : box.left + box.width]


def resize_crop_image(
    image: np.ndarray, size: int, random: bool = False, generator: np.random.Generator | None = None
) -> np.ndarray:
    """Resize ``uint8 [h, w, c]`` so its short side is ``size`` (Pillow bicubic, antialiased), then crop ``size x size``."""
    h, w = image.shape[:2]
    nh, nw = resized_size(h, w, size)
    if (nh, nw) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BICUBIC))
    return apply_crop(image[None], crop_box(nh, nw, size, random, generator))[0]


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 [t, h, w, c]`` to ``size = (h', w')`` with Pillow's bicubic filter (antialiased when shrinking)."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[b, c, t, h, w]`` so the short side is ``size`` (antialiased bicubic, aspect kept, clamped to [-1, 1])."""
    b, c, t, h, w = video.shape
    s = size / min(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    x = rearrange(video, "b c t h w -> (b t) c h w")
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
    return rearrange(x, "(b t) c h w -> b c t h w", b=b).contiguous()


def center_crop(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centred ``height x width`` window of ``[..., h, w]``."""
    h, w = video.shape[-2:]
    if not (1 <= height <= h and 1 <= width <= w):
        raise UserError(f"center_crop: a {height}x{width} window does not fit in {h}x{w}")
    top, left = (h - height) // 2, (w - width) // 2
    return video[..., top : top + height, left : left + width]


def crop_to_multiple(video: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop ``[..., h, w]`` to the largest size whose sides are multiples of ``multiple``."""
    h, w = video.shape[-2:]
    if h < multiple or w < multiple:
        raise UserError(f"crop_to_multiple: {h}x{w} is smaller than one {multiple}x{multiple} block")
    return center_crop(video, h - h % multiple, w - w % multiple)
