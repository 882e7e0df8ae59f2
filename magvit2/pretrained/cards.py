"""The figures on the shipped models' cards, computed by one function each so tests can recompute them.

``card.json`` beside each shipped model holds these numbers; ``MODEL_CARD.md`` states them in words.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["TOKENIZER_SLICE", "digits_figures", "generator_metrics", "read_card", "tokenizer_metrics", "write_card"]

#: held-out data the tokenizer card is measured on (never seen in training)
TOKENIZER_SLICE = {"source": "packaged-all", "num_frames": 17, "resolution": 64, "image_frames": "repeat",
                   "clips_per_video": 4}


@torch.no_grad()
def tokenizer_metrics(tokenizer, max_items: int = 6, lpips: bool = True) -> dict[str, Any]:
    """PSNR / SSIM / LPIPS / codebook usage on the first ``max_items`` held-out clips and photos."""
    from magvit2.data import DataConfig, build_dataset
    from magvit2.eval.recon import evaluate_reconstruction

    ds = build_dataset(DataConfig(**TOKENIZER_SLICE), train=False)
    out = evaluate_reconstruction(tokenizer, ds, max_items=max_items, batch_size=2, lpips=lpips)
    out.pop("fvd", None)
    return out


@torch.no_grad()
def generator_metrics(generator, classifier, per_class: int = 2, seed: int = 0, steps: int = 12,
                      guidance: float | None = 2.0) -> dict[str, Any]:
    """Fraction of generated clips that ``classifier`` assigns to the requested class."""
    from magvit2.eval.digits import classify_clips

    k = generator.config.num_classes
    labels = [c for c in range(k) for _ in range(per_class)]
    videos = generator.generate(labels, steps=steps, seed=seed, guidance_scale=guidance)
    pred = classify_clips(classifier, videos.cpu())
    acc = float((pred == torch.tensor(labels)).float().mean())
    per = {str(c): round(float((pred[i * per_class:(i + 1) * per_class] == c).float().mean()), 4)
           for i, c in enumerate(range(k))}
    return {"class_accuracy": round(acc, 4), "per_class": per, "clips": len(labels), "steps": steps,
            "guidance": guidance, "seed": seed, "chance": round(1 / k, 4)}


@torch.no_grad()
def digits_figures(generator, classifier, clips: int = 200, recon_clips: int = 100) -> dict[str, float]:
    """The digit classifier's accuracy on the first ``clips`` held-out real clips, and on the digits
    tokenizer's reconstructions of the first ``recon_clips`` of them."""
    from magvit2.data import DataConfig, build_dataset
    from magvit2.eval.digits import classify_clips

    ds = build_dataset(DataConfig(source="digits", num_frames=generator.num_frames, resolution=32, digit_size=16),
                       train=False)
    n = min(clips, len(ds))
    x = torch.stack([ds[i]["video"] for i in range(n)])
    y = torch.tensor([ds[i]["label"] for i in range(n)])
    tok = generator.tokenizer
    rec = tok.decode(tok.encode(x[:recon_clips].to(generator.device))).clamp(-1, 1).cpu()
    return {"classifier_heldout_accuracy": round(float((classify_clips(classifier, x) == y).float().mean()), 4),
            "classifier_accuracy_on_tokenizer_reconstructions":
                round(float((classify_clips(classifier, rec) == y[:recon_clips]).float().mean()), 4)}


def read_card(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / "card.json"
    if not path.is_file():
        raise FileNotFoundError(f"no card.json in {directory}")
    return json.loads(path.read_text())


def write_card(directory: str | Path, card: dict[str, Any], markdown: str) -> None:
    d = Path(directory)
    (d / "card.json").write_text(json.dumps(card, indent=2))
    (d / "MODEL_CARD.md").write_text(markdown)
