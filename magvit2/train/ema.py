"""Exponential moving average of model weights (used for evaluation and export)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from magvit2.train.distributed import full_tensor, is_dtensor

__all__ = ["EMA"]


class EMA(nn.Module):
    """``ema = decay * ema + (1 - decay) * param`` after every optimizer step.

    Every rank applies the same update to the same (synchronised) weights, so
    the EMA is identical across ranks without communication. Buffers are copied.
    Under FSDP2 each sharded parameter is gathered first (one all-gather per update),
    so the EMA holds whole, unsharded weights on every rank: it can evaluate and
    export without collectives, at the cost of one full copy of the weights per rank.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if any(is_dtensor(p) for p in model.parameters()):
            raise ValueError("create the EMA before sharding the model (FSDP2) so it holds whole weights")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = _unwrap(model)
        for e, p in zip(self.model.parameters(), src.parameters()):
            e.lerp_(full_tensor(p.detach()).to(e.dtype), 1.0 - self.decay)
        for e, b in zip(self.model.buffers(), src.buffers()):
            e.copy_(b)


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)
