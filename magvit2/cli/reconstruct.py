"""``magvit2 reconstruct INPUT -o OUTPUT [--model DIR]``: tokenize and decode a video or image."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from magvit2.cli.common import add_model_arg, load_tokenizer, pick_device
from magvit2.data.writers import IMAGE_OUTPUTS as IMAGE_OUT
from magvit2.data.writers import VIDEO_OUTPUTS as VIDEO_OUT
from magvit2.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="encode a video/image to tokens and decode it back")
    p.add_argument("input", help="video (mp4/avi/mkv/webm/mov/gif) or image (png/jpg/webp/bmp)")
    p.add_argument("-o", "--output", required=True, help="output .mp4/.gif/.mkv for videos, .png/.jpg for images")
    add_model_arg(p)
    p.add_argument("--size", type=int, default=None, help="resize the short side to this before tokenizing")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    p.add_argument("--group", type=int, default=None, help="frames per causal group (1 + 4k); default: the model's")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magvit2.data.io import read_media
    from magvit2.data.transforms import resize_short_side, to_tensor, to_uint8
    from magvit2.data.writers import write_frames
    from magvit2.eval.metrics import psnr
    from magvit2.tokenizer.groups import reconstruct_video

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_OUT + IMAGE_OUT:
        raise UserError(f"output {out} must end in one of {VIDEO_OUT + IMAGE_OUT}")
    device = pick_device(args.device)
    tok = load_tokenizer(args.model, device)
    clip = read_media(args.input, max_frames=args.max_frames)
    frames = clip.frames
    if frames.shape[0] > 1 and suffix in IMAGE_OUT:
        raise UserError(f"{args.input} is a video ({frames.shape[0]} frames); write it to one of {VIDEO_OUT}")
    video = to_tensor(frames).unsqueeze(0).to(device)
    if args.size:
        video = resize_short_side(video, args.size)
        frames = to_uint8(video[0])
    t0 = time.perf_counter()
    rec = reconstruct_video(tok, video, args.group)
    dt = time.perf_counter() - t0
    rec_frames = to_uint8(rec[0])
    write_frames(out, rec_frames, fps=clip.fps or 25.0)
    score = float(psnr(video.cpu(), rec.cpu()).mean())
    t, h, w = frames.shape[:3]
    print(f"{args.input}: {t} frame(s) {w}x{h} -> {out}  PSNR {score:.2f} dB  ({t / dt:.1f} frames/s)")
    return 0
