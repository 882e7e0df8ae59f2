"""The one copy of each small data helper: frame rates as fractions, .npy frames through read_media,
resize/crop to a multiple, and write_frames choosing the format by extension (bit-exact for .npy/.mkv)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from magvit2.data.io import MediaError, fps_to_fraction, read_media
from magvit2.data.transforms import center_crop, crop_to_multiple, resize_short_side, to_tensor, to_uint8
from magvit2.data.writers import write_frames


@pytest.mark.parametrize("fps,want", [(30, Fraction(30)), (29.97002997002997, Fraction(30000, 1001)),
                                      (23.976023976023978, Fraction(24000, 1001)), (12.5, Fraction(25, 2)),
                                      (Fraction(60000, 1001), Fraction(60000, 1001))])
def test_fps_to_fraction(fps, want) -> None:
    assert fps_to_fraction(fps) == want


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x", 2.0**33])
def test_fps_to_fraction_refuses(bad) -> None:
    with pytest.raises(MediaError, match="fps must be"):
        fps_to_fraction(bad)


def test_npy_frames_round_trip_and_checks(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (7, 6, 10, 3), dtype=np.uint8)
    write_frames(tmp_path / "a.npy", frames)
    clip = read_media(tmp_path / "a.npy", max_frames=5)
    assert clip.fps == 0.0 and np.array_equal(clip.frames, frames[:5]) and clip.frames.flags.writeable
    write_frames(tmp_path / "a.mkv", frames, fps=12.5)
    back = read_media(tmp_path / "a.mkv")
    assert np.array_equal(back.frames, frames) and back.fps == 12.5
    np.save(tmp_path / "bad.npy", np.zeros((2, 4, 4), np.float32))
    with pytest.raises(MediaError, match="expected uint8 frames"):
        read_media(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="must end in one of"):
        write_frames(tmp_path / "a.txt", frames)
    with pytest.raises(ValueError, match="an image holds one frame"):
        write_frames(tmp_path / "a.png", frames)


def test_resize_and_crop_to_multiple() -> None:
    frames = np.random.default_rng(1).integers(0, 255, (2, 45, 70, 3), dtype=np.uint8)
    v = resize_short_side(to_tensor(frames)[None], 33)  # [1, 3, 2, 33, 51]
    assert v.shape == (1, 3, 2, 33, 51) and v.abs().max() <= 1
    c = crop_to_multiple(v, 8)
    assert c.shape[-2:] == (32, 48)
    assert torch.equal(c, v[..., 0:32, 1:49])  # centred
    assert torch.equal(center_crop(v, 33, 33), v[..., :, 9:42])
    assert to_uint8(c[0]).shape == (2, 32, 48, 3)
    with pytest.raises(ValueError, match="does not fit"):
        center_crop(v, 40, 10)
