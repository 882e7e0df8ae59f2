"""``magvit2 train tokenizer|lm --config PRESET_OR_YAML key=value ...``.

Runs under plain ``python`` (one process) or ``torchrun --nproc_per_node N``
(DDP; gloo on CPU, NCCL on GPU) without changes. A run directory that already
holds checkpoints is resumed unless ``--no-resume`` is given.
"""
from __future__ import annotations

import argparse
import sys

from magvit2.cli.classify import add_train_options, understanding_trainer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a tokenizer, a token language model or a video classifier")
    p.add_argument("what", choices=["tokenizer", "lm", "classifier", "pretrain"], help="which model to train")
    p.add_argument("--config", required=True, help="a preset name (e.g. tiny) or a YAML file")
    p.add_argument("overrides", nargs="*", help="dot-path overrides, e.g. steps=100 model.bits=10")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if checkpoints exist")
    p.add_argument("--resume-from", default=None, help="a specific checkpoint file to resume from")
    add_train_options(p)  # classifier / pretrain: --inputs, --targets, --tokenizer
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from magvit2.train import distributed as dist_utils

    if args.what in ("classifier", "pretrain"):
        Cfg, T = understanding_trainer(args)
    elif args.what == "tokenizer":
        from magvit2.train.config import TokenizerTrainConfig as Cfg
        from magvit2.train.tokenizer_trainer import TokenizerTrainer as T
    else:
        from magvit2.train.lm_config import LMTrainConfig as Cfg
        from magvit2.train.lm_trainer import LMTrainer as T
    cfg = Cfg.load(args.config, args.overrides)
    if args.what == "lm":  # grid, bits and classes come from the tokens' manifest unless overridden
        from magvit2.train.lm_config import config_from_tokens

        cfg = config_from_tokens(cfg, args.overrides)
    trainer = T(cfg)
    try:
        if not args.no_resume or args.resume_from:
            if trainer.resume(args.resume_from) and trainer.info.is_main:
                print(f"resumed from step {trainer.step}", file=sys.stderr)
        logs = trainer.fit()
        if trainer.info.is_main:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if not k.startswith("lr"))
            print(f"finished {trainer.step} steps in {cfg.out_dir}: {shown}")
            print(f"exported model: {trainer.out_dir / 'export'}")
    finally:
        dist_utils.cleanup()
    return 0
