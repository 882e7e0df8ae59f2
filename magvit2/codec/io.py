"""Reading and writing raw frames for the codec's file helpers.

Frames are ``uint8 [t, h, w, 3]`` RGB numpy arrays. Readers: anything PyAV
opens (mp4, mkv, y4m, ...) and ``.npy``. Writers: ``.npy`` and ``.mkv``
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
    """All (or the first ``max_frames``) frames of a video file as ``uint8 [t, h, w, 3]``, and its fps.

    ``.npy`` files carry no frame rate; 30 fps is returned for them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    if path.suffix.lower() == ".npy":
        frames = np.load(path, allow_pickle=False)
        return check_frames(frames[:max_frames] if max_frames else frames), Fraction(30)
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 30
        for frame in container.decode(stream):
            out.append(frame.to_ndarray(format="rgb24"))
            if max_frames and len(out) >= max_frames:
                break
    if not out:
        raise ValueError(f"{path}: no video frames decoded")
    return check_frames(np.stack(out)), Fraction(rate)


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
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps).limit_denominator(100_000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
