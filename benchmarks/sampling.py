"""Sampling speed: MaskGIT decoding (12 and 24 steps) against autoregressive decoding with a KV cache.

Generates one 5x16x16 token grid (1280 tokens of 18 bits, split 9 + 9: the video-17x128
setting) per sample, with randomly initialised weights (speed does not depend on them),
without classifier-free guidance (guidance doubles every cost), and reports tokens per
second and ratios. Two network sizes:

* ``tiny``: the tiny preset's transformer (2 layers, width 64) on the 5x16x16 grid;
* ``paper-width``: the video-17x128 transformer (width 1024, 16 heads) with a reduced
  depth (``--paper-depth``, default 2 of 24) so that the run stays within minutes on CPU;
  at full depth both samplers are roughly ``24 / paper-depth`` times slower.

(Without the cache the AR sampler recomputes the whole prefix for every token, O(n^2)
forwards in total; at 1280 tokens that takes minutes even for the tiny network, so it is
not timed here; tests check that both paths give the same tokens.)

    python benchmarks/sampling.py [--batch 1] [--paper-depth 2] [--threads 2] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

from magvit2.generation import AutoregressiveTokenModel, LMConfig, MaskedTokenModel, ar_sample, maskgit_sample

GRID = (5, 16, 16)


def configs(paper_depth: int) -> dict[str, LMConfig]:
    tiny = LMConfig.preset("tiny", grid=GRID, bits=18, groups=2, num_classes=0)
    paper = LMConfig.preset("video-17x128", depth=paper_depth, dropout=0.0, num_classes=0)
    return {"tiny (2 x 64)": tiny, f"paper-width ({paper_depth} of 24 layers x 1024)": paper}


def time_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(batch: int, paper_depth: int) -> list[dict]:
    rows = []
    for name, cfg in configs(paper_depth).items():
        torch.manual_seed(0)
        mlm = MaskedTokenModel(cfg).eval()
        ar = AutoregressiveTokenModel(cfg).eval()
        n, bits = cfg.seq_len, cfg.bits_per_group
        gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
        maskgit_sample(mlm.logits, batch, n, bits, 1, generator=gen())  # warm-up
        results = []
        for steps in (12, 24):
            sec = time_call(lambda: maskgit_sample(mlm.logits, batch, n, bits, steps, generator=gen()))
            results.append((f"MaskGIT, {steps} steps", sec))
        sec = time_call(lambda: ar_sample(ar, batch, use_cache=True, generator=gen()))
        results.append(("AR, KV cache", sec))
        base = results[0][1]
        for sampler, sec in results:
            rows.append(dict(model=name, sampler=sampler, seconds=sec, tps=batch * n / sec, rel=sec / base))
            print(f"{name:40s} {sampler:22s} {sec:8.2f} s  {batch * n / sec:10.1f} tok/s  {sec / base:6.2f}x", flush=True)
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# Sampling speed: MaskGIT vs autoregressive",
        "",
        f"Command: `python benchmarks/sampling.py --batch {args.batch} --paper-depth {args.paper_depth} --threads {args.threads}`",
        "",
        f"Machine: {args.machine}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}; date {datetime.date.today().isoformat()}.",
        "",
        f"One 5x16x16 grid (1280 tokens, 18 bits as 9 + 9) per sample, batch {args.batch}, random weights, "
        "no classifier-free guidance (guidance doubles every cost). "
        "Time relative to MaskGIT with 12 steps of the same network (lower is faster).",
        "",
        "| network | sampler | seconds | tokens / s | time vs MaskGIT-12 |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['seconds']:.2f} | {r['tps']:.1f} | {r['rel']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--paper-depth", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--machine", default=f"{platform.machine()} CPU")
    parser.add_argument("--out", default=None, help="write the markdown table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args.batch, args.paper_depth)
    text = markdown(rows, args)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
