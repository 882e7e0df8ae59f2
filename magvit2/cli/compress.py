"""``magvit2 compress INPUT -o FILE.mv2c`` and ``magvit2 decompress FILE.mv2c -o OUTPUT``: thin wrappers
over :func:`magvit2.codec.compress_file` / :func:`magvit2.codec.decompress_file` and
:func:`magvit2.models.load_codec_models`."""
from __future__ import annotations

import argparse
from pathlib import Path

from magvit2.cli.common import add_model_arg, pick_device
from magvit2.codec.compress import FILE_EXTENSION
from magvit2.codec.priors import prior_kinds


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help=f"compress a video into a token bitstream ({FILE_EXTENSION})")
    p.add_argument("input", help="video, image or .npy frames file")
    p.add_argument("-o", "--output", required=True, help=f"output {FILE_EXTENSION} file")
    add_model_arg(p)
    p.add_argument("--prior", choices=prior_kinds(), default="uniform",
                   help="entropy model: uniform (d bits/token), static (per-sub-token table beside the model), "
                        "lm (a masked token model, --lm DIR), context (per-bit tables given neighbouring bits, beside "
                        "the model)")
    p.add_argument("--lm", default=None, help="generator directory for --prior lm (its tokenizer is used)")
    p.add_argument("--size", type=int, default=None, help="resize the short side before coding")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--gop", "--group", dest="group", type=int, default=None,
                   help="keyframe interval: frames per causal group (1 + 4k), each one causal stream that a decoder "
                        "can start at; default: the model's group_frames, the clip length it was trained on")
    p.add_argument("--device", default="cpu", help="cpu keeps probabilities bit-identical across machines")
    p.set_defaults(func=run_compress)

    d = sub.add_parser("decompress", help=f"decode a {FILE_EXTENSION} file back to video")
    d.add_argument("input", help=f"{FILE_EXTENSION} file")
    d.add_argument("-o", "--output", required=True, help="output .mp4/.gif (viewing) or .mkv/.npy (lossless)")
    add_model_arg(d)
    d.add_argument("--lm", default=None, help="generator directory if the file was coded with --prior lm")
    d.add_argument("--device", default="cpu")
    d.add_argument("--max-pixels", type=int, default=None,
                   help="refuse files whose frames have more pixels than this (default 2**21: 1920x1080 fits)")
    d.add_argument("--max-frames", type=int, default=None,
                   help="refuse files with more frames than this (default 10,000)")
    d.add_argument("--max-group-frames", type=int, default=None,
                   help="refuse files with more frames decoded at once than this (default 1,024)")
    d.set_defaults(func=run_decompress)


def run_compress(args: argparse.Namespace) -> int:
    from magvit2.codec import CodecConfig, compress_file
    from magvit2.models import load_codec_models

    tok, prior = load_codec_models(args.model, args.prior, args.lm, pick_device(args.device))
    config = CodecConfig(group_frames=args.group or tok.config.group_frames)
    stats = compress_file(args.input, args.output, tok, prior, config=config, max_frames=args.max_frames,
                          size=args.size)
    print(f"{args.input}: {stats.num_frames} frame(s) {stats.width}x{stats.height} -> {args.output}  "
          f"{stats.num_bytes} bytes  {stats.bits_per_pixel:.4f} bits/pixel ({args.prior} prior)")
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from magvit2.codec import DecodeLimits, decompress_to_file, read_header
    from magvit2.data.writers import FRAMES_OUTPUT, VIDEO_OUTPUTS
    from magvit2.errors import UserError
    from magvit2.models import load_codec_models

    src, out = Path(args.input), Path(args.output)
    if out.suffix.lower() not in VIDEO_OUTPUTS + (FRAMES_OUTPUT,):
        raise UserError(f"output {out} must end in one of {VIDEO_OUTPUTS + (FRAMES_OUTPUT,)}")
    if not src.is_file():
        raise FileNotFoundError(f"input not found: {src}")
    given = {"max_pixels": args.max_pixels, "max_frames": args.max_frames, "max_group_frames": args.max_group_frames}
    limits = DecodeLimits(**{k: v for k, v in given.items() if v is not None})
    header = read_header(src.read_bytes(), limits)
    tok, prior = load_codec_models(args.model, header.prior_kind, args.lm, pick_device(args.device))
    header = decompress_to_file(src, out, tok, prior, limits)
    print(f"{src}: {header.num_frames} frame(s) {header.width}x{header.height} -> {out}")
    return 0
