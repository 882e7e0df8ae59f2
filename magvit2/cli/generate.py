"""``magvit2 generate`` (class-conditional clips) and ``magvit2 predict`` (continue a video)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from magvit2.cli.common import atomic_output, pick_device

OUT_KINDS = (".mp4", ".gif", ".png")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="DIR", help="generator directory (default: the shipped digits generator)")
    p.add_argument("-o", "--output", required=True, help="output .mp4/.gif (clips side by side) or .png (grid of frames)")
    p.add_argument("--steps", type=int, default=12, help="MaskGIT decoding steps")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--device", default="auto")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate class-conditional clips with a token language model")
    _common(p)
    p.add_argument("--class", dest="label", type=int, action="append", default=None,
                   help="class label (repeatable); omit for unconditional models")
    p.add_argument("--num", type=int, default=8, help="samples per class")
    p.set_defaults(func=run_generate)


def load_generator(model: str | None, device: torch.device):
    from magvit2.generation.pipeline import VideoGenerator
    from magvit2.pretrained import default_model_dir

    return VideoGenerator.from_pretrained(Path(model) if model else default_model_dir("digits-lm")).to(device)


def write_clips(path: Path, videos: torch.Tensor, fps: float, nrow: int) -> None:
    """``videos [b, 3, t, h, w]``: a grid of clips (mp4/gif) or of frames (png, one row per clip)."""
    from magvit2.data.transforms import to_uint8
    from magvit2.data.writers import make_grid, write_image, write_video

    clips = to_uint8(videos)  # [b, t, h, w, c]
    suffix = path.suffix.lower()
    if suffix not in OUT_KINDS:
        raise ValueError(f"output {path} must end in one of {OUT_KINDS}")
    with atomic_output(path) as tmp:
        if suffix == ".png":
            write_image(tmp, make_grid([f for clip in clips for f in clip], nrow=clips.shape[1]))
        else:
            frames = np.stack([make_grid(list(clips[:, i]), nrow=nrow) for i in range(clips.shape[1])])
            write_video(tmp, frames, fps=fps)


def run_generate(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    gen = load_generator(args.model, device)
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    labels = [c for c in (args.label or []) for _ in range(args.num)] or None
    videos = gen.generate(labels, num=args.num, steps=args.steps, guidance_scale=args.guidance,
                          temperature=args.temperature, seed=args.seed)
    write_clips(Path(args.output), videos, args.fps, nrow=args.num)
    print(f"wrote {videos.shape[0]} clip(s) of {videos.shape[2]} frames to {args.output}")
    return 0
