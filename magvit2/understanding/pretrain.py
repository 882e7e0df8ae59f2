"""Masked pre-training of the pixel-input video transformer (BEVT- and MAE-style targets).

The paper (MAGVIT-2, Sec. 4.4) pre-trains a video transformer BEVT-style: mask some
tubelets of a clip, and predict, at each masked position, the frozen tokenizer's token
there. The pixel-regression alternative (MAE) predicts the masked tubelet's pixels instead.
Both losses here are averaged over the MASKED positions only; visible positions never
contribute (a test checks it).

The token of tubelet ``i`` is the token at the same grid position: the tubelets are cut
causally like the tokenizer (:class:`~magvit2.understanding.model.TubeletEmbedding`), so
tubelet grid and token grid coincide.

Shape letters: b batch, n positions (t' h' w'), g sub-token groups, k sub-token vocabulary
(padded with -inf), d width, p pixels per tubelet.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from magvit2.generation.transformer import FactorizedHead, init_weights
from magvit2.quantizers.factorize import split_indices
from magvit2.understanding.model import VideoClassifier

__all__ = ["PretrainOutput", "MaskedVideoModel", "sample_mask", "masked_token_loss", "masked_pixel_loss",
           "pixel_targets"]


class PretrainOutput(NamedTuple):
    loss: torch.Tensor  #: scalar, averaged over masked positions
    accuracy: torch.Tensor  #: token targets: fraction of masked sub-tokens predicted right; pixels: nan
    masked_fraction: torch.Tensor  #: fraction of positions masked


def sample_mask(batch: int, grid: Sequence[int], ratio: float, kind: str = "random",
                device: torch.device | str | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[b, n]`` bool, exactly ``round(ratio * m)`` of ``m`` candidates masked per clip.

    ``kind="random"``: any positions; ``"tube"``: the same spatial positions in every latent frame
    (a moving object cannot be copied from a neighbouring frame).
    """
    t, h, w = (int(x) for x in grid)
    m = h * w if kind == "tube" else t * h * w  # candidates
    k = min(max(int(round(ratio * m)), 1), m - 1) if m > 1 else m
    if kind not in ("random", "tube"):
        raise ValueError(f"masking must be 'random' or 'tube', got {kind!r}")
    picked = torch.rand(batch, m, generator=generator, device=device).argsort(dim=1)[:, :k]
    mask = torch.zeros(batch, m, dtype=torch.bool, device=device).scatter_(1, picked, True)
    return repeat(mask, "b hw -> b (t hw)", t=t) if kind == "tube" else mask


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> PretrainOutput:
    """Cross-entropy of sub-token ``logits [b, n, g, k]`` against ``targets [b, n, g]`` at ``masked [b, n]`` only."""
    if not masked.any():
        raise ValueError("no masked positions: the masked-prediction loss is undefined")
    sel_logits, sel_targets = logits[masked], targets[masked]  # [m, g, k], [m, g]
    loss = F.cross_entropy(rearrange(sel_logits.float(), "m g k -> (m g) k"), rearrange(sel_targets, "m g -> (m g)"))
    acc = (sel_logits.argmax(-1) == sel_targets).float().mean()
    return PretrainOutput(loss, acc.detach(), masked.float().mean())


def pixel_targets(patches: torch.Tensor, normalize: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """MAE's regression targets from tubelets ``[b, n, p]``: each tubelet normalised to zero mean, unit variance."""
    if not normalize:
        return patches
    mean, var = patches.mean(dim=-1, keepdim=True), patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def masked_pixel_loss(pred: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> PretrainOutput:
    """Mean squared error of ``pred [b, n, p]`` against ``targets [b, n, p]`` at ``masked [b, n]`` only."""
    if not masked.any():
        raise ValueError("no masked positions: the masked-prediction loss is undefined")
    loss = F.mse_loss(pred[masked].float(), targets[masked].float())
    return PretrainOutput(loss, torch.tensor(float("nan"), device=pred.device), masked.float().mean())


class MaskedVideoModel(nn.Module):
    """A pixel-input :class:`VideoClassifier` backbone plus a masked-prediction head.

    ``targets="tokens"``: the generator's :class:`FactorizedHead` (one softmax per sub-token group);
    ``targets="pixels"``: a linear map to the tubelet's ``p`` pixel values.
    """

    def __init__(self, backbone: VideoClassifier, targets: str = "tokens", normalize_pixels: bool = True) -> None:
        super().__init__()
        cfg = backbone.config
        if cfg.inputs != "pixels":
            raise ValueError(f"masked pre-training needs a pixel-input backbone, got inputs={cfg.inputs!r}")
        self.backbone, self.targets, self.normalize_pixels = backbone, targets, normalize_pixels
        if targets == "tokens":
            self.predictor: nn.Module = FactorizedHead(cfg.bits_per_group, cfg.width)
        elif targets == "pixels":
            self.predictor = nn.Linear(cfg.width, cfg.patch_dim)
        else:
            raise ValueError(f"targets must be 'tokens' or 'pixels', got {targets!r}")
        init_weights(self.predictor, cfg.init_std)

    def forward(self, video: torch.Tensor, masked: torch.Tensor, tokens: torch.Tensor | None = None) -> PretrainOutput:
        """``video [b, c, t, h, w]``, ``masked [b, n]``; ``tokens [b, t', h', w']`` of the clip for token targets."""
        h = self.backbone.features(video, masked)  # [b, n, d]
        if self.targets == "tokens":
            if tokens is None:
                raise ValueError("token targets need the clip's tokens")
            sub = split_indices(rearrange(tokens, "b t h w -> b (t h w)"), self.backbone.config.bits_per_group)
            if sub.shape[1] != h.shape[1]:
                raise ValueError(f"token grid {tuple(tokens.shape[1:])} does not match the tubelet grid "
                                 f"{self.backbone.config.grid}")
            return masked_token_loss(self.predictor(h), sub, masked)
        target = pixel_targets(self.backbone.embed.patches(video), self.normalize_pixels)
        return masked_pixel_loss(self.predictor(h), target, masked)
