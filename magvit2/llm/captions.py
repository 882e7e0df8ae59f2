"""Captioned moving digits: one handwritten digit moving in a straight line, and its caption.

Unlike :class:`magvit2.data.digits.MovingDigits` (which bounces), a clip here never reaches
an edge, so its motion has one direction for the whole clip and a caption can state it:
``"a 7 moving up-left, fast"``. The caption comes from the known digit, one of 8 compass
directions and one of 2 speeds. :func:`motion_direction` reads the direction back from
pixels (the intensity centroid's displacement between the first and last frame), which scores
generated clips; :func:`parse_caption` reads a generated caption back.

Item ``i`` of a split is a pure function of ``(seed, split, i)``; the handwriting of the
``test`` split is never seen in ``train`` (the split of :func:`magvit2.data.digits.digit_split`).
Shape letters: c = 3, t frames, h = w = resolution.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from magvit2.data.digits import digit_split, load_digit_images, upscale_digits
from magvit2.data.transforms import check_num_frames, to_tensor

__all__ = ["CaptionedDigits", "DIRECTIONS", "SPEEDS", "caption", "parse_caption", "motion_direction", "Caption"]

#: direction name -> unit step (dy, dx) in image coordinates (y grows downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1),
    "up-left": (-1, -1), "up-right": (-1, 1), "down-left": (1, -1), "down-right": (1, 1),
}
#: speed name -> pixels per frame along each moving axis, at resolution 32
SPEEDS: dict[str, float] = {"slow": 1.0, "fast": 1.75}

_CAPTION = re.compile(r"^a (\d) moving ([a-z-]+), ([a-z]+)$")


class Caption(NamedTuple):
    digit: int
    direction: str
    speed: str


def caption(digit: int, direction: str, speed: str) -> str:
    """``(7, "up-left", "fast")`` -> ``"a 7 moving up-left, fast"``."""
    return f"a {digit} moving {direction}, {speed}"


def parse_caption(text: str) -> Caption | None:
    """The inverse of :func:`caption`; None when ``text`` is not a well-formed caption."""
    m = _CAPTION.match(text.strip())
    if m is None or m.group(2) not in DIRECTIONS or m.group(3) not in SPEEDS:
        return None
    return Caption(int(m.group(1)), m.group(2), m.group(3))


def motion_direction(videos: torch.Tensor, min_shift: float = 3.0) -> list[str]:
    """``videos [b, 3, t, h, w]`` in [-1, 1] -> the direction name of each clip's motion, or ``"still"``.

    The intensity centroid of the first and last frame (pixels above mid-grey); an axis counts
    as moving when its centroid shifts by at least ``min_shift`` pixels (scaled by ``h / 32``).
    """
    x = ((videos.float().mean(1) + 1) / 2 - 0.5).clamp_min(0)  # b t h w, background -> 0
    h, w = x.shape[-2:]
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    xs = torch.arange(w, dtype=torch.float32)[None, :]
    mass = x.sum((-2, -1)).clamp_min(1e-6)  # b t
    cy, cx = (x * ys).sum((-2, -1)) / mass, (x * xs).sum((-2, -1)) / mass
    dy, dx = cy[:, -1] - cy[:, 0], cx[:, -1] - cx[:, 0]
    thr = min_shift * h / 32
    names = {v: k for k, v in DIRECTIONS.items()}
    out = []
    for a, b in zip(dy.tolist(), dx.tolist()):
        step = (int(np.sign(a)) if abs(a) >= thr else 0, int(np.sign(b)) if abs(b) >= thr else 0)
        out.append(names.get(step, "still"))
    return out


class CaptionedDigits(Dataset):
    """Item ``i`` -> ``{"video": [3, t, h, w], "label": digit, "caption": str, "direction": int, "speed": int, "index": i}``.

    ``direction`` and ``speed`` index :data:`DIRECTIONS` and :data:`SPEEDS` (in insertion order).
    The digit is white on black, ``resolution // 2`` pixels wide; its start is drawn so that the
    whole straight path stays inside the frame.
    """

    def __init__(self, split: str = "train", num_samples: int | None = None, num_frames: int = 9,
                 resolution: int = 32, seed: int = 0) -> None:
        self.split, self.seed = split, seed
        self.num_frames = check_num_frames(num_frames)
        self.resolution, self.digit_size = resolution, resolution // 2
        self.image_ids = digit_split(split)
        images, labels = load_digit_images()
        self.digits = upscale_digits(images[self.image_ids], self.digit_size)  # n s s
        self.labels = labels[self.image_ids]
        self.num_samples = len(self.image_ids) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if max(SPEEDS.values()) * (self.num_frames - 1) * resolution / 32 > resolution - self.digit_size:
            raise ValueError(f"{self.num_frames} frames at the fastest speed leave a {resolution} px frame; use fewer frames")

    def __len__(self) -> int:
        return self.num_samples

    def item_info(self, index: int) -> tuple[int, int, int, np.random.Generator]:
        """(image row, direction index, speed index, the item's generator) of item ``index``."""
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        return index % len(self.image_ids), int(rng.integers(len(DIRECTIONS))), int(rng.integers(len(SPEEDS))), rng

    def caption_of(self, index: int) -> str:
        """Item ``index``'s caption, without rendering the clip."""
        row, d, s, _ = self.item_info(index)
        return caption(int(self.labels[row]), list(DIRECTIONS)[d], list(SPEEDS)[s])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for CaptionedDigits({self.split}) of {self.num_samples} items")
        row, d, s, rng = self.item_info(index)
        name, speed = list(DIRECTIONS)[d], list(SPEEDS)[s]
        res, size, t = self.resolution, self.digit_size, self.num_frames
        step = np.array(DIRECTIONS[name], dtype=np.float64) * SPEEDS[speed] * res / 32  # (dy, dx) per frame
        travel = step * (t - 1)
        lo, hi = np.maximum(0.0, -travel), np.minimum(res - size, res - size - travel)
        start = lo + rng.uniform(0.0, 1.0, size=2) * (hi - lo)
        canvas = np.zeros((t, res, res), dtype=np.float32)
        glyph = self.digits[row]
        for k in range(t):
            top, left = np.rint(start + k * step).astype(int)
            canvas[k, top : top + size, left : left + size] = glyph
        video = np.repeat(np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        label = int(self.labels[row])
        return {"video": to_tensor(video), "label": label, "caption": caption(label, name, speed),
                "direction": d, "speed": s, "index": int(index)}
