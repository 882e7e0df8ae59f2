"""Finding media files: image folders, video folders, class folders and list files.

Every source becomes a :class:`SourceListing`: a deterministic, sorted tuple of
:class:`MediaItem` (path + integer label, -1 when unlabelled) and the class names.
Discovery is recursive, skips hidden files and folders (names starting with ".")
and follows symlinked folders. Nothing here opens a media file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from magvit2.data.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from magvit2.errors import UserError

__all__ = [
    "KINDS",
    "MEDIA_EXTENSIONS",
    "LIST_EXTENSIONS",
    "MediaItem",
    "SourceListing",
    "class_folders",
    "discover",
    "find_files",
    "image_folder",
    "list_file",
    "video_folder",
]

MEDIA_EXTENSIONS: tuple[str, ...] = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
LIST_EXTENSIONS: tuple[str, ...] = (".txt", ".lst", ".list", ".tsv", ".csv")
KINDS: tuple[str, ...] = ("auto", "images", "videos", "classes", "list")


@dataclass(frozen=True)
class MediaItem:
    """One file of a source; ``label`` is -1 when the source has no labels."""

    path: Path
    label: int = -1

    @property
    def is_image(self) -> bool:
        return self.path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class SourceListing:
    """The files of a source in a fixed order, with the class names that labels index."""

    source: str
    kind: str
    items: tuple[MediaItem, ...]
    class_names: tuple[str, ...] = ()
    extensions: tuple[str, ...] = MEDIA_EXTENSIONS

    def __len__(self) -> int:
        return len(self.items)

    def require_nonempty(self) -> "SourceListing":
        if not self.items:
            raise UserError(
                f"no usable files in source {self.source!r} (kind={self.kind}); "
                f"expected files with extensions {' '.join(self.extensions)}"
            )
        return self


def _check_dir(root: Path) -> Path:
    if not root.exists():
        raise FileNotFoundError(f"no such source folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"source {root} is not a folder")
    return root


def find_files(root: str | Path, extensions: Iterable[str]) -> list[Path]:
    """Files under ``root`` (recursively) whose lower-cased suffix is in ``extensions``, sorted by relative path."""
    root = _check_dir(Path(root))
    exts = tuple(e.lower() for e in extensions)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def image_folder(root: str | Path) -> SourceListing:
    """All images (jpg/jpeg/png/webp/bmp) under ``root``, unlabelled."""
    items = tuple(MediaItem(p) for p in find_files(root, IMAGE_EXTENSIONS))
    return SourceListing(str(root), "images", items, (), IMAGE_EXTENSIONS)


def video_folder(root: str | Path) -> SourceListing:
    """All videos (mp4/avi/mkv/webm/mov/gif) under ``root``, unlabelled."""
    items = tuple(MediaItem(p) for p in find_files(root, VIDEO_EXTENSIONS))
    return SourceListing(str(root), "videos", items, (), VIDEO_EXTENSIONS)


def class_folders(root: str | Path, extensions: Iterable[str] = MEDIA_EXTENSIONS) -> SourceListing:
    """``root/<class_name>/**/<file>`` (ImageNet, UCF-101, Kinetics layouts).

    Classes are the sorted names of the sub-folders that hold at least one media file;
    a file's label is its class's position in that list.
    """
    root = _check_dir(Path(root))
    exts = tuple(extensions)
    names: list[str] = []
    items: list[MediaItem] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = find_files(sub, exts)
        if files:
            items.extend(MediaItem(f, len(names)) for f in files)
            names.append(sub.name)
    return SourceListing(str(root), "classes", tuple(items), tuple(names), exts)


def list_file(path: str | Path) -> SourceListing:
    """A text file with one media path per line, optionally followed by ``\\t<integer label>``.

    Relative paths are relative to the list file's folder; blank lines and lines
    starting with ``#`` are ignored. Order is the file's order. Class names are the
    label numbers as strings (``"0" .. str(max label)``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such list file: {path}")
    items: list[MediaItem] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, label_text = raw.rstrip("\r\n").partition("\t")
        name = name.strip()
        label = -1
        if label_text.strip():
            try:
                label = int(label_text.strip())
            except ValueError as e:
                raise UserError(
                    f"{path}:{lineno}: expected '<path>' or '<path>\\t<integer label>', got {raw!r}"
                ) from e
            if label < 0:
                raise UserError(f"{path}:{lineno}: labels must be >= 0, got {label}")
        p = Path(name)
        items.append(MediaItem(p if p.is_absolute() else path.parent / p, label))
    top = max((it.label for it in items), default=-1)
    return SourceListing(str(path), "list", tuple(items), tuple(str(k) for k in range(top + 1)))


def _looks_like_class_folders(root: Path) -> bool:
    """No media directly in ``root`` and every visible sub-folder holds media somewhere below."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if any(p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS for p in entries):
        return False
    subs = [p for p in entries if p.is_dir()]
    return len(subs) >= 2 and all(find_files(s, MEDIA_EXTENSIONS) for s in subs)


def discover(source: str | Path, kind: str = "auto") -> SourceListing:
    """List a source of kind ``images``, ``videos``, ``classes``, ``list`` or ``auto``.

    ``auto``: a media file is a one-item source; any other file is a list file; a
    folder whose media sit only in two or more sub-folders is a class-folder layout;
    otherwise a video folder if it holds any video, else an image folder.
    Raises a one-line error when the result is empty.
    """
    if kind not in KINDS:
        raise UserError(f"unknown source kind {kind!r}; expected one of {list(KINDS)}")
    path = Path(source)
    auto = kind == "auto"
    if auto:
        if not path.exists():
            raise FileNotFoundError(f"no such source: {path}")
        if path.is_file():
            if path.suffix.lower() in MEDIA_EXTENSIONS:
                return SourceListing(str(path), "videos" if path.suffix.lower() in VIDEO_EXTENSIONS else "images",
                                     (MediaItem(path),))
            kind = "list"
        elif _looks_like_class_folders(path):
            kind = "classes"
        else:
            kind = "videos" if find_files(path, VIDEO_EXTENSIONS) else "images"
    listing = {
        "images": image_folder,
        "videos": video_folder,
        "classes": class_folders,
        "list": list_file,
    }[kind](path)
    if auto and not listing.items:
        listing = SourceListing(str(path), "auto", (), (), MEDIA_EXTENSIONS)
    return listing.require_nonempty()
