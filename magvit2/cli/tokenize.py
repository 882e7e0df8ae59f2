"""``magvit2 tokenize --model DIR --data SOURCE -o OUT_DIR``: a dataset as token shards.

Resumable (finished shards are skipped) and parallel under ``torchrun`` (each rank writes its own shards).
``--whole-videos`` tokenizes every video of the source whole, streamed, in groups of pictures of ``--gop``
frames (default: the model's ``group_frames``), instead of fixed clips.
"""
from __future__ import annotations

import argparse

from magvit2.cli.common import add_model_arg, data_config, load_tokenizer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="tokenize a dataset into token shards for language-model training")
    add_model_arg(p)
    p.add_argument("--data", required=True, help="a data preset (digits, packaged, ...), a YAML DataConfig, or a folder/list path")
    p.add_argument("-o", "--output", required=True, help="output token directory")
    p.add_argument("--split", choices=["train", "test"], default="train", help="train split (no augmentation) or held-out")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (1 + 4k)")
    p.add_argument("--resolution", type=int, default=None, help="clip height and width")
    p.add_argument("--num-samples", type=int, default=None, help="items for synthetic/digits sources")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--whole-videos", action="store_true",
                   help="tokenize each video whole as a stream of groups of pictures (any length, flat memory)")
    p.add_argument("--gop", type=int, default=None,
                   help="with --whole-videos: frames per group of pictures (default: the model's group_frames)")
    p.add_argument("--max-frames", type=int, default=None, help="with --whole-videos: read at most this many frames per video")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from magvit2.data import build_dataset
    from magvit2.pretrained import default_model_dir
    from magvit2.train import distributed as dist_utils
    from magvit2.errors import UserError
    from magvit2.train.tokenize import tokenize_dataset, tokenize_videos, video_listing

    if not args.whole_videos and (args.gop is not None or args.max_frames is not None):
        raise UserError("--gop and --max-frames apply to --whole-videos only")
    info = dist_utils.init_distributed(args.device)
    try:
        tok = load_tokenizer(args.model, info.device)
        cfg = data_config(args.data, args.frames, args.resolution, args.num_samples)
        model_dir = Path(args.model) if args.model else default_model_dir("tokenizer")
        if args.whole_videos:
            listing = video_listing(cfg, train=args.split == "train")
            gop = args.gop if args.gop is not None else tok.config.group_frames
            out = tokenize_videos(tok, listing, args.output, gop=gop, resolution=cfg.resolution,
                                  max_frames=args.max_frames, rank=info.rank, world_size=info.world_size,
                                  device=info.device, info={"tokenizer": str(model_dir.resolve()),
                                                            "data": cfg.to_dict(), "split": args.split})
            if info.is_main:
                print(f"tokenized {len(listing)} video(s) in groups of {gop} frames into {out}")
            return 0
        if args.split == "train":  # the training split, but deterministic clips: tokens are a fixed dataset
            cfg = dataclasses.replace(cfg, random_offset=False, random_crop=False, random_flip=False)
        ds = build_dataset(cfg, train=args.split == "train")
        out = tokenize_dataset(tok, ds, args.output, shard_size=args.shard_size, batch_size=args.batch_size,
                               num_workers=args.workers, rank=info.rank, world_size=info.world_size,
                               device=info.device, info={"tokenizer": str(model_dir.resolve()),
                                                         "data": cfg.to_dict(), "split": args.split})
        if info.is_main:
            print(f"tokenized {len(ds)} items into {out}")
    finally:
        dist_utils.cleanup()
    return 0

