"""``magvit2 demo``: the main job on the shipped models; writes ``outputs/demo/report.md``."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="reconstruct, compress (vs x265), generate and continue clips with the shipped models")
    p.add_argument("-o", "--output", default="outputs/demo", help="output directory")
    p.add_argument("--size", type=int, default=64, help="frame size of the reconstruction clip")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=12, help="MaskGIT steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magvit2.demo import run_demo

    run_demo(args.output, args.size, args.frames, args.steps)
    return 0
