"""Clip datasets over image and video files.

Each item is a dict ``{"video": float [c, t, h, w] in [-1, 1], "label": int (-1 if
unlabelled), "index": int}`` with shape letters c = 3 channels, t = ``num_frames``
(``1 + 4k``), h = w = ``resolution``.

How a video item is made (only the needed frames are ever decoded):

1. open the file (here, inside ``__getitem__``, i.e. inside a DataLoader worker);
2. pick ``num_frames`` frame indices ``frame_stride`` apart, starting at a random
   offset (``random_offset``), the centre, or evenly spaced starts when
   ``clips_per_video > 1`` without random offsets;
3. decode those frames, resizing each so its short side is ``resolution`` (aspect kept);
4. crop ``resolution x resolution`` (random or centred), then maybe flip horizontally.

Images give ``t = 1`` or, with ``image_frames="repeat"``, a static ``num_frames`` clip.

Videos shorter than a clip's span ``(num_frames - 1) * frame_stride + 1``:
``short_videos="pad"`` (default) repeats the last frame; ``"skip"`` skips them.

Unreadable files (corrupt, truncated, missing) are skipped with a warning: the item
is replaced by the next readable file, and ``dataset.skipped`` lists ``(path, reason)``.
With DataLoader workers each worker process keeps its own ``skipped`` list.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from magvit2.data.io import MediaError, VideoReader, read_image, read_video, video_info
from magvit2.data.sources import MediaItem, SourceListing
from magvit2.data.transforms import (
    apply_crop,
    check_num_frames,
    clip_indices,
    crop_box,
    resize_crop_image,
    resize_frames,
    resized_size,
    to_tensor,
)
from magvit2.errors import UserError

__all__ = ["MediaDataset"]

_SHORT_POLICIES = ("pad", "skip")
_IMAGE_POLICIES = ("single", "repeat")
_READ_ERRORS = (MediaError, OSError, IndexError)


class _TooShort(Exception):
    pass


class MediaDataset(Dataset):
    """Clips (or images) from a :class:`SourceListing`, decoded lazily in ``__getitem__``.

    ``probe=True`` opens each video once in ``__init__`` (header only, closed at once) to
    drop unreadable files, and short ones under ``short_videos="skip"``, before training starts.
    """

    def __init__(
        self,
        source: SourceListing | Sequence[MediaItem | str | Path],
        num_frames: int = 17,
        frame_stride: int = 1,
        resolution: int = 64,
        random_offset: bool = False,
        random_crop: bool = False,
        random_flip: bool = False,
        short_videos: str = "pad",
        image_frames: str = "single",
        clips_per_video: int = 1,
        probe: bool = False,
        max_retries: int = 20,
    ) -> None:
        if isinstance(source, SourceListing):
            self.source_name, items = source.source, list(source.items)
            self.class_names: tuple[str, ...] = source.class_names
        else:
            self.source_name = "<list of files>"
            items = [it if isinstance(it, MediaItem) else MediaItem(Path(it)) for it in source]
            self.class_names = ()
        self.num_frames = check_num_frames(num_frames)
        if frame_stride < 1 or resolution < 1 or clips_per_video < 1 or max_retries < 1:
            raise UserError(
                "frame_stride, resolution, clips_per_video and max_retries must be >= 1, got "
                f"{frame_stride}, {resolution}, {clips_per_video}, {max_retries}"
            )
        if short_videos not in _SHORT_POLICIES:
            raise UserError(f"short_videos must be one of {_SHORT_POLICIES}, got {short_videos!r}")
        if image_frames not in _IMAGE_POLICIES:
            raise UserError(f"image_frames must be one of {_IMAGE_POLICIES}, got {image_frames!r}")
        self.frame_stride, self.resolution = frame_stride, resolution
        self.random_offset, self.random_crop, self.random_flip = random_offset, random_crop, random_flip
        self.short_videos, self.image_frames = short_videos, image_frames
        self.clips_per_video, self.max_retries = clips_per_video, max_retries
        self.skipped: list[tuple[str, str]] = []
        self._bad: set[int] = set()
        self.items: list[MediaItem] = self._probe(items) if probe else items
        if not self.items:
            raise UserError(
                f"no usable files in source {self.source_name!r}: {len(items)} listed, "
                f"{len(self.skipped)} unreadable or too short"
            )

    @property
    def clip_span(self) -> int:
        """Frames a clip covers in the source video."""
        return (self.num_frames - 1) * self.frame_stride + 1

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.items) * self.clips_per_video

    # ----- skipping ----------------------------------------------------------
    def _skip(self, item: MediaItem, reason: str) -> None:
        self.skipped.append((str(item.path), reason))
        where = reason if reason.startswith(str(item.path)) else f"{item.path}: {reason}"
        warnings.warn(f"skipping {where}", RuntimeWarning, stacklevel=3)

    def _probe(self, items: list[MediaItem]) -> list[MediaItem]:
        kept = []
        for item in items:
            if item.is_image:
                if item.path.is_file():
                    kept.append(item)
                else:
                    self._skip(item, "file not found")
                continue
            try:
                n = video_info(item.path).num_frames
            except _READ_ERRORS as e:
                self._skip(item, str(e))
                continue
            if n < 1:
                self._skip(item, "no frames")
            elif n < self.clip_span and self.short_videos == "skip":
                self._skip(item, f"{n} frames, shorter than a clip of {self.clip_span}")
            else:
                kept.append(item)
        return kept

    # ----- loading -----------------------------------------------------------
    def _offset(self, n: int, clip: int) -> str | int:
        if self.random_offset:
            return "random"
        if self.clips_per_video == 1:
            return "center"
        slack = max(n - self.clip_span, 0)
        return int(round(clip * slack / (self.clips_per_video - 1)))

    def _load_video(self, item: MediaItem, clip: int, rng: np.random.Generator) -> np.ndarray:
        if item.path.suffix.lower() == ".gif":  # Pillow composes GIF frames; GIFs are small
            frames = read_video(item.path).frames
            n, h, w = frames.shape[:3]
            return self._clip(n, h, w, lambda idx, size: resize_frames(frames[idx], size), clip, rng)
        with VideoReader(item.path) as reader:
            return self._clip(reader.num_frames, reader.height, reader.width, reader.read, clip, rng)

    def _clip(
        self, n: int, h: int, w: int, read: Callable[..., np.ndarray], clip: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Sample indices in a video of ``n`` frames of ``h x w``, ``read(indices, (h', w'))`` them, crop."""
        if n < self.clip_span and self.short_videos == "skip":
            raise _TooShort(f"{n} frames, shorter than a clip of {self.clip_span}")
        idx = clip_indices(n, self.num_frames, self.frame_stride, self._offset(n, clip), rng)
        if idx is None:
            raise MediaError("not a readable video (no frames)")
        nh, nw = resized_size(h, w, self.resolution)
        frames = read(idx, (nh, nw))
        return apply_crop(frames, crop_box(nh, nw, self.resolution, self.random_crop, rng))

    def _load_image(self, item: MediaItem, rng: np.random.Generator) -> np.ndarray:
        image = resize_crop_image(read_image(item.path), self.resolution, self.random_crop, rng)
        t = self.num_frames if self.image_frames == "repeat" else 1
        return np.repeat(image[None], t, axis=0)

    def _load(self, item_index: int, clip: int, rng: np.random.Generator) -> dict:
        item = self.items[item_index]
        frames = self._load_image(item, rng) if item.is_image else self._load_video(item, clip, rng)
        if self.random_flip and rng.random() < 0.5:
            frames = frames[:, :, ::-1]
        return {"video": to_tensor(frames), "label": int(item.label), "index": item_index * self.clips_per_video + clip}

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        item_index, clip = divmod(int(index), self.clips_per_video)
        # Seeded from torch's RNG: reproducible under torch.manual_seed, distinct per DataLoader worker.
        # Deterministic datasets leave torch's RNG untouched.
        randomised = self.random_offset or self.random_crop or self.random_flip
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()) if randomised else 0)
        attempts = 0
        for _ in range(len(self.items)):  # known-bad files are passed over without reopening them
            if item_index not in self._bad:
                attempts += 1
                try:
                    return self._load(item_index, clip, rng)
                except (_TooShort, *_READ_ERRORS) as e:
                    self._bad.add(item_index)
                    self._skip(self.items[item_index], str(e))
                if attempts >= self.max_retries:
                    break
            item_index = (item_index + 1) % len(self.items)
        raise MediaError(
            f"{self.source_name}: no readable file found from index {index} on ({attempts} tried now, "
            f"{self.num_skipped} skipped so far; last: {self.skipped[-1:]})"
        )

