"""Video/image IO, writers, conversions and clip geometry (magvit2.data.io / writers / transforms)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from magvit2.data import (
    MediaError,
    VideoReader,
    make_grid,
    read_frames,
    read_image,
    read_media,
    read_video,
    to_tensor,
    to_uint8,
    video_info,
    write_image,
    write_video,
)
from magvit2.data.transforms import clip_indices, crop_box, resize_crop_image, resized_size


def index_frames(n: int, h: int = 24, w: int = 32) -> np.ndarray:
    """Frame i is flat grey at level 4 * i (so its index can be read back through lossy codecs)."""
    return np.stack([np.full((h, w, 3), 4 * i, np.uint8) for i in range(n)])


@pytest.fixture(scope="module")
def lossless_video(tmp_path_factory) -> tuple:
    frames = index_frames(50)
    frames[:, :3, :3] = np.random.default_rng(0).integers(0, 256, size=(50, 3, 3, 3), dtype=np.uint8)
    path = write_video(tmp_path_factory.mktemp("io") / "idx.mkv", frames, fps=10, keyframe_interval=6)
    return path, frames


@pytest.fixture(scope="module")
def h264_video(tmp_path_factory) -> tuple:
    frames = index_frames(60)
    path = write_video(tmp_path_factory.mktemp("io") / "idx.mp4", frames, fps=24, keyframe_interval=8)
    return path, frames


# ----- reading frames -----------------------------------------------------------------------------
@pytest.mark.parametrize("indices", [[0], [49], [7, 8, 9], [31, 5, 5, 48], list(range(12, 45, 4))])
def test_read_frames_lossless_exact(lossless_video, indices):
    path, frames = lossless_video
    got = read_frames(path, indices)
    assert got.dtype == np.uint8 and got.shape == (len(indices), 24, 32, 3)
    np.testing.assert_array_equal(got, frames[indices])


def test_read_video_lossless_round_trip(lossless_video):
    path, frames = lossless_video
    clip = read_video(path)
    np.testing.assert_array_equal(clip.frames, frames)
    assert clip.fps == pytest.approx(10.0)
    assert read_video(path, max_frames=7).frames.shape[0] == 7


@pytest.mark.parametrize("indices", [[50], [0, 59], [33, 3, 17], list(range(40, 57, 4))])
def test_read_frames_h264_matches_full_decode(h264_video, indices):
    path, frames = h264_video
    full = read_video(path).frames
    got = read_frames(path, indices)
    np.testing.assert_array_equal(got, full[indices])  # same decoder: seeking must give the very same frames
    levels = got.reshape(len(indices), -1).mean(axis=1) / 4
    np.testing.assert_allclose(levels, indices, atol=0.75)  # and they are the frames that were written there


def test_read_frames_seeks_instead_of_decoding_everything(h264_video):
    path, _ = h264_video
    with VideoReader(path) as r:
        r.read([57])
        assert r.frames_decoded <= 12  # keyframes every 8 frames: at most a GOP plus decoder delay
    with VideoReader(path) as r:
        r.read([0, 1, 2])
        assert r.frames_decoded == 3


def test_reader_reused_for_several_reads(h264_video):
    path, _ = h264_video
    full = read_video(path).frames
    with VideoReader(path) as r:
        for indices in ([40], [0, 1], [20, 58], [2]):
            np.testing.assert_array_equal(r.read(indices), full[indices])


def test_stream_without_timestamps_falls_back_to_counting(tmp_path):
    """A raw H.264 elementary stream has no packet timestamps: frames are found by decoding and counting."""
    import av

    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        for f in index_frames(30, 16, 16):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with VideoReader(path) as r:
        assert r.num_frames == 30
        got = r.read([20, 5, 29])
    np.testing.assert_allclose(got.reshape(3, -1).mean(axis=1) / 4, [20, 5, 29], atol=0.75)


def test_read_frames_out_of_range(lossless_video):
    path, _ = lossless_video
    with pytest.raises(IndexError, match="50 frames"):
        read_frames(path, [3, 50])


def test_video_info(lossless_video, h264_video):
    info = video_info(h264_video[0])
    assert (info.num_frames, info.width, info.height) == (60, 32, 24) and info.fps == pytest.approx(24.0)
    mkv = video_info(lossless_video[0])  # Matroska states no frame count: counted from packets
    assert (mkv.num_frames, mkv.width, mkv.height) == (50, 32, 24)
    assert video_info(lossless_video[0], exact=True).num_frames == 50


def test_resize_while_decoding(lossless_video):
    path, _ = lossless_video
    got = read_frames(path, [10, 20], size=(12, 16))
    assert got.shape == (2, 12, 16, 3)
    assert abs(float(got[0, 6:, 6:].mean()) - 40) < 2 and abs(float(got[1, 6:, 6:].mean()) - 80) < 2


# ----- writers ------------------------------------------------------------------------------------
def test_mp4_round_trip_and_odd_size(tmp_path):
    rng = np.random.default_rng(1)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, size=(5, 4, 6, 3)), 8, axis=1), 8, axis=2).astype(np.uint8)
    clip = read_video(write_video(tmp_path / "a.mp4", smooth, fps=12))
    assert clip.frames.shape == smooth.shape and clip.fps == pytest.approx(12.0)
    assert np.abs(clip.frames.astype(int) - smooth).mean() < 6
    odd = read_video(write_video(tmp_path / "odd.mp4", index_frames(3, 15, 21), fps=5)).frames
    assert odd.shape == (3, 16, 22, 3)  # padded to even sizes by replicating the last row/column
    assert abs(float(odd[2].mean()) - 8) < 2


def test_gif_round_trip(tmp_path):
    frames = index_frames(6, 10, 12) * 5
    frames[:, :, :4, 0] = 200  # a red band, so colour survives the palette
    clip = read_video(write_video(tmp_path / "a.gif", frames, fps=10))
    np.testing.assert_array_equal(clip.frames, frames)  # few colours: the palette is exact
    assert clip.fps == pytest.approx(10.0)
    np.testing.assert_array_equal(read_frames(tmp_path / "a.gif", [4, 1]), frames[[4, 1]])


def test_write_video_errors(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=5)
    with pytest.raises(ValueError, match=r"\.avi"):
        write_video(tmp_path / "a.avi", index_frames(2), fps=5)
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "a.mp4", index_frames(2), fps=0)


def test_image_round_trip_and_modes(tmp_path):
    img = np.random.default_rng(2).integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "a.png", img)), img)
    rgba = np.dstack([img, np.full((9, 13), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), img)  # alpha dropped, colour kept
    gray = img[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "c.png")
    out = read_image(tmp_path / "c.png")
    assert out.shape == (9, 13, 3) and all(np.array_equal(out[..., k], gray) for k in range(3))
    clip = read_media(tmp_path / "a.png")
    assert clip.frames.shape == (1, 9, 13, 3) and clip.fps == 0.0


def test_make_grid_layout():
    ims = [np.full((4, 5, 3), 10 * k, np.uint8) for k in range(5)]
    g = make_grid(ims, nrow=3, padding=1, pad_value=255)
    assert g.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(g[1 + r * 5 : 1 + r * 5 + 4, 1 + c * 6 : 1 + c * 6 + 5], ims[k])
    assert (g[0] == 255).all() and (g[:, 0] == 255).all() and (g[6:, 13:] == 255).all()
    with pytest.raises(ValueError, match="shape"):
        make_grid([ims[0], np.zeros((3, 5, 3), np.uint8)])


# ----- errors -------------------------------------------------------------------------------------
def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_frames(missing, [0])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=r"bad\.mp4.*not a readable video"):
        read_video(bad)
    with pytest.raises(ValueError):  # MediaError is a ValueError
        video_info(bad)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(MediaError, match=r"bad\.jpg.*not a readable image"):
        read_image(tmp_path / "bad.jpg")


# ----- conversions and clip geometry --------------------------------------------------------------
def test_tensor_round_trip():
    frames = np.random.default_rng(4).integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    x = to_tensor(frames)
    assert x.shape == (3, 5, 6, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x[1, 2, 3, 4].item() == pytest.approx(frames[2, 3, 4, 1] / 127.5 - 1)
    np.testing.assert_array_equal(to_uint8(x), frames)
    np.testing.assert_array_equal(to_uint8(torch.stack([x, x]))[1], frames)
    np.testing.assert_array_equal(to_uint8(torch.full((3, 1, 2, 2), 5.0)), np.full((1, 2, 2, 3), 255))
    assert to_tensor(frames[0]).shape == (3, 1, 6, 7)


def test_clip_indices():
    assert clip_indices(100, 5, 3, "center") == [43, 46, 49, 52, 55]  # span 13, slack 87 -> start 43
    assert clip_indices(100, 5, 3, 0) == [0, 3, 6, 9, 12]
    assert clip_indices(6, 9, 1) == [0, 1, 2, 3, 4, 5, 5, 5, 5]  # short: last frame repeated
    assert clip_indices(0, 5) is None
    rng = np.random.default_rng(5)
    starts = set()
    for _ in range(200):
        idx = clip_indices(30, 5, 2, "random", rng)
        assert idx[0] >= 0 and idx[-1] <= 29 and np.all(np.diff(idx) == 2)
        starts.add(idx[0])
    assert starts == set(range(0, 22))  # every start that fits is used


def test_resize_then_crop_keeps_aspect():
    assert resized_size(720, 1280, 64) == (64, 114) and resized_size(300, 100, 32) == (96, 32)
    ramp = np.tile(np.linspace(0, 255, 192)[None, :, None], (64, 1, 3)).astype(np.uint8)  # wide 64x192
    out = resize_crop_image(ramp, 32)
    assert out.shape == (32, 32, 3)
    # resize to 32x96 first, then the centre crop is the middle third: levels ~85..170.
    # (cropping 32x32 raw pixels first would span only ~107..148)
    assert abs(int(out[16, 0, 0]) - 86) <= 4 and abs(int(out[16, -1, 0]) - 168) <= 4
    box = crop_box(32, 96, 32, random=True, generator=np.random.default_rng(0))
    assert box.top == 0 and 0 <= box.left <= 64
