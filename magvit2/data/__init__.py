"""Data: video/image IO, sources, clip datasets, synthetic and in-package real data.

Videos are ``float [3, t, h, w]`` tensors in ``[-1, 1]`` (images have ``t == 1``);
files are read into ``uint8 [t, h, w, 3]`` numpy arrays first.
"""
from magvit2.data.config import BUILTIN_SOURCES, DataConfig, build_dataset
from magvit2.data.datasets import MediaDataset
from magvit2.data.digits import MovingDigits, digit_split, load_digit_images
from magvit2.data.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    VideoClip,
    VideoInfo,
    VideoReader,
    fps_to_fraction,
    read_frames,
    read_image,
    read_media,
    read_video,
    video_info,
)
from magvit2.data.packaged import packaged_images, packaged_listing, packaged_split, packaged_videos
from magvit2.data.sources import MediaItem, SourceListing, class_folders, discover, image_folder, list_file, video_folder
from magvit2.data.synthetic import SHAPES, MovingShapes, moving_shapes_batch
from magvit2.data.transforms import (
    center_crop,
    clip_indices,
    crop_to_multiple,
    resize_crop_image,
    resize_short_side,
    resized_size,
    to_tensor,
    to_uint8,
)
from magvit2.data.writers import make_grid, write_clips, write_frames, write_image, write_video

__all__ = [
    "BUILTIN_SOURCES",
    "IMAGE_EXTENSIONS",
    "SHAPES",
    "VIDEO_EXTENSIONS",
    "DataConfig",
    "MediaDataset",
    "MediaError",
    "MediaItem",
    "MovingDigits",
    "MovingShapes",
    "SourceListing",
    "VideoClip",
    "VideoInfo",
    "VideoReader",
    "build_dataset",
    "center_crop",
    "crop_to_multiple",
    "fps_to_fraction",
    "resize_short_side",
    "write_clips",
    "write_frames",
    "class_folders",
    "clip_indices",
    "digit_split",
    "discover",
    "image_folder",
    "list_file",
    "load_digit_images",
    "make_grid",
    "moving_shapes_batch",
    "packaged_images",
    "packaged_listing",
    "packaged_split",
    "packaged_videos",
    "read_frames",
    "read_image",
    "read_media",
    "read_video",
    "resize_crop_image",
    "resized_size",
    "to_tensor",
    "to_uint8",
    "video_folder",
    "video_info",
    "write_image",
    "write_video",
]
