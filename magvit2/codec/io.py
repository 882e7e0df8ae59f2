"""Frames in and out of the codec: the frame check, and lossless writing of decoded frames.

Frames are ``uint8 [t, h, w, 3]`` RGB numpy arrays. Reading goes through
:func:`magvit2.data.io.read_media` (videos, images, ``.npy``); writing through
:func:`magvit2.data.writers.write_frames` (``.npy`` and ``.mkv`` are lossless).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from magvit2.data.io import MediaError
from magvit2.data.writers import write_frames as _write_frames

__all__ = ["write_frames", "check_frames"]


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate ``uint8 [t, h, w, 3]`` frames; returns them C-contiguous."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise MediaError(f"frames must be a uint8 numpy array [t, h, w, 3], got {type(frames).__name__} "
                         f"{getattr(frames, 'dtype', '')}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        raise MediaError(f"frames must have shape [t, h, w, 3] with t, h, w >= 1, got {frames.shape}")
    return np.ascontiguousarray(frames)


def write_frames(path: str | Path, frames: np.ndarray, fps: float | Fraction = 30) -> Path:
    """Write decoded frames (atomically) as the extension says; ``.npy`` and ``.mkv`` keep them bit-exact."""
    return _write_frames(path, check_frames(frames), fps)
