"""``magvit2 eval recon`` (reconstruction metrics of a tokenizer on a dataset) and ``magvit2 eval rd``
(rate-distortion against HEVC, VVC and H.264)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from magvit2.cli.classify import add_eval_parser
from magvit2.cli.common import add_model_arg, data_config, load_tokenizer, pick_device
from magvit2.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a tokenizer: reconstruction metrics or rate-distortion")
    ev = p.add_subparsers(dest="eval_what", required=True, metavar="WHAT")

    r = ev.add_parser("recon", help="PSNR, SSIM, LPIPS, FID (and FVD with --i3d) and codebook usage on a dataset")
    add_model_arg(r)
    r.add_argument("--data", required=True, help="data preset, YAML DataConfig, folder or list file")
    r.add_argument("--split", choices=["train", "test"], default="test")
    r.add_argument("--frames", type=int, default=None)
    r.add_argument("--resolution", type=int, default=None)
    r.add_argument("--max-items", type=int, default=64)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--fid", action="store_true", help="also compute FID (Inception, slow on CPU)")
    r.add_argument("--i3d", default=None, help="I3D TorchScript file for FVD")
    r.add_argument("-o", "--output", default=None, help="write the table as JSON here (and .md beside it)")
    r.add_argument("--device", default="auto")
    r.set_defaults(func=run_recon)

    d = ev.add_parser("rd", help="rate-distortion: magvit2 codec vs x265 (HEVC), vvenc (VVC), x264")
    add_model_arg(d)
    d.add_argument("--videos", required=True, help="a video file or a folder of videos")
    d.add_argument("-o", "--output", required=True, help="output directory (rd.csv, rd.png, rd.md)")
    d.add_argument("--size", type=int, default=None, help="resize the short side first (and centre-crop to a multiple of 8)")
    d.add_argument("--max-frames", type=int, default=17)
    d.add_argument("--codecs", default="hevc,vvc,h264")
    d.add_argument("--no-lpips", action="store_true")
    d.set_defaults(func=run_rd_cmd)
    add_eval_parser(ev)  # eval classify (magvit2.cli.classify)


def run_recon(args: argparse.Namespace) -> int:
    from magvit2.data import build_dataset
    from magvit2.eval.recon import evaluate_reconstruction

    device = pick_device(args.device)
    tok = load_tokenizer(args.model, device)
    cfg = data_config(args.data, args.frames, args.resolution)
    ds = build_dataset(cfg, train=args.split == "train")
    table = evaluate_reconstruction(tok, ds, max_items=args.max_items, batch_size=args.batch_size,
                                    fid=args.fid, i3d=args.i3d, device=device)
    for k, v in table.items():
        print(f"{k:>22}: {v}")
    if args.output:
        from magvit2.files import write_text_atomic

        out = Path(args.output)
        write_text_atomic(out, json.dumps(table, indent=2))
        write_text_atomic(out.with_suffix(".md"), "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in table.items()))
    return 0


def _load_videos(spec: str, size: int | None, max_frames: int) -> dict:
    from magvit2.data.io import VIDEO_EXTENSIONS, read_media
    from magvit2.data.transforms import crop_to_multiple, resize_short_side, to_tensor, to_uint8

    src = Path(spec)
    if not src.exists():
        raise FileNotFoundError(f"videos not found: {src}")
    paths = [src] if src.is_file() else sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not paths:
        raise UserError(f"no videos in {src}; expected files ending in {VIDEO_EXTENSIONS}")
    out = {}
    for p in paths:
        frames = read_media(p, max_frames=max_frames).frames
        if size:
            frames = to_uint8(crop_to_multiple(resize_short_side(to_tensor(frames)[None], size), 8)[0])
        out[p.stem] = frames
    return out


def run_rd_cmd(args: argparse.Namespace) -> int:
    from magvit2.codec import CodecConfig
    from magvit2.eval.rd import run_rd

    tok = load_tokenizer(args.model, "cpu")
    videos = _load_videos(args.videos, args.size, args.max_frames)
    report = run_rd(videos, tok, args.output, codecs=tuple(c for c in args.codecs.split(",") if c),
                    use_lpips=not args.no_lpips, codec_config=CodecConfig(group_frames=tok.config.group_frames))
    print(Path(args.output, "rd.md").read_text() if Path(args.output, "rd.md").is_file() else report)
    return 0
