"""Reading videos and images into uint8 numpy arrays (PyAV for video, Pillow for images).

Shape letters: t frames, h height, w width; frames are ``uint8 [t, h, w, 3]`` RGB.

Frame indices are positions in presentation order among the frames a decoder
outputs (index 0 is the first displayed frame). :class:`VideoReader` decodes only
what it needs: it builds a table of presentation timestamps by demuxing packets
(no decoding, a few ms per clip), seeks to the keyframe at or before the first
wanted frame and decodes forward until the last wanted frame. Streams without
usable timestamps fall back to decoding from the start and counting frames.

Errors are one line: a missing path raises :class:`FileNotFoundError` naming it;
a file that is not a readable video or image raises :class:`MediaError`
(a :class:`ValueError`) naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import av
import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from magvit2.data.transforms import resize_frames
from magvit2.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "VideoClip",
    "VideoInfo",
    "VideoReader",
    "MediaStream",
    "stream_media",
    "fps_to_fraction",
    "is_image_path",
    "is_video_path",
    "read_frames",
    "read_image",
    "read_media",
    "read_video",
    "video_info",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif")

DEFAULT_FPS = 25.0  # used only when a container states no frame rate at all
FRAMES_EXTENSION = ".npy"  #: raw ``uint8 [t, h, w, 3]`` frames (no frame rate), read by :func:`read_media`
MAX_FPS_DENOMINATOR = 1001  #: frame rates are kept as fractions with denominators up to this (30000/1001)


class MediaError(UserError):
    """A file exists but is not a readable video or image."""


class VideoClip(NamedTuple):
    """Decoded frames ``uint8 [t, h, w, 3]`` and their frame rate."""

    frames: np.ndarray
    fps: float


@dataclass(frozen=True)
class VideoInfo:
    """Cheap facts about a video file: frame count, frame rate and size in pixels."""

    num_frames: int
    fps: float
    width: int
    height: int


def fps_to_fraction(fps: float | Fraction | int) -> Fraction:
    """The one frame-rate conversion: a positive rate as a small exact fraction (29.97002997 -> 30000/1001).

    Denominators are limited to :data:`MAX_FPS_DENOMINATOR`, which keeps the NTSC rates exact and
    snaps a float read back from a container to the rate it stands for.
    """
    try:
        f = Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)
    except (TypeError, ValueError, OverflowError) as e:
        raise MediaError(f"fps must be a positive finite number, got {fps!r}") from e
    if f <= 0 or f.numerator >= 2**32:
        raise MediaError(f"fps must be positive and below 2**32, got {fps!r}")
    return f


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, expected a video or image file")


def _describe(e: Exception) -> str:
    """``"InvalidDataError: Invalid data found..."`` without FFmpeg repeating the file name."""
    return f"{e.__class__.__name__}: {getattr(e, 'strerror', None) or e}"


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """One decoded frame as ``uint8 [h, w, 3]``, optionally resized to ``size = (h, w)`` by swscale."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    h, w = size
    return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="BICUBIC")


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else DEFAULT_FPS


class VideoReader:
    """Random access to the frames of one video file.

    Open it inside the process that reads (e.g. inside ``Dataset.__getitem__``,
    i.e. in a DataLoader worker), never before a fork; use it as a context manager.

    >>> with VideoReader("clip.mp4") as r:          # doctest: +SKIP
    ...     frames = r.read([0, 4, 8], size=(64, 114))  # uint8 [3, 64, 114, 3]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _check_exists(self.path)
        self._container: av.container.InputContainer | None = None
        self._pts: list[int] | None = None  # presentation timestamps, sorted; None = sequential mode
        self._sequential_count: int | None = None
        self.frames_decoded = 0  # frames decoded by read() so far (shows how little a seek decodes)
        self._open()

    # ----- container handling ------------------------------------------------
    def _open(self) -> None:
        self.close()
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError) as e:
            raise MediaError(f"{self.path}: not a readable video ({_describe(e)})") from e
        if not self._container.streams.video:
            self.close()
            raise MediaError(f"{self.path}: not a readable video (no video stream)")
        self._stream = self._container.streams.video[0]
        self._at_start = True  # nothing demuxed or decoded since opening

    def close(self) -> None:
        if getattr(self, "_container", None) is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, e: Exception) -> MediaError:
        return MediaError(f"{self.path}: not a readable video (decoding failed: {_describe(e)})")

    # ----- metadata ----------------------------------------------------------
    @property
    def fps(self) -> float:
        return _stream_fps(self._stream)

    @property
    def width(self) -> int:
        return int(self._stream.codec_context.width)

    @property
    def height(self) -> int:
        return int(self._stream.codec_context.height)

    @property
    def declared_frames(self) -> int:
        """Frame count written in the container header (0 when the container does not say)."""
        return int(self._stream.frames or 0)

    def _build_table(self) -> None:
        """Demux every packet of the stream once (no decoding) and sort their timestamps."""
        if self._pts is not None or self._sequential_count is not None:
            return
        pts: list[int] = []
        complete = True
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    complete = False
                    break
                pts.append(int(packet.pts))
        except av.error.FFmpegError as e:
            raise self._error(e) from e
        if complete and len(set(pts)) == len(pts):
            self._pts = sorted(pts)
        else:  # no usable timestamps: count by decoding from the start
            self._open()
            self._sequential_count = sum(1 for _ in self._decode_all())
        self._open()  # rewind for reading

    @property
    def num_frames(self) -> int:
        """Exact number of frames (one per demuxed packet, or counted by decoding)."""
        self._build_table()
        return len(self._pts) if self._pts is not None else int(self._sequential_count)

    def info(self) -> VideoInfo:
        return VideoInfo(self.num_frames, self.fps, self.width, self.height)

    # ----- decoding ----------------------------------------------------------
    def _decode_all(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._container.decode(self._stream)
        except av.error.FFmpegError as e:
            raise self._error(e) from e

    def _read_sequential(self, wanted: list[int], size: tuple[int, int] | None) -> dict[int, np.ndarray]:
        self._open()
        out: dict[int, np.ndarray] = {}
        wanted_set, last = set(wanted), max(wanted)
        for i, frame in enumerate(self._decode_all()):
            self.frames_decoded += 1
            if i in wanted_set:
                out[i] = _rgb(frame, size)
            if i >= last:
                break
        return out

    def _read_seek(self, wanted: list[int], size: tuple[int, int] | None) -> dict[int, np.ndarray] | None:
        """Seek to the keyframe before the first wanted frame and decode forward; None if pts don't line up."""
        assert self._pts is not None
        index_of = {p: i for i, p in enumerate(self._pts)}
        first, last = wanted[0], wanted[-1]
        wanted_set = set(wanted)
        out: dict[int, np.ndarray] = {}
        at_start, self._at_start = self._at_start, False
        try:
            if first > 0 or not at_start:
                self._container.seek(self._pts[first], stream=self._stream, backward=True, any_frame=False)
            for frame in self._container.decode(self._stream):
                self.frames_decoded += 1
                if frame.pts is None or frame.pts not in index_of:
                    return None
                i = index_of[frame.pts]
                if not out and i > first:  # landed after the first wanted frame
                    return None
                if i in wanted_set:
                    out[i] = _rgb(frame, size)
                if i >= last:
                    break
        except av.error.FFmpegError as e:
            raise self._error(e) from e
        return out

    def read(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as ``uint8 [len(indices), h, w, 3]``.

        ``size = (h, w)`` resizes each frame (bicubic, antialiased by swscale) while converting to RGB.
        """
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("read: expected at least one frame index")
        n = self.num_frames
        bad = [i for i in indices if i < 0 or i >= n]
        if bad:
            raise IndexError(f"{self.path}: frame indices {bad[:5]} out of range for a video of {n} frames")
        wanted = sorted(set(indices))
        got = self._read_seek(wanted, size) if self._pts is not None else None
        if got is None:
            got = self._read_sequential(wanted, size)
        missing = [i for i in wanted if i not in got]
        if missing:
            raise MediaError(
                f"{self.path}: not a readable video (frames {missing[:5]} of {n} could not be decoded; truncated?)"
            )
        return np.stack([got[i] for i in indices])


def video_info(path: str | Path, exact: bool = False) -> VideoInfo:
    """Frame count, fps, width and height.

    The count comes from the container header when it states one; otherwise (e.g.
    mkv/webm) from demuxing packets. ``exact=True`` decodes every frame and counts
    them, which also catches containers whose header lies or whose tail is truncated.
    """
    with VideoReader(path) as r:
        if exact:
            count = sum(1 for _ in r._decode_all())
            return VideoInfo(count, r.fps, r.width, r.height)
        n = r.declared_frames or r.num_frames
        return VideoInfo(n, r.fps, r.width, r.height)


def read_frames(path: str | Path, indices: Sequence[int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode only the frames at ``indices``: ``uint8 [len(indices), h, w, 3]``."""
    if Path(path).suffix.lower() == ".gif":
        frames = _read_gif(Path(path)).frames
        try:
            picked = frames[np.asarray(indices, dtype=np.int64)]
        except IndexError:
            raise IndexError(f"{path}: frame indices out of range for a GIF of {len(frames)} frames") from None
        return picked if size is None else resize_frames(picked, size)
    with VideoReader(path) as r:
        return r.read(indices, size)


def read_video(path: str | Path, max_frames: int | None = None) -> VideoClip:
    """Decode a whole video (or its first ``max_frames`` frames) into ``uint8 [t, h, w, 3]``."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        clip = _read_gif(path)
        return VideoClip(clip.frames[:max_frames], clip.fps) if max_frames else clip
    with VideoReader(path) as r:
        frames = []
        for frame in r._decode_all():
            frames.append(_rgb(frame, None))
            if max_frames is not None and len(frames) >= max_frames:
                break
        if not frames:
            raise MediaError(f"{path}: not a readable video (no frame could be decoded)")
        return VideoClip(np.stack(frames), r.fps)


class MediaStream(NamedTuple):
    """A media file's frame rate and its frames in chunks ``uint8 [t, h, w, 3]``, decoded as they are consumed."""

    fps: float
    chunks: Iterator[np.ndarray]


def stream_media(path: str | Path, chunk_frames: int = 16, max_frames: int | None = None) -> MediaStream:
    """Frames of a video (or an image, or ``.npy`` frames) in order, ``chunk_frames`` at a time.

    Memory holds one chunk, whatever the video's length (a GIF is decoded whole). The file is
    opened and checked at once, so an unreadable one raises :class:`MediaError` here; a video
    whose decoding fails, or that ends before the frame count its header declares (a file cut
    short), raises :class:`MediaError` while the chunks are consumed.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    path = Path(path)
    if path.suffix.lower() == FRAMES_EXTENSION or is_image_path(path) or path.suffix.lower() == ".gif":
        clip = read_media(path, max_frames)  # memory-mapped (.npy) or small (images, GIFs)
        return MediaStream(clip.fps, (np.ascontiguousarray(clip.frames[i : i + chunk_frames])
                                      for i in range(0, len(clip.frames), chunk_frames)))
    reader = VideoReader(path)
    return MediaStream(reader.fps, _video_chunks(reader, chunk_frames, max_frames))


def _video_chunks(reader: VideoReader, chunk_frames: int, max_frames: int | None) -> Iterator[np.ndarray]:
    with reader:
        declared, count, chunk = reader.declared_frames, 0, []
        for frame in reader._decode_all():
            chunk.append(_rgb(frame, None))
            count += 1
            if len(chunk) == chunk_frames or count == max_frames:
                yield np.stack(chunk)
                chunk = []
            if count == max_frames:
                return
        if chunk:
            yield np.stack(chunk)
        if count == 0:
            raise MediaError(f"{reader.path}: not a readable video (no frame could be decoded)")
        if declared and count < declared:
            raise MediaError(f"{reader.path}: the video ended after {count} of the {declared} frames its header "
                             "declares (file cut short?)")


def _read_gif(path: Path) -> VideoClip:
    _check_exists(path)
    try:
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
            duration_ms = im.info.get("duration") or 0
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"{path}: not a readable video ({e.__class__.__name__}: {e})") from e
    fps = 1000.0 / duration_ms if duration_ms else DEFAULT_FPS
    return VideoClip(np.stack(frames), fps)


def read_image(path: str | Path) -> np.ndarray:
    """An image as ``uint8 [h, w, 3]`` RGB: alpha dropped, grayscale expanded, EXIF rotation applied."""
    path = Path(path)
    _check_exists(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                a = np.clip(a / (65535.0 if a.max() > 255 else 255.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=-1))
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise MediaError(f"{path}: not a readable image ({e.__class__.__name__}: {e})") from e


def read_media(path: str | Path, max_frames: int | None = None) -> VideoClip:
    """A video, an image as a one-frame clip, or ``.npy`` frames ``uint8 [t, h, w, 3]``, chosen by file
    extension. Images and ``.npy`` files state no frame rate: their ``fps`` is 0.0."""
    if Path(path).suffix.lower() == FRAMES_EXTENSION:
        return VideoClip(_read_npy(Path(path), max_frames), 0.0)
    if is_image_path(path):
        return VideoClip(read_image(path)[None], 0.0)
    return read_video(path, max_frames)


def _read_npy(path: Path, max_frames: int | None) -> np.ndarray:
    _check_exists(path)
    try:
        frames = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise MediaError(f"{path}: not a readable .npy array ({e.__class__.__name__}: {e})") from e
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise MediaError(f"{path}: expected uint8 frames [t, h, w, 3], got {frames.dtype} {list(frames.shape)}")
    return np.array(frames[:max_frames] if max_frames else frames)  # a writable copy of what was asked for
