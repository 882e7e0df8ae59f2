"""The masked token model as the codec's entropy model (``--prior lm``).

The LM sees the already-decoded tokens of a group (unmasked) and predicts the
others; the codec decodes a group in a fixed chunk order, so the decoder
recomputes exactly the logits the encoder used. The group's token grid must
equal the model's grid.
"""
from __future__ import annotations

import torch
from torch import nn

from magvit2.codec.priors import LMPrior
from magvit2.generation.mlm import MaskedTokenModel
from magvit2.errors import UserError

__all__ = ["MaskedLMLogits", "lm_prior"]


class MaskedLMLogits(nn.Module):
    """``(tokens [1, n, g], known [1, n]) -> logits [1, n, g, K]`` from an unconditional pass of a masked LM."""

    def __init__(self, lm: MaskedTokenModel) -> None:
        super().__init__()
        self.lm = lm.eval()

    def forward(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        n = self.lm.config.seq_len
        if tokens.shape[1] != n:
            raise UserError(f"the LM prior models {n} tokens per group (grid {self.lm.config.grid}); "
                             f"this video gives {tokens.shape[1]}: use the model's frame size and group length")
        return self.lm.logits(tokens, ~known, self.lm.null_cond(tokens.shape[0], tokens.device)).float()


def lm_prior(lm: MaskedTokenModel, num_chunks: int = 8) -> LMPrior:
    return LMPrior(MaskedLMLogits(lm), lm.config.bits_per_group, num_chunks=num_chunks)
