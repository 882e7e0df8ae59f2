"""Fit the codec's static and context priors for a tokenizer on its training data; store them beside the weights.

Usage: ``python recipes/fit_static_prior.py [MODEL_DIR] [--clips N]`` (default: the shipped tokenizer-small).

Tokenizes ``--clips`` deterministic clips of the training split of the data the tokenizer was trained on
(``packaged-all``: the in-package training clips and photos, plus ``runs/data/photos`` when the recipe
fetched them), counts sub-token frequencies (``magvit2.codec.fit_static_prior``) and each bit's value per
neighbourhood context (``magvit2.codec.fit_context_prior``), both with Laplace smoothing, and writes
``static_prior.safetensors`` and ``context_prior.safetensors`` into MODEL_DIR, where
``magvit2 compress --prior static`` / ``--prior context`` find them. Held-out clips and photos are never counted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.codec.context import CONTEXT_PRIOR_FILENAME, fit_context_prior  # noqa: E402
from magvit2.codec.priors import STATIC_PRIOR_FILENAME, default_split, fit_static_prior  # noqa: E402
from magvit2.data import DataConfig, build_dataset  # noqa: E402
from magvit2.models import load_tokenizer  # noqa: E402
from magvit2.pretrained import default_model_dir  # noqa: E402


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--clips", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    model_dir = Path(args.model) if args.model else default_model_dir("tokenizer")
    tok = load_tokenizer(str(model_dir), "cpu")
    photos = ROOT / "runs" / "data" / "photos"
    data = DataConfig(source="packaged-all", num_frames=tok.config.group_frames, resolution=64, image_frames="repeat",
                      clips_per_video=16, random_offset=False, random_crop=False, random_flip=False,
                      photos=str(photos) if photos.is_dir() else "")
    ds = build_dataset(data, train=True)
    step = max(1, len(ds) // args.clips)
    picks = list(range(0, len(ds), step))[: args.clips]
    torch.manual_seed(0)  # the training split's camera-motion clips draw their paths from torch's RNG
    tokens = []
    for i in range(0, len(picks), args.batch):
        video = torch.stack([ds[j]["video"] for j in picks[i:i + args.batch]])
        tokens.append(tok.encode(video))
    tokens = torch.cat(tokens)
    static = fit_static_prior(tokens, default_split(tok.config.token_bits))
    static.save(model_dir / STATIC_PRIOR_FILENAME)
    context = fit_context_prior(tokens, tok.config.token_bits)
    context.save(model_dir / CONTEXT_PRIOR_FILENAME)
    print(f"{len(picks)} clips of {len(ds)}, {tokens.numel()} tokens -> {model_dir / STATIC_PRIOR_FILENAME} "
          f"({static.bits_per_token():.3f} bits/token), {model_dir / CONTEXT_PRIOR_FILENAME} "
          f"({context.bits_per_token(tokens):.3f} bits/token on these clips)")


if __name__ == "__main__":
    main()
