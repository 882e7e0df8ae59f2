"""Tokenizer training-step time (generator + discriminator step) for presets.

(The side-by-side comparison with lucidrains' magvit2-pytorch trainer is not implemented yet.)

    python benchmarks/train_step.py                       # tiny and small presets
    python benchmarks/train_step.py --presets image-128 --batch 1 --frames 1 --size 128

Each preset is timed over ``--steps`` iterations after one warm-up, GAN on (the discriminator
steps too), LPIPS on.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time

import torch
from torch.utils.data import Dataset

from magvit2.losses.adversarial import AdversarialConfig
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.tokenizer_trainer import TokenizerTrainer


class Noise(Dataset):
    def __init__(self, frames: int, size: int) -> None:
        self.shape = (3, frames, size, size)

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict:
        return {"video": torch.rand(self.shape, generator=torch.Generator().manual_seed(i)) * 2 - 1, "label": 0, "index": i}


def time_ours(preset: str, batch: int, frames: int, size: int, steps: int) -> float:
    base = TokenizerTrainConfig.preset(preset)
    loss = dataclasses.replace(base.loss, adversarial=AdversarialConfig(discriminator_start=0, r1_interval=16))
    with tempfile.TemporaryDirectory() as d:
        cfg = dataclasses.replace(base, batch_size=batch, out_dir=d, progress=False, device="cpu", loss=loss,
                                  precision="fp32")
        tr = TokenizerTrainer(cfg, Noise(frames, size), eval_dataset=Noise(frames, size))
        batches = tr._batches()
        tr.train_step([next(batches)])  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step([next(batches)])
        return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    print(f"# tokenizer train step, batch {args.batch} x {args.frames}x{args.size}x{args.size}, "
          f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| preset | s/step | clips/s |")
    print("|---|---|---|")
    for p in args.presets.split(","):
        ours = time_ours(p, args.batch, args.frames, args.size, args.steps)
        print(f"| {p} | {ours:.3f} | {args.batch / ours:.2f} |")


if __name__ == "__main__":
    main()
