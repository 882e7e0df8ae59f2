"""Learning-rate schedule: linear warm-up then cosine decay (to ``min_ratio * lr``)."""
from __future__ import annotations

import math

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine", "lr_factor", "restore_schedule"]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(opt: Optimizer, warmup: int, total: int, min_ratio: float = 0.1) -> LambdaLR:
    return LambdaLR(opt, lambda s: lr_factor(s, warmup, total, min_ratio))


def restore_schedule(sched: LambdaLR, state: dict[str, Any], lr: float, betas: tuple[float, float]) -> None:
    """Load ``sched``'s checkpoint state (after its optimizer's), keeping the config's ``lr`` and ``betas``.

    A checkpoint stores the peak learning rate and Adam's betas of the run that wrote it; a resumed
    run may have changed them (``optim.lr=...``), and the config is what the user asked for. The step
    count comes from the checkpoint and the schedule's shape (warm-up, total steps) from the config.
    """
    sched.load_state_dict(state)
    sched.base_lrs = [lr for _ in sched.base_lrs]
    for group, fn in zip(sched.optimizer.param_groups, sched.lr_lambdas):
        group["initial_lr"] = lr
        group["lr"] = lr * fn(sched.last_epoch)
        if "betas" in group:
            group["betas"] = tuple(betas)
    sched._last_lr = [group["lr"] for group in sched.optimizer.param_groups]
