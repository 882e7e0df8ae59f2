"""Continue training a factorized masked LM as a one-head model (``model.groups=1``).

Usage: ``python recipes/finetune_lm_single_head.py GENERATOR_DIR [key=value ...]`` (overrides of the
``digits`` LM preset, e.g. ``steps=1500 out_dir=runs/digits-lm-1head``).

The new model starts from ``merge_sub_token_heads`` of the generator's LM: at step 0 it computes the
same token distribution as the factorized model, then learns the joint distribution of whole tokens.
A run directory with checkpoints is resumed instead.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.generation.heads import merge_sub_token_heads  # noqa: E402
from magvit2.generation.pipeline import VideoGenerator  # noqa: E402
from magvit2.train.lm_config import LMTrainConfig  # noqa: E402
from magvit2.train.lm_trainer import LMTrainer  # noqa: E402


def main() -> None:
    src, overrides = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    cfg = LMTrainConfig.load("digits", ["model.groups=1", *overrides])
    trainer = LMTrainer(cfg)
    if trainer.resume():
        print(f"resumed from step {trainer.step}", file=sys.stderr)
    else:
        merged = merge_sub_token_heads(VideoGenerator.from_pretrained(src).lm)
        if merged.config != cfg.model:
            raise SystemExit(f"error: {src} has LM config {merged.config}, the run expects {cfg.model}")
        trainer.model.load_state_dict(merged.state_dict())
        if trainer.ema is not None:
            trainer.ema.model.load_state_dict(merged.state_dict())
    logs = trainer.fit()
    print({k: round(v, 4) for k, v in logs.items()})


if __name__ == "__main__":
    main()
