"""``magvit2 generate`` (class-conditional clips) and ``magvit2 predict`` (continue a video)."""
from __future__ import annotations

import argparse
from pathlib import Path

from magvit2.errors import UserError
from magvit2.cli.common import pick_device
from magvit2.data.writers import IMAGE_OUTPUTS, VIDEO_OUTPUTS, write_clips
from magvit2.models import load_generator

OUT_KINDS = VIDEO_OUTPUTS + IMAGE_OUTPUTS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="DIR", help="generator directory (default: the shipped digits generator)")
    p.add_argument("-o", "--output", required=True, help="output .mp4/.gif (clips side by side) or .png (grid of frames)")
    p.add_argument("--steps", type=int, default=12, help="MaskGIT decoding steps")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--device", default="auto")


def check_output(path: str) -> Path:
    """Fail before any work when the output's extension cannot be written."""
    out = Path(path)
    if out.suffix.lower() not in OUT_KINDS:
        raise UserError(f"output {out} must end in one of {OUT_KINDS}")
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate class-conditional clips with a token language model")
    _common(p)
    p.add_argument("--class", dest="label", type=int, action="append", default=None,
                   help="class label (repeatable); omit for unconditional models")
    p.add_argument("--num", type=int, default=8, help="samples per class")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    out = check_output(args.output)
    if args.num < 1:
        raise UserError(f"--num must be >= 1, got {args.num}")
    gen = load_generator(args.model, pick_device(args.device))
    labels = [c for c in (args.label or []) for _ in range(args.num)] or None
    videos = gen.generate(labels, num=args.num, steps=args.steps, guidance_scale=args.guidance,
                          temperature=args.temperature, seed=args.seed)
    write_clips(out, videos, args.fps, nrow=args.num)
    print(f"wrote {videos.shape[0]} clip(s) of {videos.shape[2]} frames to {args.output}")
    return 0
