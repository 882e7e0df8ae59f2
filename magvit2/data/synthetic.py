"""Moving shapes: a tiny, deterministic, labelled video dataset for fast tests.

Each item is one coloured shape (square, circle or triangle; ``label`` = its class)
moving with constant velocity over a background gradient, bouncing off the frame
edges. Item ``i`` is a pure function of ``(seed, i)``: the same index always gives
the same video, in any process. Shape letters: c = 3, t frames, h = w = resolution.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from magvit2.data.transforms import check_num_frames, to_tensor
from magvit2.errors import UserError

__all__ = ["SHAPES", "MovingShapes", "bounce", "moving_shapes_batch", "render_moving_shape"]

SHAPES: tuple[str, ...] = ("square", "circle", "triangle")


def bounce(start: np.ndarray, velocity: np.ndarray, t: np.ndarray, low: float, high: float) -> np.ndarray:
    """Positions ``start + velocity * t`` reflected off the walls ``low`` and ``high``.

    Straight-line motion folded into ``[low, high]`` by a triangle wave of period
    ``2 * (high - low)``, i.e. an elastic bounce. ``start``/``velocity`` are ``[d]``,
    ``t`` is ``[t]``; returns ``[t, d]``.
    """
    length = max(high - low, 1e-9)
    x = start[None, :] - low + velocity[None, :] * t[:, None]
    u = np.mod(x, 2 * length)
    return low + np.where(u <= length, u, 2 * length - u)


def _coverage(shape: str, ys: np.ndarray, xs: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of a shape of half-size ``r`` centred at ``(cy, cx)``: 0.5 - signed distance."""
    dy, dx = ys - cy, xs - cx
    if shape == "square":
        d = np.maximum(np.abs(dy), np.abs(dx)) - r
    elif shape == "circle":
        d = np.sqrt(dy**2 + dx**2) - r
    elif shape == "triangle":  # upward triangle: base at dy = +r/2, apex at dy = -r
        k = np.sqrt(3.0) / 2
        d = np.maximum.reduce([dy - 0.5 * r, -0.5 * dy + k * dx - 0.5 * r, -0.5 * dy - k * dx - 0.5 * r])
    else:
        raise UserError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return np.clip(0.5 - d, 0.0, 1.0)


def render_moving_shape(
    rng: np.random.Generator, shape: str, num_frames: int, resolution: int
) -> np.ndarray:
    """One moving-shape video ``uint8 [t, h, w, 3]`` drawn with ``rng``."""
    res = resolution
    ys, xs = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5, indexing="ij")
    # background: a dark random colour with a gentle linear gradient in a random direction
    base = rng.uniform(10, 90, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) / res  # in about [-1.4, 1.4]
    background = base[None, None, :] + 20.0 * ramp[..., None]
    colour = rng.uniform(150, 255, size=3)
    r = rng.uniform(0.15, 0.25) * res
    start = rng.uniform(r, res - r, size=2)
    speed = rng.uniform(0.5, 1.5) * res / 32
    heading = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.sin(heading), np.cos(heading)])
    centres = bounce(start, velocity, np.arange(num_frames, dtype=np.float64), r, res - r)
    frames = np.empty((num_frames, res, res, 3), dtype=np.uint8)
    for k, (cy, cx) in enumerate(centres):
        alpha = _coverage(shape, ys, xs, cy, cx, r)[..., None]
        frames[k] = np.clip(background * (1 - alpha) + colour * alpha + 0.5, 0, 255).astype(np.uint8)
    return frames


class MovingShapes(Dataset):
    """``num_samples`` moving-shape clips; item ``i`` -> ``{"video": [3, t, h, w], "label", "index"}``.

    ``label`` indexes :data:`SHAPES` and cycles with the index, so classes are balanced.
    """

    class_names = SHAPES

    def __init__(self, num_samples: int = 1024, num_frames: int = 17, resolution: int = 32, seed: int = 0) -> None:
        if num_samples < 1 or resolution < 8:
            raise UserError(f"MovingShapes: need num_samples >= 1 and resolution >= 8, got {num_samples}, {resolution}")
        self.num_samples, self.resolution, self.seed = num_samples, resolution, seed
        self.num_frames = check_num_frames(num_frames)

    def __len__(self) -> int:
        return self.num_samples

    def frames(self, index: int) -> np.ndarray:
        """Item ``index`` as ``uint8 [t, h, w, 3]``."""
        rng = np.random.default_rng([self.seed, index])
        return render_moving_shape(rng, SHAPES[index % len(SHAPES)], self.num_frames, self.resolution)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingShapes of {self.num_samples} items")
        video = to_tensor(self.frames(index))
        return {"video": video, "label": index % len(SHAPES), "index": int(index)}


def moving_shapes_batch(batch_size: int, num_frames: int = 5, resolution: int = 16, seed: int = 0) -> torch.Tensor:
    """A ready batch ``float [b, 3, t, h, w]`` in ``[-1, 1]`` for unit tests of models."""
    ds = MovingShapes(batch_size, num_frames, resolution, seed)
    return torch.stack([ds[i]["video"] for i in range(batch_size)])
