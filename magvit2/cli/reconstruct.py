"""``magvit2 reconstruct INPUT -o OUTPUT [--model DIR]``: tokenize and decode a video or image."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from magvit2.cli.common import add_model_arg, load_tokenizer, pick_device
from magvit2.data.writers import IMAGE_OUTPUTS as IMAGE_OUT
from magvit2.data.writers import VIDEO_OUTPUTS as VIDEO_OUT
from magvit2.errors import UserError

CHUNK_FRAMES = 32  #: frames read, tokenized and written at a time: memory does not grow with the video


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="encode a video/image to tokens and decode it back")
    p.add_argument("input", help="video (mp4/avi/mkv/webm/mov/gif) or image (png/jpg/webp/bmp)")
    p.add_argument("-o", "--output", required=True, help="output .mp4/.gif/.mkv for videos, .png/.jpg for images")
    add_model_arg(p)
    p.add_argument("--size", type=int, default=None, help="resize the short side to this before tokenizing")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    p.add_argument("--gop", "--group", dest="gop", type=int, default=None,
                   help="keyframe interval: frames coded as one causal stream (0: the whole video); default: the "
                        "model's group_frames, the clip length it was trained on")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collections import deque

    import numpy as np
    from einops import rearrange

    from magvit2.data.io import is_image_path, read_media, stream_media
    from magvit2.data.transforms import resize_short_side, to_tensor, to_uint8
    from magvit2.data.writers import write_image, write_video
    from magvit2.eval.metrics import psnr
    from magvit2.tokenizer.stream import reconstruct_stream

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_OUT + IMAGE_OUT:
        raise UserError(f"output {out} must end in one of {VIDEO_OUT + IMAGE_OUT}")
    if suffix in IMAGE_OUT and not is_image_path(args.input):
        n = len(read_media(args.input, max_frames=2).frames)
        if n > 1:
            raise UserError(f"{args.input} is a video (more than one frame); write it to one of {VIDEO_OUT}")
    if args.gop is not None and args.gop < 0:
        raise UserError(f"--gop must be >= 0 frames (0: one stream for the whole video), got {args.gop}")
    device = pick_device(args.device)
    tok = load_tokenizer(args.model, device)
    gop = tok.config.group_frames if args.gop is None else (args.gop or None)
    media = stream_media(args.input, chunk_frames=CHUNK_FRAMES, max_frames=args.max_frames)
    pending: deque = deque()  # input frames read but not yet reconstructed (at most about one chunk)
    total = {"frames": 0, "psnr": 0.0}

    def frames_in():
        for chunk in media.chunks:
            video = to_tensor(chunk).unsqueeze(0).to(device)  # [1, c, t, h, w]
            video = resize_short_side(video, args.size) if args.size else video
            pending.extend(video.unbind(2))
            yield video

    def frames_out():
        for rec in reconstruct_stream(tok, frames_in(), gop):
            real = torch.stack([pending.popleft() for _ in range(rec.shape[2])], dim=2)
            per_frame = psnr(rearrange(real.cpu(), "b c t h w -> (b t) c 1 h w"),
                             rearrange(rec.cpu(), "b c t h w -> (b t) c 1 h w"))
            total["frames"] += rec.shape[2]
            total["psnr"] += float(per_frame.sum())
            total["size"] = rec.shape[3:]
            yield to_uint8(rec[0])

    t0 = time.perf_counter()
    if suffix in IMAGE_OUT:
        write_image(out, np.concatenate(list(frames_out()))[0])
    else:
        write_video(out, frames_out(), fps=media.fps or 25.0)
    dt = time.perf_counter() - t0
    t, (h, w) = total["frames"], total["size"]
    print(f"{args.input}: {t} frame(s) {w}x{h} -> {out}  PSNR {total['psnr'] / t:.2f} dB  ({t / dt:.1f} frames/s)")
    return 0
