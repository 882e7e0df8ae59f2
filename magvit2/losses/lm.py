"""Training losses of the token language models (the tokenizer's are beside it in :mod:`magvit2.losses`);
a training loop calls these per batch.

* :func:`mlm_loss` (MaskGIT / MAGVIT-2 masked token modeling): per sample draw
  ``r ~ U(0, 1)``, mask ``ceil(gamma(r) * n_free)`` of the free positions (context
  positions are never masked), and minimise the cross-entropy of the masked positions
  only, summed over sub-tokens and averaged over masked positions:
  ``L = -E_masked[ sum_g log p(s_g | unmasked tokens, class) ]``.
* :func:`ar_loss`: teacher-forced next-token cross-entropy with the chain-rule sub-token
  heads, summed over sub-tokens, averaged over the free (non-context) positions.

Both apply classifier-free-guidance label dropout (``config.class_dropout``) when the
model is in training mode, and label smoothing per sub-token vocabulary.

Shape letters: b batch, n positions, g groups, k vocabulary of one group.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from magvit2.generation.ar import AutoregressiveTokenModel
from magvit2.generation.config import LMConfig
from magvit2.generation.masking import flatten_grid, random_mask
from magvit2.generation.mlm import MaskedTokenModel
from magvit2.quantizers.factorize import split_indices

__all__ = ["MLMLossOutput", "ARLossOutput", "factorized_cross_entropy", "drop_labels", "mlm_loss", "ar_loss"]


class MLMLossOutput(NamedTuple):
    """``loss`` scalar; ``accuracy [g]`` per sub-token and ``token_accuracy`` (all sub-tokens right)
    on masked positions; ``mask_ratio`` mean masked fraction of free positions; ``masked [b, n]``."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    token_accuracy: torch.Tensor
    mask_ratio: torch.Tensor
    masked: torch.Tensor


class ARLossOutput(NamedTuple):
    """``loss`` scalar; ``accuracy [g]`` and ``token_accuracy`` of teacher-forced argmax predictions."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    token_accuracy: torch.Tensor


def factorized_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bits_per_group: Sequence[int],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy summed over sub-tokens, averaged over the positions where ``weight`` is True.

    ``logits [b, n, g, k]`` (group g uses its first ``2^bits_g`` entries), ``targets [b, n, g]``,
    ``weight [b, n]`` bool. Returns ``(loss, accuracy [g], token_accuracy)``.
    """
    count = weight.sum()
    if int(count) == 0:
        raise ValueError("no position to train on: weight is all False (everything is context?)")
    sel_logits, sel_targets = logits[weight], targets[weight]  # [m, g, k], [m, g]
    loss = logits.new_zeros((), dtype=torch.float32)
    correct = []
    for g, b in enumerate(bits_per_group):
        lg = sel_logits[:, g, : 2 ** b].float()
        loss = loss + F.cross_entropy(lg, sel_targets[:, g], label_smoothing=label_smoothing, reduction="sum")
        correct.append(lg.argmax(-1) == sel_targets[:, g])
    correct = torch.stack(correct, dim=-1)  # [m, g]
    return loss / count, correct.float().mean(0), correct.all(-1).float().mean()


def drop_labels(cond: torch.Tensor | None, config: LMConfig, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Replace each label by the null class with probability ``config.class_dropout`` (classifier-free guidance training)."""
    if cond is None or config.class_dropout == 0.0:
        return cond
    gen_device = generator.device if generator is not None else torch.device("cpu")
    drop = torch.rand(cond.shape, generator=generator, device=gen_device).to(cond.device) < config.class_dropout
    return cond.masked_fill(drop, config.null_class)


def _prepare(tokens: torch.Tensor, known: torch.Tensor | None, config: LMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = flatten_grid(tokens)
    b, n = tokens.shape
    if n != config.seq_len:
        raise ValueError(f"expected {config.seq_len} tokens per sample for grid {config.grid}, got {n}")
    if known is None:
        known = torch.zeros(b, n, dtype=torch.bool, device=tokens.device)
    known = flatten_grid(known)
    if known.shape != (b, n) or known.dtype != torch.bool:
        raise ValueError(f"known must be bool [{b}, {n}], got {known.dtype} {tuple(known.shape)}")
    return split_indices(tokens, config.bits_per_group), known


def mlm_loss(
    model: MaskedTokenModel,
    tokens: torch.Tensor,
    cond: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MLMLossOutput:
    """Masked token modeling loss on ``tokens [b, n]`` or ``[b, t, h, w]``.

    ``cond [b]`` class labels or None; ``known [b, n]`` (or ``[b, t, h, w]``) bool context
    positions that stay visible and are not trained on (e.g. :func:`frame_context_mask`).
    """
    cfg = model.config
    sub, known = _prepare(tokens, known, cfg)
    if model.training:
        cond = drop_labels(cond, cfg, generator)
    draw = random_mask(known, cfg.mask_schedule, generator)
    logits = model(sub, draw.masked, cond).logits
    loss, acc, tok_acc = factorized_cross_entropy(logits, sub, draw.masked, cfg.bits_per_group, cfg.label_smoothing)
    return MLMLossOutput(loss, acc, tok_acc, draw.ratio.float().mean(), draw.masked)


def ar_loss(
    model: AutoregressiveTokenModel,
    tokens: torch.Tensor,
    cond: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ARLossOutput:
    """Next-token loss on ``tokens [b, n]`` or ``[b, t, h, w]``; ``known`` positions are context (not trained on)."""
    cfg = model.config
    sub, known = _prepare(tokens, known, cfg)
    if model.training:
        cond = drop_labels(cond, cfg, generator)
    logits = model(sub, cond).logits
    loss, acc, tok_acc = factorized_cross_entropy(logits, sub, ~known, cfg.bits_per_group, cfg.label_smoothing)
    return ARLossOutput(loss, acc, tok_acc)
