"""Reading and writing raw frames for the codec's file helpers.

Frames are ``uint8 [t, h, w, 3]`` RGB numpy arrays. Readers: anything the data package
reads (videos, images) and ``.npy``. Writers: ``.npy`` and ``.mkv``
(FFV1 in RGB: lossless, so a written file holds exactly the decoded frames).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["read_frames", "write_frames", "check_frames"]


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate ``uint8 [t, h, w, 3]`` frames; returns them C-contiguous."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a uint8 numpy array [t, h, w, 3], got {type(frames).__name__} "
                         f"{getattr(frames, 'dtype', '')}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must have shape [t, h, w, 3] with t, h, w >= 1, got {frames.shape}")
    return np.ascontiguousarray(frames)


def read_frames(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, Fraction]:
    """All (or the first ``max_frames``) frames of a video or image as ``uint8 [t, h, w, 3]``, and its fps.

    Videos and images go through :func:`magvit2.data.io.read_media`; ``.npy`` files carry
    no frame rate, and images none either: 30 fps is returned for them.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"video not found: {path}")
        frames = np.load(path, allow_pickle=False)
        return check_frames(frames[:max_frames] if max_frames else frames), Fraction(30)
    from magvit2.data.io import read_media

    clip = read_media(path, max_frames=max_frames)
    rate = Fraction(clip.fps).limit_denominator(100_000) if clip.fps else Fraction(30)
    return check_frames(clip.frames), rate


def write_frames(path: str | Path, frames: np.ndarray, fps: float | Fraction = 30) -> None:
    """Write frames losslessly: ``.npy`` (raw array) or ``.mkv`` (FFV1, RGB)."""
    path = Path(path)
    frames = check_frames(frames)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, frames, allow_pickle=False)
        return
    if suffix != ".mkv":
        raise ValueError(f"lossless output needs a .npy or .mkv path, got {path.name!r}")
    from magvit2.data.writers import write_video

    write_video(path, frames, fps=float(fps))
