"""Moving digits: scikit-learn's 8x8 handwritten digits, upscaled, bouncing in a small frame.

A labelled video dataset (``label`` = class of the first digit, 0-9) for training and
testing class-conditional video generation offline. The 1797 digit images are split
once, by image index, with a fixed permutation: ``test_fraction`` of them (default 20%)
form the test split, so test digits are handwriting never seen in training.

Item ``i`` of a split is a pure function of ``(seed, split, i)``. Its first digit is
image ``i mod len(split)`` of the split, so one pass over ``len(split)`` items shows every
digit once; further digits (``num_digits > 1``) and all motions are drawn from the
item's own generator. Shape letters: c = 3, t frames, h = w = resolution.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from magvit2.data.synthetic import bounce
from magvit2.data.transforms import check_num_frames, to_tensor
from magvit2.errors import UserError

__all__ = ["MovingDigits", "digit_split", "load_digit_images", "upscale_digits"]

_SPLIT_SEED = 20240101  # fixed: the train/test split never depends on a dataset's seed


@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: ``float32 [1797, 8, 8]`` in ``[0, 1]`` and ``int64 [1797]`` labels (offline).

    Reads the CSV that the scikit-learn wheel ships (what ``sklearn.datasets.load_digits``
    reads) without importing scikit-learn, whose import takes seconds.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("moving digits need scikit-learn's digits; install it with `pip install scikit-learn`")
    csv = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        images, labels = table[:, :64].reshape(-1, 8, 8), table[:, 64]
    else:  # a future scikit-learn may move the file; its loader still works offline
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = d.images, d.target
    return (np.asarray(images, dtype=np.float32) / 16.0), np.asarray(labels, dtype=np.int64)


def digit_split(split: str, test_fraction: float = 0.2) -> np.ndarray:
    """Indices of the digit images in ``split`` (``"train"`` or ``"test"``); disjoint and fixed."""
    if split not in ("train", "test"):
        raise UserError(f"digit split must be 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = len(load_digit_images()[1])
    order = np.random.default_rng(_SPLIT_SEED).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def upscale_digits(images: np.ndarray, size: int) -> np.ndarray:
    """``[n, 8, 8]`` in ``[0, 1]`` -> ``[n, size, size]``: bicubic upsampling, clamped, each digit's peak set to 1."""
    x = torch.from_numpy(images)[:, None]  # n 1 8 8
    x = F.pad(x, (1, 1, 1, 1))  # a zero border keeps the bicubic kernel from smearing edge strokes
    x = F.interpolate(x, size=(size + 2 * size // 8, size + 2 * size // 8), mode="bicubic", align_corners=False)
    m = size // 8
    x = x[:, 0, m : m + size, m : m + size].clamp(0, 1)
    peak = x.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return (x / peak).numpy()


class MovingDigits(Dataset):
    """Bouncing handwritten digits: item ``i`` -> ``{"video": [3, t, h, w], "label": digit class, "index": i}``.

    Digits are white (or, with ``colored=True``, a bright random colour) on black,
    ``digit_size`` pixels wide, moving at a constant speed of 1-2.5 pixels per frame
    (scaled by ``resolution / 32``) and bouncing off the frame edges; overlapping
    digits combine by maximum.
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int | None = None,
        num_frames: int = 17,
        resolution: int = 32,
        digit_size: int = 16,
        num_digits: int = 1,
        colored: bool = False,
        seed: int = 0,
        test_fraction: float = 0.2,
    ) -> None:
        if digit_size < 8 or digit_size > resolution:
            raise UserError(f"digit_size must be in [8, resolution={resolution}], got {digit_size}")
        if num_digits < 1:
            raise UserError(f"num_digits must be >= 1, got {num_digits}")
        self.split, self.seed = split, seed
        self.num_frames = check_num_frames(num_frames)
        self.resolution, self.digit_size, self.num_digits, self.colored = resolution, digit_size, num_digits, colored
        self.image_ids = digit_split(split, test_fraction)
        images, labels = load_digit_images()
        self.digits = upscale_digits(images[self.image_ids], digit_size)  # n s s
        self.labels = labels[self.image_ids]
        self.num_samples = len(self.image_ids) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise UserError(f"num_samples must be >= 1, got {num_samples}")

    class_names = tuple(str(k) for k in range(10))

    def __len__(self) -> int:
        return self.num_samples

    def _choose(self, index: int, rng: np.random.Generator) -> list[int]:
        first = index % len(self.image_ids)
        return [first] + [int(j) for j in rng.integers(0, len(self.image_ids), size=self.num_digits - 1)]

    def frames(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index`` as ``uint8 [t, h, w, 3]`` and its label."""
        rng = np.random.default_rng([self.seed, 0 if self.split == "train" else 1, index])
        res, s, t = self.resolution, self.digit_size, self.num_frames
        chosen = self._choose(index, rng)
        canvas = np.zeros((t, res, res, 3), dtype=np.float32)
        steps = np.arange(t, dtype=np.float64)
        for j in chosen:
            colour = rng.uniform(0.25, 1.0, size=3) if self.colored else np.ones(3)
            if self.colored:
                colour[rng.integers(0, 3)] = 1.0  # at least one saturated channel keeps the digit bright
            start = rng.uniform(0, res - s, size=2)
            speed = rng.uniform(1.0, 2.5) * res / 32
            heading = rng.uniform(0, 2 * np.pi)
            velocity = speed * np.array([np.sin(heading), np.cos(heading)])
            corners = np.rint(bounce(start, velocity, steps, 0.0, float(res - s))).astype(int)  # t 2 (top, left)
            glyph = self.digits[j][..., None] * colour[None, None, :].astype(np.float32)  # s s 3
            for k, (top, left) in enumerate(corners):
                patch = canvas[k, top : top + s, left : left + s]
                np.maximum(patch, glyph, out=patch)
        video = np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return video, int(self.labels[chosen[0]])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingDigits({self.split}) of {self.num_samples} items")
        video, label = self.frames(index)
        return {"video": to_tensor(video), "label": label, "index": int(index)}
