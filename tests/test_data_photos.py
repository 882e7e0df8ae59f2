"""Camera-motion clips over still photos (data source ``photos-motion`` / ``DataConfig.photos``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from magvit2.config.base import ConfigError
from magvit2.data import DataConfig, build_dataset
from magvit2.data.photos import PhotoMotion, camera_path, photo_split


def _photos(root: Path, names: list[str], size: tuple[int, int] = (96, 72)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    for name in names:  # smooth, textured, different per photo
        f = rng.uniform(0.05, 0.2, size=3)
        img = 127 + 100 * np.stack([np.sin(f[c] * xs + c) * np.cos(f[c] * ys) for c in range(3)], -1)
        Image.fromarray(img.astype(np.uint8)).save(root / name)
    return root


NAMES = [f"pic{i}.jpg" for i in range(30)] + ["pic3_dark.jpg", "pic7-d.jpg", "pic7-l.jpg", "pic9_1920x1080.jpg"]


def test_camera_path_keeps_the_rotated_window_inside_the_photo() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        h, w = int(rng.integers(64, 300)), int(rng.integers(64, 300))
        poses = camera_path(rng, h, w, 17, 32)
        assert poses.shape == (17, 4)
        for cx, cy, side, angle in poses:
            for u, v in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
                x = cx + side / 2 * (math.cos(angle) * u - math.sin(angle) * v)
                y = cy + side / 2 * (math.sin(angle) * u + math.cos(angle) * v)
                assert -1e-6 <= x <= w + 1e-6 and -1e-6 <= y <= h + 1e-6
            assert side >= 32 * 0.99 and abs(angle) <= math.radians(2) + 1e-9


def test_split_keeps_variants_together_and_is_disjoint(tmp_path: Path) -> None:
    paths = [tmp_path / n for n in NAMES]
    train, test = photo_split(paths, "train"), photo_split(paths, "test")
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(paths)
    assert 0 < len(test) < len(paths) // 2
    held = [p.stem for p in test if p.stem.startswith("pic") and p.stem[3:].isdigit()]
    assert held
    for stem in held:  # every variant of a held-out picture is held out too
        variants = [tmp_path / f"{stem}{v}.jpg" for v in ("_dark", "-d", "-l", "_1920x1080", "_dark_3840x2160")]
        assert photo_split(variants, "test") == variants


def test_clips_move_smoothly_and_heldout_clips_are_fixed(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos", NAMES[:12])
    ds = PhotoMotion(root, "train", num_frames=9, resolution=16, clips_per_photo=2)
    assert len(ds) == 2 * len(photo_split(sorted(root.iterdir()), "train"))
    torch.manual_seed(0)
    v = ds[0]["video"]
    assert v.shape == (3, 9, 16, 16) and v.min() >= -1 and v.max() <= 1
    assert not torch.equal(v, ds[0]["video"])  # training motion is random
    test = PhotoMotion(root, "test", num_frames=9, resolution=16, train=False)
    a, b = test[0]["video"], test[0]["video"]
    assert torch.equal(a, b)  # held-out motion is a function of the index
    step = (a[:, 1:] - a[:, :-1]).abs().mean()  # consecutive frames: one camera moving a little
    other = (a - PhotoMotion(root, "train", 9, 16, train=False)[0]["video"]).abs().mean()  # another photo
    assert 0 < step < other / 3


def test_photos_join_training_only(tmp_path: Path) -> None:
    root = _photos(tmp_path / "photos", NAMES[:12])
    cfg = DataConfig(source="synthetic", num_frames=5, resolution=16, num_samples=4, photos=str(root), photo_clips=3)
    n_train = len(photo_split(sorted(root.iterdir()), "train"))
    assert len(build_dataset(cfg, train=True)) == 4 + 3 * n_train
    assert len(build_dataset(cfg, train=False)) == 4  # no photos in held-out evaluation of another source
    only = DataConfig(source="photos-motion", num_frames=5, resolution=16, photos=str(root))
    held = build_dataset(only, train=False)
    assert {p.name for p in held.paths} == {p.name for p in photo_split(sorted(root.iterdir()), "test")}
    assert build_dataset(only, train=True)[0]["video"].shape == (3, 5, 16, 16)


def test_photos_motion_needs_a_folder() -> None:
    with pytest.raises(ConfigError, match="photos"):
        DataConfig(source="photos-motion")
