"""Per-frame PSNR against frame position when a tokenizer runs as one causal stream.

A model trained on short clips has only seen latents whose temporal receptive field reaches back
into the zero padding before a clip's first frame. In one long causal stream, latents after the
first ``field`` frames see none: this measures what that does to quality, frame by frame, against
the same frames coded in independent groups (each group restarts the stream).

    nice -n 19 python benchmarks/stream_psnr.py [--model DIR] [--frames 201] [-o outputs/stream_psnr]

Writes ``per_frame.csv`` (frame, video, mode, psnr) and ``summary.md`` (mean PSNR over frame
position bins) into the output folder, and prints the summary. Re-run it after retraining the model.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from einops import rearrange

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.data.io import read_video  # noqa: E402
from magvit2.data.packaged import packaged_videos  # noqa: E402
from magvit2.data.transforms import crop_to_multiple, resize_short_side, to_tensor  # noqa: E402
from magvit2.eval.metrics import psnr  # noqa: E402
from magvit2.pretrained import default_model_dir  # noqa: E402
from magvit2.tokenizer import VideoTokenizer  # noqa: E402
from magvit2.tokenizer.groups import reconstruct_video  # noqa: E402
from magvit2.tokenizer.stream import temporal_receptive_field  # noqa: E402

BINS = ((0, 1), (1, 5), (5, 17), (17, 33), (33, 65), (65, 129), (129, 10**9))


def load_clip(path: Path, frames: int, size: int) -> torch.Tensor:
    """``[1, 3, frames, h, w]`` in [-1, 1]: the video played forward then backward until long enough."""
    clip = read_video(path).frames
    while len(clip) < frames:
        clip = torch.cat([torch.from_numpy(clip), torch.from_numpy(clip[::-1].copy())]).numpy()
    video = resize_short_side(to_tensor(clip[:frames]).unsqueeze(0), size)
    return crop_to_multiple(video, 4).contiguous()


@torch.no_grad()
def stream_reconstruct(tok: VideoTokenizer, video: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    tokens = list(tok.encode_stream(video.split(chunk, dim=2)))
    return torch.cat(list(tok.decode_stream(tokens)), dim=2)[:, :, : video.shape[2]].clamp(-1, 1)


def per_frame_psnr(real: torch.Tensor, fake: torch.Tensor) -> list[float]:
    r = rearrange(real, "b c t h w -> (b t) c 1 h w")
    f = rearrange(fake, "b c t h w -> (b t) c 1 h w")
    return [float(x) for x in psnr(r, f, quantize=True)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="tokenizer directory (default: the shipped tokenizer)")
    p.add_argument("--frames", type=int, default=201)
    p.add_argument("--size", type=int, default=64, help="short side in pixels")
    p.add_argument("-o", "--output", default="outputs/stream_psnr")
    args = p.parse_args()
    torch.set_num_threads(1)
    model_dir = Path(args.model) if args.model else default_model_dir("tokenizer")
    tok = VideoTokenizer.from_pretrained(model_dir)
    cfg = tok.config
    rf = temporal_receptive_field(cfg)
    g = cfg.group_frames  # the trained clip length, then groups 2x and 4x as long (still 1 + 4k frames)
    modes = {"stream": None, **{f"groups of {n}": n for n in dict.fromkeys((g, 2 * g - 1, 4 * g - 3, 17))}}
    videos = {p.name: p for p in packaged_videos() if p.name in ("carphone_pristine.mp4", "bikes.mp4")}
    rows = []
    for name, path in videos.items():
        video = load_clip(path, args.frames, args.size)
        for mode, group in modes.items():
            rec = stream_reconstruct(tok, video) if group is None else reconstruct_video(tok, video, group)
            rows += [(i, name, mode, v) for i, v in enumerate(per_frame_psnr(video, rec))]
        print(f"{name}: {tuple(video.shape[2:])} done", flush=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_frame.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("frame", "video", "mode", "psnr")] + [(i, n, m, f"{v:.3f}") for i, n, m, v in rows])
    head = "| video | mode | " + " | ".join(f"frames {a}-{min(b, args.frames) - 1}" for a, b in BINS if a < args.frames) + " |"
    lines = [f"model `{model_dir.name}` (group_frames {cfg.group_frames}, encoder field {rf.encoder} frames), "
             f"{args.frames} frames, short side {args.size}; mean PSNR (dB) by frame position", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for name in videos:
        for mode in modes:
            vals = [[v for i, n, m, v in rows if n == name and m == mode and a <= i < b] for a, b in BINS if a < args.frames]
            lines.append(f"| {name} | {mode} | " + " | ".join(f"{sum(x) / len(x):.2f}" for x in vals) + " |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
