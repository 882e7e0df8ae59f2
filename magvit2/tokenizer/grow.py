"""Start a tokenizer with more bits per token from a trained one.

Only the tensors that touch the latent change shape: the encoder's last
convolution gains output channels (the new bits) and every decoder tensor that
reads the quantized latent (its first convolution, the adaptive norms'
conditioning) gains input channels. The trained weights are copied; the new
encoder rows keep their fresh initialisation and the new decoder columns start
at zero. So the grown decoder ignores the new bits until training teaches it to
use them: it reconstructs from the old bits exactly as the trained decoder did.
The encoder's old bits change only through the latent norm (one group over all
bits), whose mean and spread now include the new channels.

Shape letters: d trained bits, D grown bits.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from magvit2.errors import UserError
from magvit2.tokenizer.model import VideoTokenizer

__all__ = ["grow_bits", "grow_state_dict"]


@torch.no_grad()
def grow_state_dict(trained: dict[str, torch.Tensor], grown: VideoTokenizer, bits: int) -> dict[str, torch.Tensor]:
    """Map ``trained`` (``bits`` per token) onto ``grown``'s shapes (more bits), as described above."""
    target = grown.state_dict()
    missing = sorted(set(target) - set(trained))
    if missing:
        raise ValueError(f"trained state dict lacks {len(missing)} entries the grown model needs, e.g. {missing[:3]}")
    big = grown.config.bits
    out: dict[str, torch.Tensor] = {}
    for name, dst in target.items():
        src = trained[name]
        if src.shape == dst.shape:
            out[name] = src.clone()
        elif name.startswith("encoder.") and src.shape[0] == bits and dst.shape[0] == big \
                and src.shape[1:] == dst.shape[1:]:  # new output channels: d -> D rows
            out[name] = torch.cat([src, dst[bits:]], dim=0)
        elif name.startswith("decoder.") and src.ndim >= 2 and src.shape[1] == bits and dst.shape[1] == big \
                and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:]:  # new input channels
            out[name] = torch.cat([src, src.new_zeros(src.shape[0], big - bits, *src.shape[2:])], dim=1)
        else:
            raise ValueError(f"cannot grow {name}: trained shape {tuple(src.shape)} vs grown {tuple(dst.shape)}")
    return out


def grow_bits(model: VideoTokenizer, bits: int) -> VideoTokenizer:
    """A new tokenizer with ``bits`` per token (more than ``model``'s) that decodes as ``model`` does."""
    cfg = model.config
    if cfg.quantizer.kind != "lfq":
        raise UserError(f"growing bits needs an LFQ tokenizer, got quantizer {cfg.quantizer.kind!r}")
    if bits <= cfg.bits:
        raise UserError(f"a grown tokenizer needs more than the trained {cfg.bits} bits, got {bits}")
    grown = VideoTokenizer(replace(cfg, bits=bits))
    grown.load_state_dict(grow_state_dict(model.state_dict(), grown, cfg.bits))
    return grown
