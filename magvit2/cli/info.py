"""``magvit2 info [--model DIR | --preset NAME]``: what a tokenizer is and how far back in time it looks."""
from __future__ import annotations

import argparse

from magvit2.cli.common import add_model_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a tokenizer: geometry, size, trained clip length, "
                                    "temporal receptive field")
    add_model_arg(p)
    p.add_argument("--preset", default=None, help="describe a config preset (no weights) instead of a model directory")
    p.set_defaults(func=run)


def describe(cfg, params: int | None = None) -> list[str]:
    """The lines ``magvit2 info`` prints for a :class:`~magvit2.tokenizer.config.TokenizerConfig`."""
    from magvit2.tokenizer.stream import temporal_receptive_field

    rf = temporal_receptive_field(cfg)
    lines = [
        f"architecture: base {cfg.base_channels} channels, multipliers {tuple(cfg.channel_multipliers)}, "
        f"{cfg.num_res_blocks} residual block(s) per stage, temporal kernel {cfg.temporal_kernel}"
        + (f", {params:,} parameters" if params is not None else ""),
        f"tokens: {cfg.spatial_factor}x{cfg.spatial_factor} pixels x {cfg.temporal_factor} frame(s) each "
        f"(frame 0 alone), {cfg.bits} bits (vocabulary {cfg.codebook_size})",
        f"trained clip length (group_frames): {cfg.group_frames} frames",
        f"temporal receptive field: {rf.encoder} input frames per latent frame (encoder), {rf.decoder} latent "
        f"frames per output frame (decoder), {rf.total} input frames per reconstructed frame (both)",
    ]
    if rf.encoder > cfg.group_frames:
        lines.append(f"note: the encoder's field ({rf.encoder} frames) is longer than the trained clips "
                     f"({cfg.group_frames}): in a longer causal stream, latents whose field holds no start-of-clip "
                     f"padding were never seen in training")
    return lines


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from magvit2.config.base import ConfigError
    from magvit2.tokenizer.config import TokenizerConfig

    if args.preset and args.model:
        raise ConfigError("give --model DIR or --preset NAME, not both")
    if args.preset:  # an unknown name raises ConfigError listing the presets
        cfg, params, where = TokenizerConfig.preset(args.preset), None, f"preset {args.preset}"
    else:
        from magvit2.cli.common import load_tokenizer
        from magvit2.pretrained import default_model_dir

        tok = load_tokenizer(args.model)
        cfg, params = tok.config, sum(p.numel() for p in tok.parameters())
        where = str(Path(args.model) if args.model else default_model_dir("tokenizer"))
    print(f"tokenizer: {where}")
    for line in describe(cfg, params):
        print(line)
    return 0
