"""Reconstruction evaluation of a tokenizer on a dataset: PSNR, SSIM, LPIPS, FID, FVD, codebook usage."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from magvit2.eval.metrics import ReconstructionMetrics
from magvit2.quantizers.usage import code_usage
from magvit2.tokenizer.groups import reconstruct_video, tokenize_groups
from magvit2.errors import UserError

__all__ = ["evaluate_reconstruction"]


@torch.no_grad()
def evaluate_reconstruction(tokenizer, dataset: Dataset, *, max_items: int | None = 64, batch_size: int = 8,
                            fid: bool = False, i3d: str | None = None, lpips: bool = True,
                            device: torch.device | str = "cpu") -> dict[str, Any]:
    """Metrics of the reconstruction of ``x`` (in causal groups of ``tokenizer.config.group_frames``) against ``x``
    over (the first ``max_items`` of) ``dataset``.

    FVD needs I3D weights (``i3d``); without them it is reported as unavailable, never estimated.
    """
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    if n == 0:
        raise UserError("the dataset is empty; nothing to evaluate")
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size)
    rec_metrics = ReconstructionMetrics(use_lpips=lpips)
    fid_acc = fvd_acc = None
    if fid:
        from magvit2.eval.frechet import fid_accumulator

        fid_acc = fid_accumulator(device)
    if i3d:
        from magvit2.eval.frechet import fvd_accumulator

        fvd_acc = fvd_accumulator(i3d, device)
    all_idx = []
    for batch in loader:
        x = batch["video"].to(device)
        rec = reconstruct_video(tokenizer, x)  # causal groups of the tokenizer's group length
        rec_metrics.update(x.cpu(), rec.cpu())
        all_idx += [idx.reshape(-1).cpu() for idx in tokenize_groups(tokenizer, x)]
        if fid_acc is not None:
            fid_acc.update(x, rec)
        if fvd_acc is not None:
            fvd_acc.update(x, rec)
    out: dict[str, Any] = {k: round(v, 4) for k, v in rec_metrics.compute().items()}
    usage = code_usage(torch.cat(all_idx), tokenizer.config.token_bits)
    out.update(codebook_size=tokenizer.config.codebook_size, distinct_codes=int(usage.distinct_codes),
               codebook_usage=round(int(usage.distinct_codes) / tokenizer.config.codebook_size, 4),
               perplexity=round(float(usage.perplexity), 2), balanced_bits=round(float(usage.balanced_bit_fraction), 3))
    if fid_acc is not None:
        out["fid"] = round(float(fid_acc.compute().distance), 3)
    out["fvd"] = round(float(fvd_acc.compute().distance), 3) if fvd_acc is not None else "unavailable (no I3D weights; pass --i3d)"
    return out
