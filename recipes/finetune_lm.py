"""Continue training a shipped masked LM in a changed layout: one head, class modulation, or both.

Usage: ``python recipes/finetune_lm.py GENERATOR_DIR [key=value ...]`` (overrides of the ``digits`` LM
preset, e.g. ``model.groups=1 model.class_modulation=true steps=3000 out_dir=runs/digits-lm-v2``).

The new model computes exactly the generator's token distribution at step 0:

* ``model.groups=1`` on a factorized LM: the heads are merged (``merge_sub_token_heads``), so the
  one 2^bits-way head starts as the product of the sub-token softmaxes and then learns the joint;
* ``model.class_modulation=true``: every block gets a class modulation that starts at zero.

Any other difference from the generator's LM config is refused. A run directory with checkpoints is
resumed instead.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.generation.heads import merge_sub_token_heads  # noqa: E402
from magvit2.generation.pipeline import VideoGenerator  # noqa: E402
from magvit2.train.lm_config import LMTrainConfig  # noqa: E402
from magvit2.train.lm_trainer import LMTrainer  # noqa: E402


def start_weights(src: str, target) -> dict[str, torch.Tensor]:
    """The generator's LM weights in the layout of ``target`` (an LMConfig)."""
    lm = VideoGenerator.from_pretrained(src).lm
    if target.groups == 1 and lm.config.groups > 1:
        lm = merge_sub_token_heads(lm)
    expected = dataclasses.replace(target, class_modulation=lm.config.class_modulation)
    if lm.config != expected:
        raise SystemExit(f"error: {src} has LM config {lm.config}, the run expects {target}")
    return lm.state_dict()


def main() -> None:
    src, overrides = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    cfg = LMTrainConfig.load("digits", overrides)
    trainer = LMTrainer(cfg)
    if trainer.resume():
        print(f"resumed from step {trainer.step}", file=sys.stderr)
    else:
        state = start_weights(src, cfg.model)
        for model in [trainer.model] + ([trainer.ema.model] if trainer.ema is not None else []):
            result = model.load_state_dict(state, strict=False)
            extra = [k for k in result.missing_keys if ".modulation." not in k]
            if extra or result.unexpected_keys:
                raise SystemExit(f"error: weights do not fit: missing {extra}, unexpected {result.unexpected_keys}")
    logs = trainer.fit()
    print({k: round(v, 4) for k, v in logs.items()})


if __name__ == "__main__":
    main()
