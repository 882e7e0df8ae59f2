"""``magvit2 convert open-magvit2 CKPT -o DIR (--ema | --no-ema) [--layout 128|256]``.

Turns a checkpoint you downloaded yourself into a normal magvit2 model directory
(``config.json`` + ``model.safetensors``) that every command takes with ``--model DIR``.
Nothing is downloaded. An existing output directory is never touched.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
from pathlib import Path

SOURCES = ("open-magvit2",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="import another project's released tokenizer weights (Open-MAGVIT2)")
    p.add_argument("source", choices=SOURCES, help="whose checkpoint format CKPT is in")
    p.add_argument("checkpoint", metavar="CKPT",
                   help="Lightning .ckpt (read with torch.load(weights_only=True)), a saved state dict, or .safetensors")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new model directory to write")
    ema = p.add_mutually_exclusive_group(required=True)
    ema.add_argument("--ema", dest="ema", action="store_true", help="import the EMA weights (model_ema.*)")
    ema.add_argument("--no-ema", dest="ema", action="store_false", help="import the raw training weights")
    p.add_argument("--layout", choices=["128", "256"], default=None,
                   help="force the encoder layout (128: ch_mult 1,2,2,4; 256: 1,1,2,2,4); default: read from the weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magvit2.tokenizer.convert import from_open_magvit2

    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output {out} already exists; choose a new directory")
    model = from_open_magvit2(args.checkpoint, ema=args.ema, layout=args.layout)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()  # mode 0o777 minus the umask, like any new directory
    try:
        model.save_pretrained(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())
    kind = "image" if cfg.temporal_kernel == 1 else ("video" if cfg.causal else "video, whole-clip norms")
    print(f"{args.checkpoint} ({'EMA' if args.ema else 'raw'} weights) -> {out}: {kind}, "
          f"{cfg.temporal_factor}x{cfg.spatial_factor}x{cfg.spatial_factor} down, 2^{cfg.bits} codes, "
          f"channel multipliers {list(cfg.channel_multipliers)}, {n / 1e6:.1f}M parameters")
    return 0

