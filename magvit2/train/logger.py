"""Run logging: TensorBoard scalars, a ``metrics.jsonl`` file, images and clips (rank 0 only)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunLogger"]


class RunLogger:
    """Writes nothing on ranks other than 0."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.dir = Path(out_dir)
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.dir / "metrics.jsonl", "a")
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.dir / "tb"))
                except ImportError:  # tensorboard is optional at run time
                    self._tb = None

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items() if v is not None}
        self._jsonl.write(json.dumps({"step": step, "split": prefix, **{k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(f"{prefix}/{k}", v, step)

    def image(self, name: str, step: int, image: np.ndarray) -> Path | None:
        if not self.enabled:
            return None
        from magvit2.data.writers import write_image

        path = self.dir / "samples" / f"{name}_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, image)
        if self._tb is not None:
            self._tb.add_image(name, image, step, dataformats="HWC")
        return path

    def clip(self, name: str, step: int, frames: np.ndarray, fps: float = 8.0) -> Path | None:
        if not self.enabled:
            return None
        from magvit2.data.writers import write_video

        path = self.dir / "samples" / f"{name}_{step:07d}.gif"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, frames, fps=fps)
        return path

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
