"""Sources, clip datasets, skipping, config factory (magvit2.data.sources / datasets / config)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from magvit2.config import ConfigError
from magvit2.data.io import MediaError
from magvit2.data import (
    DataConfig,
    MediaDataset,
    build_dataset,
    class_folders,
    discover,
    list_file,
    to_uint8,
    write_image,
    write_video,
)


def index_frames(n: int, h: int = 24, w: int = 32) -> np.ndarray:
    """Frame i is flat grey at level 4 * i."""
    return np.stack([np.full((h, w, 3), 4 * i, np.uint8) for i in range(n)])


def levels(item: dict) -> np.ndarray:
    """Frame indices read back from an index-coded clip."""
    return np.rint(to_uint8(item["video"]).reshape(item["video"].shape[1], -1).mean(axis=1) / 4).astype(int)


@pytest.fixture
def video_tree(tmp_path):
    """root/cats/{a.mkv, deep/b.mkv}, root/dogs/c.mkv, root/dogs/d.png."""
    root = tmp_path / "root"
    write_video(root / "cats" / "a.mkv", index_frames(40), fps=10)
    write_video(root / "cats" / "deep" / "b.mkv", index_frames(30), fps=10)
    write_video(root / "dogs" / "c.mkv", index_frames(20), fps=10)
    write_image(root / "dogs" / "d.png", np.full((30, 40, 3), 99, np.uint8))
    (root / "dogs" / "notes.txt").write_text("ignored")
    (root / ".hidden").mkdir()
    write_image(root / ".hidden" / "x.png", np.zeros((8, 8, 3), np.uint8))
    return root


# ----- sources ------------------------------------------------------------------------------------
def test_class_folders_labels(video_tree):
    listing = class_folders(video_tree)
    assert listing.class_names == ("cats", "dogs")
    got = [(p.path.relative_to(video_tree).as_posix(), p.label) for p in listing.items]
    assert got == [("cats/a.mkv", 0), ("cats/deep/b.mkv", 0), ("dogs/c.mkv", 1), ("dogs/d.png", 1)]
    assert discover(video_tree).kind == "classes"  # auto: media only inside sub-folders
    assert [p.path.name for p in discover(video_tree / "cats", "videos").items] == ["a.mkv", "b.mkv"]
    assert [p.path.name for p in discover(video_tree / "dogs").items] == ["c.mkv"]  # auto: videos win
    assert [p.path.name for p in discover(video_tree / "dogs", "images").items] == ["d.png"]
    single = discover(video_tree / "dogs" / "c.mkv")  # auto: one media file is a one-item source
    assert single.kind == "videos" and [p.path.name for p in single.items] == ["c.mkv"]


def test_list_file(tmp_path, video_tree):
    lst = tmp_path / "train.txt"
    lst.write_text(f"# comment\nroot/dogs/c.mkv\t1\n\n{video_tree / 'cats' / 'a.mkv'}\t0\nroot/dogs/d.png\n")
    listing = discover(lst)
    assert listing.kind == "list" and listing.class_names == ("0", "1")
    assert [(it.path.name, it.label) for it in listing.items] == [("c.mkv", 1), ("a.mkv", 0), ("d.png", -1)]
    assert listing.items[0].path == tmp_path / "root" / "dogs" / "c.mkv"  # relative to the list file
    lst.write_text("a.mkv\tcat\n")
    with pytest.raises(ValueError, match=r"train\.txt:1: expected"):
        list_file(lst)


def test_empty_source_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no media")
    with pytest.raises(ValueError, match=r"no usable files in source .*empty.*\.png.*\.mp4"):
        discover(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"kind=videos.*\.mkv"):
        discover(tmp_path / "empty", "videos")
    with pytest.raises(FileNotFoundError, match="missing"):
        discover(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no usable files in source .*empty.*kind=images"):
        build_dataset(DataConfig(source=str(tmp_path / "empty"), kind="images"))


# ----- clip datasets ------------------------------------------------------------------------------
def test_clip_frames_shapes_and_labels(video_tree):
    ds = MediaDataset(class_folders(video_tree), num_frames=5, frame_stride=2, resolution=16)
    assert len(ds) == 4
    item = ds[0]
    assert item["video"].shape == (3, 5, 16, 16) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert (item["label"], item["index"]) == (0, 0)
    np.testing.assert_array_equal(levels(item), [15, 17, 19, 21, 23])  # span 9 centred in 40 frames
    assert ds[2]["label"] == 1
    image = ds[3]
    assert image["video"].shape == (3, 1, 16, 16) and image["label"] == 1
    assert abs(image["video"].mean().item() - (99 / 127.5 - 1)) < 1e-3


def test_random_offsets_and_clips_per_video(video_tree):
    items = class_folders(video_tree).items[:1]  # a.mkv, 40 frames
    ds = MediaDataset(items, num_frames=5, resolution=16, random_offset=True)
    torch.manual_seed(0)
    starts = {int(levels(ds[0])[0]) for _ in range(15)}
    assert len(starts) > 4 and min(starts) >= 0 and max(starts) <= 35
    even = MediaDataset(items, num_frames=5, resolution=16, clips_per_video=3)
    assert len(even) == 3
    assert [int(levels(even[k])[0]) for k in range(3)] == [0, 18, 35]  # evenly spaced, deterministic


def test_short_videos_pad_or_skip(tmp_path):
    write_video(tmp_path / "short.mkv", index_frames(6), fps=10)
    write_video(tmp_path / "long.mkv", index_frames(12), fps=10)
    pad = MediaDataset([tmp_path / "short.mkv"], num_frames=9, resolution=8)
    np.testing.assert_array_equal(levels(pad[0]), [0, 1, 2, 3, 4, 5, 5, 5, 5])
    skip = MediaDataset([tmp_path / "short.mkv", tmp_path / "long.mkv"], num_frames=9, resolution=8, short_videos="skip")
    with pytest.warns(RuntimeWarning, match="short.mkv"):
        item = skip[0]
    assert item["index"] == 1 and skip.num_skipped == 1  # replaced by the next file
    with pytest.warns(RuntimeWarning, match="shorter than a clip of 9"):
        probed = MediaDataset([tmp_path / "short.mkv", tmp_path / "long.mkv"], num_frames=9, resolution=8,
                              short_videos="skip", probe=True)
    assert len(probed) == 1 and probed.skipped[0][0].endswith("short.mkv")


def test_corrupt_and_truncated_files_are_skipped(tmp_path):
    write_video(tmp_path / "a_good.mp4", index_frames(20), fps=10)
    (tmp_path / "b_corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    write_video(tmp_path / "c_trunc.mp4", np.random.default_rng(1).integers(0, 256, (20, 32, 32, 3), np.uint8), 10)
    data = (tmp_path / "c_trunc.mp4").read_bytes()  # faststart: the index sits before the frame data
    (tmp_path / "c_trunc.mp4").write_bytes(data[: data.index(b"mdat") + 200])  # index intact, frames cut off
    write_video(tmp_path / "d_good.mp4", index_frames(20), fps=10)
    ds = build_dataset(DataConfig(source=str(tmp_path), num_frames=5, resolution=16), train=False)
    assert len(ds) == 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [ds[i]["index"] for i in range(4)]
    assert got == [0, 3, 3, 3]
    assert ds.num_skipped == 2 and {p.rsplit("/", 1)[-1] for p, _ in ds.skipped} == {"b_corrupt.mp4", "c_trunc.mp4"}
    assert sum("skipping" in str(w.message) for w in caught) == 2  # each bad file is warned about once
    with pytest.warns(RuntimeWarning, match=r"skipping .*b_corrupt\.mp4: not a readable video"):
        probed = MediaDataset(discover(tmp_path), num_frames=5, resolution=16, probe=True)
    assert len(probed) == 3 and probed.num_skipped == 1  # the truncated file's header still reads


def test_all_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match=r"no usable files in source .*1 listed, 1 unr"):
        MediaDataset(discover(tmp_path), num_frames=1, resolution=8, probe=True)
    ds = MediaDataset(discover(tmp_path), num_frames=1, resolution=8)
    with pytest.warns(RuntimeWarning), pytest.raises(MediaError, match="no readable file found"):  # a user error
        ds[0]


def test_resize_then_crop_and_flip_on_video(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 96)[None, None, :, None], (3, 32, 1, 3)).astype(np.uint8)  # 32x96 wide
    write_video(tmp_path / "ramp.mkv", ramp, fps=5)
    ds = MediaDataset([tmp_path / "ramp.mkv"], num_frames=1, resolution=16)
    row = to_uint8(ds[0]["video"])[0, 8, :, 0].astype(int)
    assert abs(row[0] - 86) <= 5 and abs(row[-1] - 168) <= 5 and np.all(np.diff(row) >= 0)  # middle third
    flip = MediaDataset([tmp_path / "ramp.mkv"], num_frames=1, resolution=16, random_flip=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        r = to_uint8(flip[0]["video"])[0, 8, :, 0].astype(int)
        assert np.array_equal(r, row) or np.array_equal(r, row[::-1])
        seen.add(bool(r[0] > r[-1]))
    assert seen == {True, False}


def test_images_single_or_repeated(tmp_path):
    write_image(tmp_path / "a.jpg", np.full((20, 50, 3), 200, np.uint8))
    single = MediaDataset(discover(tmp_path), num_frames=5, resolution=16)
    assert single[0]["video"].shape == (3, 1, 16, 16)
    rep = MediaDataset(discover(tmp_path), num_frames=5, resolution=16, image_frames="repeat")
    v = rep[0]["video"]
    assert v.shape == (3, 5, 16, 16) and torch.equal(v[:, 0], v[:, 4])


def test_dataloader_workers(video_tree):
    ds = MediaDataset(discover(video_tree / "cats"), num_frames=5, resolution=16, random_crop=True)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 1 and batches[0]["video"].shape == (2, 3, 5, 16, 16)
    assert batches[0]["index"].tolist() == [0, 1]


# ----- config -------------------------------------------------------------------------------------
def test_data_config_validation_and_overrides():
    with pytest.raises(ConfigError, match="1 \\+ 4k"):
        DataConfig(num_frames=8)
    with pytest.raises(ConfigError, match="kind"):
        DataConfig(kind="movies")
    cfg = DataConfig.load("tiny", ["resolution=24", "num_frames=9"])
    assert (cfg.resolution, cfg.num_frames, cfg.source) == (24, 9, "synthetic")
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    ds = build_dataset(cfg)
    assert ds[3]["video"].shape == (3, 9, 24, 24)


def test_eval_dataset_is_deterministic(video_tree):
    cfg = DataConfig(source=str(video_tree), num_frames=5, resolution=16)
    a, b = build_dataset(cfg, train=False), build_dataset(cfg, train=False)
    assert torch.equal(a[1]["video"], b[1]["video"]) and a.class_names == ("cats", "dogs")
