"""Equal-budget tokenizer study: candidate configs trained for the same CPU time, compared on held-out clips.

    python benchmarks/tokenizer_study.py --budget 360 --photos runs/data/photos --out runs/study

Every candidate starts from scratch on the same data (the in-package clips and photos plus camera
motion over the recipe's photos, 17x64x64 crops, batch 2), is trained until its process has used
``--budget`` CPU seconds (``time.process_time``: fair when other jobs share the cores, unlike wall
clock), and is then measured on the shipped tokenizer card's held-out slice (carphone clips and the
two held-out photos, 17-frame groups): PSNR, LPIPS and bits per pixel with the uniform prior. No EMA
(it lags at a few hundred steps). Results go to ``OUT/study.csv`` and are printed as a Markdown table.

Candidates (``--only NAME ...`` runs a subset):

* ``base``: the shipped layout (base 16 channels, multipliers 1-2-4: 4x spatial, 12 bits);
* ``bits16``: the same with 16 bits per token (still <= 0.30 bpp at 4x spatial on 17 frames);
* ``wide``: base 32 channels (4x the convolution cost);
* ``s8x``: multipliers 1-2-4-4 (8x spatial) with 18 bits;
* ``gan0``: ``base`` with the GAN from the first step (the others turn it on after the budget's first third);
* ``nogan``: ``base`` without the GAN;
* ``crop96``: ``base`` trained on 96x96 crops (2.25x the pixels per step; measured on the same 64x64 slice).

Rows of candidates not run this time are kept from an earlier ``OUT/study.csv``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.pretrained.cards import tokenizer_metrics  # noqa: E402
from magvit2.train.config import TokenizerTrainConfig  # noqa: E402
from magvit2.train.tokenizer_trainer import TokenizerTrainer  # noqa: E402

CANDIDATES: dict[str, list[str]] = {
    "base": [],
    "bits16": ["model.bits=16"],
    "wide": ["model.base_channels=32"],
    "s8x": ["model.channel_multipliers=[1,2,4,4]", "model.bits=18", "model.temporal_downsample=[true,true,false]"],
    "gan0": ["loss.adversarial.discriminator_start=0"],
    "nogan": ["loss.adversarial.discriminator_start=1000000000"],
    "crop96": ["data.resolution=96"],
}


def _common(out: Path, name: str, photos: str, gan_start: int) -> list[str]:
    return [
        f"out_dir={out / name}", "steps=100000", "batch_size=2", "ema_decay=0", "progress=false",
        "log_every=1000000", "eval_every=1000000", "ckpt_every=1000000",
        "model.group_frames=17", "data.num_frames=17", f"data.photos={photos}", "data.photo_clips=2",
        f"loss.adversarial.discriminator_start={gan_start}",
    ]


def run_candidate(name: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    cfg = TokenizerTrainConfig.load("small", _common(args.out, name, args.photos, args.gan_start) + CANDIDATES[name])
    trainer = TokenizerTrainer(cfg)
    batches = trainer._batches()
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    while time.process_time() - start_cpu < args.budget:
        trainer.train_step([next(batches)])
        trainer.step += 1
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    model = trainer.model.eval()
    metrics = tokenizer_metrics(model)
    latent = cfg.model.latent_shape(17, 64, 64)
    bpp = latent[0] * latent[1] * latent[2] * cfg.model.bits / (17 * 64 * 64)
    row = {"candidate": name, "overrides": " ".join(CANDIDATES[name]) or "(shipped layout)",
           "params": sum(p.numel() for p in model.parameters()), "steps": trainer.step,
           "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "bpp": round(bpp, 4),
           "psnr": metrics["psnr"], "lpips": metrics["lpips"], "perplexity": metrics["perplexity"]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=360.0, help="CPU seconds of training per candidate")
    p.add_argument("--photos", default="runs/data/photos", help="folder prepared by recipes/prepare_photos.py")
    p.add_argument("--out", type=Path, default=Path("runs/study"))
    p.add_argument("--gan-start", type=int, default=40, help="GAN start step for all but gan0")
    p.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    args = p.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "study.csv"
    rows = []
    if path.exists():  # earlier candidates stay unless rerun now
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["candidate"] not in args.only]
    for name in args.only:
        rows.append(run_candidate(name, args))
        with path.open("w", newline="") as f:  # rewritten after each candidate: partial results survive
            w = csv.DictWriter(f, fieldnames=list(rows[-1]))
            w.writeheader()
            w.writerows(rows)
    print("\n| candidate | overrides | params | steps | CPU s | bpp | PSNR (dB) | LPIPS | perplexity |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['candidate']} | `{r['overrides']}` | {int(r['params']):,} | {r['steps']} | {r['cpu_s']} | "
              f"{r['bpp']} | {r['psnr']} | {r['lpips']} | {r['perplexity']} |")


if __name__ == "__main__":
    main()
