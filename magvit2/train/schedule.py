"""Learning-rate schedule: linear warm-up then cosine decay (to ``min_ratio * lr``)."""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine", "lr_factor"]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(opt: Optimizer, warmup: int, total: int, min_ratio: float = 0.1) -> LambdaLR:
    return LambdaLR(opt, lambda s: lr_factor(s, warmup, total, min_ratio))
