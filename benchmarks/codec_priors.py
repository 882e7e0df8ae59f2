"""Bits per pixel of the same tokens under each codec prior, and under general-purpose compressors.

    python benchmarks/codec_priors.py                 # the shipped tokenizer-small and its fitted priors
    python benchmarks/codec_priors.py --model DIR --frames 51 --sizes 64 128

Held-out data only (the priors were fitted on training clips): the packaged test video (carphone,
first ``--frames`` frames, groups of the tokenizer's length) and the two held-out photos as static
17-frame clips, each resized (short side) and centre-cropped to a square of every ``--sizes``. Every
prior codes the same tokens, so the pixels are identical; only the rate differs. The peers are
zlib (level 9) and LZMA (preset 9 extreme) on the tokens packed tightly (``bits`` bits per token,
group after group), which is what a user would reach for without a learned model; "lzma/group"
compresses each group alone, as the codec does (a decoder can start at any group). Every magvit2
file is decoded and checked token-exact. Writes a Markdown table to stdout and rows to ``--csv``.
"""
from __future__ import annotations

import argparse
import csv
import lzma
import zlib
from pathlib import Path

import numpy as np
import torch

from magvit2.codec import CodecConfig, PriorSource, VideoCodec, load_prior
from magvit2.data.io import read_media
from magvit2.data.packaged import packaged_split
from magvit2.data.transforms import center_crop, resize_short_side, to_tensor, to_uint8
from magvit2.models import load_tokenizer
from magvit2.pretrained import default_model_dir

PRIORS = ("uniform", "static", "context")


def _clips(frames: int, size: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for path in packaged_split("test", "videos"):
        video = read_media(path, max_frames=frames).frames
        out.append((path.stem, video))
    for path in packaged_split("test", "images"):
        image = read_media(path).frames[:1]
        out.append((f"{path.stem} (static)", np.repeat(image, 17, axis=0)))
    return [(name, to_uint8(center_crop(resize_short_side(to_tensor(v)[None], size), size, size)[0]))
            for name, v in out]


def _packed(tokens: list[torch.Tensor], bits: int) -> bytes:
    idx = torch.cat([t.reshape(-1) for t in tokens]).numpy().astype(np.int64)
    planes = ((idx[:, None] >> np.arange(bits)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1)).tobytes()


def _lzma(data: bytes) -> bytes:
    return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None,
                   help="tokenizer directory with its fitted priors (default: the shipped one)")
    p.add_argument("--frames", type=int, default=51)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--csv", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    model_dir = Path(args.model) if args.model else default_model_dir("tokenizer")
    tok = load_tokenizer(model_dir)
    priors = {kind: load_prior(kind, PriorSource(tok, model_dir)) for kind in PRIORS}
    config = CodecConfig(group_frames=tok.config.group_frames)
    rows = []
    for size in args.sizes:
        for name, frames in _clips(args.frames, size):
            pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
            row = {"clip": name, "frames": frames.shape[0], "size": size}
            ref = None
            for kind in PRIORS:
                codec = VideoCodec(tok, priors[kind], config)
                enc = codec.encode(frames, 25.0)
                dec = codec.decode_tokens(enc.data)[1]
                ref = ref if ref is not None else enc.tokens
                if not all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(dec, enc.tokens, ref)):
                    raise RuntimeError(f"{kind} prior: tokens differ after a round trip")
                row[kind] = 8 * enc.stats.num_bytes / pixels
                header = enc.stats.header_bytes
            raw = _packed(ref, tok.config.token_bits)
            row["zlib"] = 8 * (header + len(zlib.compress(raw, 9))) / pixels
            row["lzma"] = 8 * (header + len(_lzma(raw))) / pixels
            per_group = sum(len(_lzma(_packed([g], tok.config.token_bits))) for g in ref)
            row["lzma/group"] = 8 * (header + per_group) / pixels
            rows.append(row)
    cols = [*PRIORS, "zlib", "lzma", "lzma/group"]
    print("| clip | frames | size | " + " | ".join(f"{c} bpp" for c in cols)
          + " | context / uniform | context / lzma/group |")
    print("|---|---|---|" + "---|" * (len(cols) + 2))
    for r in rows:
        print(f"| {r['clip']} | {r['frames']} | {r['size']} | " + " | ".join(f"{r[c]:.4f}" for c in cols)
              + f" | {r['context'] / r['uniform']:.3f} | {r['context'] / r['lzma/group']:.3f} |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["clip", "frames", "size", *cols])
            w.writeheader()
            w.writerows({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


if __name__ == "__main__":
    main()
