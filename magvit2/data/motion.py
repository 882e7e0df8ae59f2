"""Motion digits: a labelled video task whose class is the MOTION of a handwritten digit.

Each clip shows one of scikit-learn's digits (upscaled, at a random fixed orientation)
on a black torus (it wraps around the frame edges). The motion class is one of
:data:`MOTIONS`: translation in four directions at a slow or a fast speed, or rotation
in place, clockwise or counter-clockwise.

Why one frame cannot tell the class: in every class and at every frame index, the
digit's position is uniform on the torus (random start, wrap-around), its orientation
is uniform on the circle (random start angle; rotation keeps it uniform), and the
digit is the same handwriting distribution. Only the change between frames carries
the label. ``target="digit"`` labels the same clips by digit class instead (an
appearance task under motion).

Item ``i`` of a split is a pure function of ``(seed, split, i)``. Its digit image is
``i mod len(split)`` (test split = handwriting never seen in training, as in
:class:`~magvit2.data.digits.MovingDigits`); its motion class is ``i mod len(motions)``, so
classes are balanced. Shape letters: c = 3, t frames, h = w = resolution, s digit box.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch.utils.data import Dataset

from magvit2.data.digits import digit_split, load_digit_images, upscale_digits
from magvit2.data.transforms import check_num_frames, to_tensor

__all__ = ["MOTIONS", "MotionDigits"]

#: Motion classes: name -> (velocity direction (dy, dx), speed kind) or a rotation sense.
MOTIONS: tuple[str, ...] = (
    "right-slow", "right-fast", "left-slow", "left-fast",
    "down-slow", "down-fast", "up-slow", "up-fast",
    "clockwise", "counterclockwise",
)
_DIRECTIONS = {"right": (0.0, 1.0), "left": (0.0, -1.0), "down": (1.0, 0.0), "up": (-1.0, 0.0)}
_SPEEDS = {"slow": (0.75, 1.25), "fast": (2.25, 3.0)}  # pixels per frame at resolution 32
_SPIN_DEG = (15.0, 25.0)  # degrees per frame
_TARGETS = ("motion", "digit")


def _rotate(glyph: np.ndarray, angles: np.ndarray, box: int) -> np.ndarray:
    """``glyph [s, s]`` centred in a ``box x box`` square, rotated by each of ``angles [t]`` (radians) -> ``[t, box, box]``."""
    s = glyph.shape[0]
    pad = (box - s) // 2
    x = torch.from_numpy(np.pad(glyph, ((pad, box - s - pad), (pad, box - s - pad))))
    x = rearrange(x, "h w -> 1 1 h w").expand(len(angles), 1, box, box)
    a = torch.from_numpy(angles.astype(np.float32))
    cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], -2)  # t 2 3
    grid = F.affine_grid(theta, [len(angles), 1, box, box], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].numpy()


class MotionDigits(Dataset):
    """Item ``i`` -> ``{"video": [3, t, h, w] in [-1, 1], "label": motion (or digit) class, "index": i}``.

    Translation speeds scale with ``resolution / 32``. ``motions`` picks a subset of :data:`MOTIONS`
    as the classes (labels index it).
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int | None = None,
        num_frames: int = 9,
        resolution: int = 32,
        digit_size: int | None = None,
        target: str = "motion",
        motions: tuple[str, ...] = MOTIONS,
        seed: int = 0,
        test_fraction: float = 0.2,
    ) -> None:
        unknown = sorted(set(motions) - set(MOTIONS))
        if unknown or not motions:
            raise ValueError(f"MotionDigits motions must be a non-empty subset of {MOTIONS}, got {tuple(motions)}")
        if target not in _TARGETS:
            raise ValueError(f"MotionDigits target must be one of {_TARGETS}, got {target!r}")
        digit_size = digit_size or max(8, resolution // 2)
        self.box = int(math.ceil(digit_size * math.sqrt(2)))  # a rotated digit fits in this square
        if digit_size < 8 or self.box > resolution:
            raise ValueError(f"digit_size must be in [8, resolution / sqrt(2) = {resolution / math.sqrt(2):.0f}], got {digit_size}")
        self.split, self.seed, self.target, self.motions = split, seed, target, tuple(motions)
        self.num_frames = check_num_frames(num_frames)
        self.resolution, self.digit_size = resolution, digit_size
        self.image_ids = digit_split(split, test_fraction)
        images, labels = load_digit_images()
        self.digits = upscale_digits(images[self.image_ids], digit_size)  # n s s
        self.digit_labels = labels[self.image_ids]
        self.num_samples = len(self.image_ids) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.motions if self.target == "motion" else tuple(str(k) for k in range(10))

    def __len__(self) -> int:
        return self.num_samples

    def motion(self, index: int) -> int:
        """The motion class of item ``index`` (an index into ``motions``)."""
        return index % len(self.motions)

    def label(self, index: int) -> int:
        """The label of item ``index`` (without rendering it)."""
        return self.motion(index) if self.target == "motion" else int(self.digit_labels[index % len(self.image_ids)])

    def frames(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index`` as ``uint8 [t, h, w, 3]`` and its label."""
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        res, t, box = self.resolution, self.num_frames, self.box
        digit = index % len(self.image_ids)
        name = self.motions[self.motion(index)]
        steps = np.arange(t, dtype=np.float64)
        angle0 = rng.uniform(0, 2 * np.pi)
        start = rng.uniform(0, res, size=2)
        if name in ("clockwise", "counterclockwise"):
            spin = np.deg2rad(rng.uniform(*_SPIN_DEG)) * (1.0 if name == "clockwise" else -1.0)
            angles, velocity = angle0 + spin * steps, np.zeros(2)
        else:
            direction, speed_kind = name.split("-")
            speed = rng.uniform(*_SPEEDS[speed_kind]) * res / 32
            angles, velocity = np.full(t, angle0), speed * np.array(_DIRECTIONS[direction])
        glyphs = _rotate(self.digits[digit], angles, box)  # t box box
        corners = np.rint(start[None] + velocity[None] * steps[:, None]).astype(int) % res  # t 2 (top, left)
        video = np.zeros((t, res, res), dtype=np.float32)
        for k, (top, left) in enumerate(corners):
            video[k, :box, :box] = glyphs[k]
            video[k] = np.roll(video[k], (top, left), axis=(0, 1))  # wrap around the torus
        video = np.clip(video * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(video[..., None], 3, axis=-1), self.label(index)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MotionDigits({self.split}) of {self.num_samples} items")
        video, label = self.frames(index)
        return {"video": to_tensor(video), "label": label, "index": int(index)}
