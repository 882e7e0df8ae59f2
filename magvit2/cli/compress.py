"""``magvit2 compress INPUT -o FILE.m2v`` and ``magvit2 decompress FILE.m2v -o OUTPUT``."""
from __future__ import annotations

import argparse
from pathlib import Path

from magvit2.cli.common import add_model_arg, atomic_output, load_tokenizer, pick_device

PRIORS = ("uniform", "static", "lm")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a video into a token bitstream (.m2v)")
    p.add_argument("input", help="video or image file")
    p.add_argument("-o", "--output", required=True, help="output .m2v file")
    add_model_arg(p)
    p.add_argument("--prior", choices=PRIORS, default="uniform",
                   help="entropy model: uniform (d bits/token), static (per-sub-token table beside the model), "
                        "lm (a masked token model, --lm DIR)")
    p.add_argument("--lm", default=None, help="generator directory for --prior lm (its tokenizer is used)")
    p.add_argument("--size", type=int, default=None, help="resize the short side before coding")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--group", type=int, default=None, help="frames per causal group (1 + 4k); default: the model's")
    p.add_argument("--device", default="cpu", help="cpu keeps probabilities bit-identical across machines")
    p.set_defaults(func=run_compress)

    d = sub.add_parser("decompress", help="decode a .m2v file back to video")
    d.add_argument("input", help=".m2v file")
    d.add_argument("-o", "--output", required=True, help="output .mp4/.gif (viewing) or .mkv/.npy (lossless)")
    add_model_arg(d)
    d.add_argument("--lm", default=None, help="generator directory if the file was coded with --prior lm")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=run_decompress)


def load_codec_models(model: str | None, prior: str, lm_dir: str | None, device):
    """(tokenizer, prior object or None) for a prior kind."""
    from magvit2.codec.priors import STATIC_PRIOR_FILENAME, StaticPrior

    if prior == "lm" and not lm_dir:
        raise ValueError("--prior lm needs --lm DIR (a generator directory)")
    if lm_dir:  # the generator's own tokenizer; its LM is the prior when asked for
        from magvit2.cli.generate import load_generator
        from magvit2.codec.lm import lm_prior

        gen = load_generator(lm_dir, device)
        if prior == "lm":
            if gen.kind != "mlm":
                raise ValueError(f"{lm_dir} holds an autoregressive model; the codec's lm prior uses a masked model")
            return gen.tokenizer, lm_prior(gen.lm)
        tok = gen.tokenizer
    else:
        tok = load_tokenizer(model, device)
    if prior == "static":
        from magvit2.pretrained import default_model_dir

        path = Path(model) if model else default_model_dir("tokenizer")
        if not (path / STATIC_PRIOR_FILENAME).is_file():
            raise FileNotFoundError(f"no {STATIC_PRIOR_FILENAME} in {path}; fit one with magvit2.codec.fit_static_prior")
        return tok, StaticPrior.load(path)
    return tok, None


def run_compress(args: argparse.Namespace) -> int:
    from magvit2.codec import CodecConfig, VideoCodec, resolve_prior
    from magvit2.data.io import read_media

    device = pick_device(args.device)
    tok, prior_obj = load_codec_models(args.model, args.prior, args.lm, device)
    clip = read_media(args.input, max_frames=args.max_frames)
    frames = clip.frames
    if args.size:
        from magvit2.data.transforms import to_tensor, to_uint8
        from magvit2.tokenizer.groups import resize_short_side

        frames = to_uint8(resize_short_side(to_tensor(frames)[None], args.size)[0])
    codec = VideoCodec(tok, resolve_prior(args.prior, prior_obj), CodecConfig(group_frames=args.group or tok.config.group_frames))
    enc = codec.encode(frames, clip.fps or 1.0)
    out = Path(args.output)
    with atomic_output(out) as tmp:
        tmp.write_bytes(enc.data)
    t, h, w = frames.shape[:3]
    print(f"{args.input}: {t} frame(s) {w}x{h} -> {out}  {enc.stats.num_bytes} bytes  "
          f"{enc.stats.bits_per_pixel:.4f} bits/pixel ({args.prior} prior)")
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from magvit2.codec import decompress, read_header
    from magvit2.data.writers import write_video

    device = pick_device(args.device)
    src = Path(args.input)
    if not src.is_file():
        raise FileNotFoundError(f"input not found: {src}")
    data = src.read_bytes()
    header = read_header(data)
    tok, prior_obj = load_codec_models(args.model, header.prior_kind, args.lm, device)
    decoded = decompress(data, tok, prior_obj)
    out = Path(args.output)
    with atomic_output(out) as tmp:
        if out.suffix.lower() in (".mp4", ".mov", ".gif", ".mkv"):
            write_video(tmp, decoded.frames, fps=float(decoded.fps))
        elif out.suffix.lower() == ".npy":
            import numpy as np

            np.save(tmp, decoded.frames)
        else:
            raise ValueError(f"output {out} must end in .mp4, .gif, .mkv or .npy")
    t, h, w = decoded.frames.shape[:3]
    print(f"{src}: {t} frame(s) {w}x{h} -> {out}")
    return 0
