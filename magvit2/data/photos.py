"""Camera motion synthesised over still photos: realistic video statistics from a folder of pictures.

A clip is a virtual camera moving over one photo: a square window (side ``s`` source pixels,
centre ``(cx, cy)``, angle ``a``) goes linearly from a random start pose to a random end pose
over the clip (a pan of up to ~1/3 of the window, a zoom of up to 1.3x in or out, a rotation
of up to 4 degrees), and each frame is that window resampled to ``resolution`` pixels. The
window side is drawn at random scales between the resolution itself and the photo's short
side, so the same photo gives close-ups and wide shots. The photo is first downscaled (with
antialiasing) so that the window maps about 1:1 to the output, which keeps the bilinear
resampling free of aliasing.

Shape letters: c = 3, t = ``num_frames``, h = w = ``resolution``.

Held-out split (:func:`photo_split`): a fixed tenth of the pictures, chosen by a hash of their
name with variant suffixes (``_dark``, ``-d``, ``-l``, ``_WxH``) removed, so that the light and
dark versions of one wallpaper fall on the same side. Training clips are random; held-out clips
are a pure function of ``(seed, index)``.

The folder is prepared once by ``recipes/prepare_photos.py`` (Debian's wallpaper packages);
nothing here downloads anything.
"""
from __future__ import annotations

import math
import re
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from torch.utils.data import Dataset

from magvit2.data.io import read_image
from magvit2.data.sources import image_folder
from magvit2.data.transforms import check_num_frames

__all__ = ["PhotoMotion", "camera_path", "photo_split"]

_TEST_FRACTION = 10  # one picture in ten is held out
_VARIANT = re.compile(r"([_-](dark|d|l|light)|_\d+x\d+)$", re.IGNORECASE)
_TEST_SEED_OFFSET = 7_000_003


def _picture_key(path: Path) -> str:
    stem = path.stem.lower()
    while _VARIANT.search(stem):
        stem = _VARIANT.sub("", stem)
    return stem


def photo_split(paths: Sequence[Path], split: str) -> list[Path]:
    """The ``"train"`` or ``"test"`` photos of ``paths``; variants of one picture stay together."""
    if split not in ("train", "test"):
        raise ValueError(f"photo split must be 'train' or 'test', got {split!r}")
    test = [zlib.crc32(_picture_key(p).encode()) % _TEST_FRACTION == 0 for p in paths]
    return [p for p, t in zip(paths, test) if t == (split == "test")]


def camera_path(rng: np.random.Generator, height: int, width: int, num_frames: int,
                resolution: int) -> np.ndarray:
    """Poses ``[t, 4]`` = (centre x, centre y, window side, angle in radians) in source pixels.

    Every rotated window lies inside the ``height x width`` photo.
    """
    short = min(height, width)
    side0 = rng.uniform(resolution, max(resolution, 0.9 * short))
    zoom = math.exp(rng.uniform(-math.log(1.3), math.log(1.3)))
    side1 = min(max(side0 * zoom, resolution), max(resolution, 0.9 * short))  # never below 1:1 (blur)
    angles = rng.uniform(-math.radians(2), math.radians(2), size=2)
    sides = np.array([side0, side1])

    def extent(side: float, angle: float) -> float:  # half the bounding box of the rotated window
        return 0.5 * side * (abs(math.cos(angle)) + abs(math.sin(angle)))

    lo = [np.array([e, e]) for e in (min(extent(s, a), 0.5 * short) for s, a in zip(sides, angles))]
    hi = [np.maximum(low, np.array([width, height]) - low) for low in lo]  # centres that keep it inside
    heading = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(0, side0 / 3) * np.array([math.cos(heading), math.sin(heading)])
    start = rng.uniform(lo[0], hi[0])
    end = np.clip(start + pan, lo[1], hi[1])
    s = np.linspace(0.0, 1.0, num_frames)[:, None]
    poses = np.concatenate([start + s * (end - start), sides[0] + s * (sides[1:] - sides[:1]),
                            angles[0] + s * (angles[1:] - angles[:1])], axis=1)
    return poses


def _render(photo: np.ndarray, poses: np.ndarray, resolution: int) -> torch.Tensor:
    """Frames ``float [c, t, h, w]`` in ``[-1, 1]``: each pose's window of ``photo`` at ``resolution``."""
    h, w = photo.shape[:2]
    scale = min(1.0, 1.1 * resolution / float(poses[:, 2].min()))  # window -> ~1:1 with the output
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        h, w = photo.shape[:2]
        poses = poses * np.array([scale, scale, scale, 1.0])
    image = torch.from_numpy(np.array(photo)).float().div(127.5).sub(1.0)
    image = rearrange(image, "h w c -> 1 c h w")
    cx, cy, side, angle = (torch.from_numpy(poses[:, i]).float() for i in range(4))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output coordinates in [-1, 1] to input coordinates in [-1, 1] (align_corners=False)
    sx, sy = side / w, side / h
    theta = torch.stack([
        torch.stack([cos * sx, -sin * side / w, 2 * cx / w - 1], dim=1),
        torch.stack([sin * side / h, cos * sy, 2 * cy / h - 1], dim=1),
    ], dim=1)  # [t, 2, 3]
    t = poses.shape[0]
    grid = F.affine_grid(theta, [t, 3, resolution, resolution], align_corners=False)
    frames = F.grid_sample(image.expand(t, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    frames = frames.mul(127.5).add(127.5).round().div(127.5).sub(1.0)  # on the uint8 grid, like decoded video
    return rearrange(frames, "t c h w -> c t h w").contiguous()


class PhotoMotion(Dataset):
    """``clips_per_photo`` camera-motion clips per photo; item -> ``{"video": [3, t, h, w], "label": -1, "index"}``.

    ``train=True`` draws random motion (seeded from torch's RNG, like :class:`MediaDataset`);
    ``train=False`` gives a fixed motion per index. ``split`` picks the photos (:func:`photo_split`),
    or ``None`` for all of them.
    """

    def __init__(self, folder: str | Path, split: str | None = "train", num_frames: int = 17,
                 resolution: int = 64, clips_per_photo: int = 1, train: bool = True, seed: int = 0) -> None:
        paths = [it.path for it in image_folder(folder).require_nonempty().items]
        self.paths = paths if split is None else photo_split(paths, split)
        if not self.paths:
            raise ValueError(f"no {split} photos in {folder} ({len(paths)} photos in all)")
        if resolution < 8 or clips_per_photo < 1:
            raise ValueError(f"PhotoMotion: need resolution >= 8 and clips_per_photo >= 1, got "
                             f"{resolution}, {clips_per_photo}")
        self.num_frames = check_num_frames(num_frames)
        self.resolution, self.clips_per_photo, self.train, self.seed = resolution, clips_per_photo, train, seed
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths) * self.clips_per_photo

    def _photo(self, i: int) -> np.ndarray:
        if i not in self._cache:  # the recipe's photos are ~256 px: a few MB for all of them
            photo = read_image(self.paths[i])
            if min(photo.shape[:2]) < self.resolution:
                s = self.resolution / min(photo.shape[:2])
                size = (math.ceil(photo.shape[1] * s), math.ceil(photo.shape[0] * s))
                photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC))
            self._cache[i] = photo
        return self._cache[i]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for PhotoMotion of {len(self)} items")
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        else:
            rng = np.random.default_rng([self.seed + _TEST_SEED_OFFSET, index])
        photo = self._photo(index // self.clips_per_photo)
        poses = camera_path(rng, photo.shape[0], photo.shape[1], self.num_frames, self.resolution)
        video = _render(photo, poses, self.resolution)
        if self.train and rng.random() < 0.5:
            video = video.flip(-1)
        return {"video": video, "label": -1, "index": int(index)}
