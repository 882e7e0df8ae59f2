"""``magvit2 predict --video IN -o OUT``: continue a video from its first frames."""
from __future__ import annotations

import argparse

import torch

from magvit2.cli.common import pick_device
from magvit2.cli.generate import _common, check_output
from magvit2.data.writers import write_clips
from magvit2.models import load_generator


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="frame prediction: continue a video with a token language model")
    _common(p)
    p.add_argument("--video", required=True, help="input video (its frames are resized to the model's size)")
    p.add_argument("--context", type=int, default=5, help="real frames kept as context (1 + 4k)")
    p.add_argument("--class", dest="label", type=int, default=None, help="class label for conditional models")
    p.add_argument("--num", type=int, default=1, help="continuations to sample")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magvit2.data.io import read_media
    from magvit2.data.transforms import center_crop, resize_short_side, to_tensor

    out = check_output(args.output)
    device = pick_device(args.device)
    gen = load_generator(args.model, device)
    clip = read_media(args.video, max_frames=gen.num_frames)
    video = to_tensor(clip.frames).unsqueeze(0)
    size = gen.config.grid[1] * gen.tokenizer.config.spatial_factor
    if video.shape[-2:] != (size, size):
        video = center_crop(resize_short_side(video, size), size, size)
    video = video.expand(args.num, -1, -1, -1, -1).to(device)
    labels = None if args.label is None else [args.label] * args.num
    pred = gen.predict(video, context_frames=args.context, labels=labels, steps=args.steps,
                       guidance_scale=args.guidance, temperature=args.temperature, seed=args.seed)
    n = min(video.shape[2], pred.shape[2])
    both = torch.cat([video[:, :, :n].cpu(), pred[:, :, :n].cpu()])  # first row: real, then predictions
    write_clips(out, both, args.fps, nrow=args.num)
    print(f"continued {args.video} from {args.context} frames to {pred.shape[2]} frames -> {args.output}")
    return 0
