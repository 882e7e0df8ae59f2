"""A long structured fuzz campaign of the codec: every mutant must be refused with a CodecError or decode.

    nice -n 19 python benchmarks/codec_fuzz.py --inputs 100000          # `make fuzz`
    python benchmarks/codec_fuzz.py --inputs 50000 --first 50000         # the second half, in another process
    python benchmarks/codec_fuzz.py --inputs 2000 --model DIR            # a trained tokenizer
    python benchmarks/codec_fuzz.py --attacks                            # the issue's forged files, timed

The seed files (uniform, static, LM and context prior) come from the ``tiny`` preset with
fixed random weights, or from ``--model``. Mutants are those of
:mod:`magvit2.codec.fuzz` (header fields, sub-token split, group table,
payloads; sizes and CRCs recomputed) and are decoded fully with the limits
below. Input ``i`` is reproducible from ``(--seed, i)``: a crash line names it.
Prints a Markdown summary (and appends it to --out if given); exits 1 on any crash.

``--attacks`` instead times the hand-made attacks on a 17x128x128 clip coded by
the shipped tokenizer (default limits): its width forged 8x, a 65535x65535
header (with the default limits and with them lifted), and garbage payloads of
the right length with valid CRCs (how many are accepted).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import resource
import zlib
from dataclasses import replace

import numpy as np
import torch

from magvit2.codec import CodecConfig, CodecError, DecodeLimits, VideoCodec
from magvit2.codec.container import GroupEntry, pack_raw_header, parse_raw_header
from magvit2.codec.fuzz import run_fuzz, seed_corpus
from magvit2.models import load_tokenizer
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer


def _forge(data: bytes, payload: bytes | None = None, **fields) -> bytes:
    raw, pos = parse_raw_header(data)
    payload = data[pos:] if payload is None else payload
    raw = replace(raw, **fields)
    groups = (GroupEntry(raw.groups[0].frames, len(payload), zlib.crc32(payload)),)
    return pack_raw_header(replace(raw, groups=groups)) + payload


def attacks(model: str | None) -> str:
    """The issue's forged files against a 17x128x128 clip of the shipped (or --model) tokenizer, timed."""
    tok = load_tokenizer(model)
    frames = np.random.default_rng(0).integers(0, 256, (17, 128, 128, 3), dtype=np.uint8)
    codec = VideoCodec(tok, config=CodecConfig(group_frames=17))
    data = codec.encode(frames, fps=25).data
    rows = ["| attack (CRCs recomputed) | outcome | time | peak RSS growth |", "|---|---|---|---|"]

    def run(name: str, blob: bytes, limits: DecodeLimits | None = None) -> None:
        rss0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        try:
            codec.decode(blob, limits)
            outcome = "decoded"
        except CodecError as e:
            outcome = f"refused: {str(e)[:90]}"
        dt = time.perf_counter() - t0
        grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        rows.append(f"| {name} | {outcome} | {1000 * dt:.1f} ms | {grow:.0f} MB |")

    run(f"none ({len(data):,}-byte file of 17x128x128)", data)
    run("width 128 -> 1024", _forge(data, width=1024))
    run("65535x65535 frames", _forge(data, width=65535, height=65535))
    run("65535x65535, limits lifted", _forge(data, width=65535, height=65535), DecodeLimits(max_pixels=2**32))
    payload_len = len(data) - parse_raw_header(data)[1]
    rng, accepted, tries = np.random.default_rng(1), 0, 1000
    for _ in range(tries):
        try:
            codec.decode_tokens(_forge(data, rng.integers(0, 256, payload_len, dtype=np.uint8).tobytes()))
            accepted += 1
        except CodecError:
            pass
    rows.append(f"| garbage payload of the right length, {tries} tries | {accepted} accepted | | |")
    return "\n".join([f"Tokenizer: {model or 'shipped tokenizer-small'}; default DecodeLimits.", "", *rows, ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first", type=int, default=0, help="index of the first input (split a campaign over processes)")
    p.add_argument("--model", default=None, help="tokenizer directory (default: tiny preset, seed-0 weights)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per input before it counts as a hang")
    p.add_argument("--out", default=None, help="append the Markdown summary to this file")
    p.add_argument("--attacks", action="store_true", help="time the issue's hand-made attacks instead")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.attacks:
        print(attacks(args.model))
        return 0
    torch.manual_seed(0)
    tok = VideoTokenizer.from_pretrained(args.model) if args.model else VideoTokenizer(TokenizerConfig.preset("tiny"))
    tok.eval()
    targets = seed_corpus(tok)
    limits = DecodeLimits(max_pixels=32 * 32, max_frames=64, max_group_frames=32)
    last = [time.perf_counter()]

    def progress(i: int, report) -> None:
        if time.perf_counter() - last[0] > 60 or report.inputs == args.inputs:
            last[0] = time.perf_counter()
            print(f"[{report.inputs}/{args.inputs}] {report.summary()}", file=sys.stderr, flush=True)

    report = run_fuzz(tok, targets, args.inputs, seed=args.seed, limits=limits, input_timeout=args.timeout,
                      progress=progress, first=args.first)
    lines = [
        f"### Codec fuzz, {datetime.date.today()} ({platform.machine()}, {os.cpu_count()} cores, 1 thread)",
        "",
        f"Command: `python benchmarks/codec_fuzz.py --inputs {args.inputs} --seed {args.seed} --first {args.first}"
        f"{' --model ' + args.model if args.model else ''}`; tokenizer: "
        f"{'--model' if args.model else 'tiny preset, seed-0 random weights'}; seed files: "
        + ", ".join(f"{t.name} prior ({len(t.data)} bytes)" for t in targets)
        + f"; limits {limits.max_pixels} pixels, {limits.max_frames} frames, {limits.max_group_frames} per group.",
        "",
        "| inputs | refused (CodecError) | decoded | crashes | slowest input | mean per input | peak RSS growth |",
        "|---|---|---|---|---|---|---|",
        f"| {report.inputs:,} | {report.refused:,} | {report.decoded:,} | {len(report.crashes)} | "
        f"{report.max_seconds:.2f} s | {1000 * report.seconds / max(report.inputs, 1):.1f} ms | "
        f"{report.rss_growth_mb:.0f} MB |",
        "",
        "Refusals by reason: " + "; ".join(f"{k}: {v:,}" for k, v in report.reasons.most_common()) + ".",
        "",
    ]
    lines += [f"- crash: target {name}, input {i}: {err}" for name, i, err in report.crashes[:20]]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text + "\n")
    return 1 if report.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
