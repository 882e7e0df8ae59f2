"""A small digit classifier for moving-digits clips, used to score class-conditional generation.

Trained on single frames of real moving-digits clips (train split: handwriting never used for
testing); a clip's class is the majority of its per-frame predictions (frame logits averaged).
The figure it yields, "fraction of generated clips assigned to the requested class", is only
as good as this classifier, whose own accuracy on held-out real clips is reported beside it.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["DigitClassifier", "train_digit_classifier", "classify_clips"]


class DigitClassifier(nn.Module):
    """Frames ``[n, 3, h, w]`` in [-1, 1] -> logits ``[n, 10]`` (a 3-layer CNN with global pooling)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.mean(dim=1, keepdim=True))  # colour-blind: digits may be coloured

    def save(self, path: str | Path) -> None:
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> "DigitClassifier":
        if not Path(path).is_file():
            raise FileNotFoundError(f"digit classifier weights not found: {path}")
        model = cls()
        model.load_state_dict(load_file(str(path)))
        return model.eval()


@torch.no_grad()
def classify_clips(model: DigitClassifier, videos: torch.Tensor) -> torch.Tensor:
    """``videos [b, 3, t, h, w]`` -> predicted class ``[b]`` (frame logits averaged over time)."""
    t = videos.shape[2]
    logits = model(rearrange(videos, "b c t h w -> (b t) c h w").float())
    return rearrange(logits, "(b t) k -> b t k", t=t).mean(1).argmax(-1)


def train_digit_classifier(num_frames: int = 9, resolution: int = 32, steps: int = 400, seed: int = 0
                           ) -> tuple[DigitClassifier, float]:
    """Train on real moving-digits frames; returns the model and its clip accuracy on held-out real clips."""
    from magvit2.data import DataConfig, build_dataset

    torch.manual_seed(seed)
    cfg = DataConfig(source="digits", num_frames=num_frames, resolution=resolution, digit_size=resolution // 2)
    train, test = build_dataset(cfg, train=True), build_dataset(cfg, train=False)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(train), (16,), generator=g).tolist()
        videos = torch.stack([train[i]["video"] for i in idx])
        labels = torch.tensor([train[i]["label"] for i in idx])
        frames = rearrange(videos, "b c t h w -> (b t) c h w")
        loss = F.cross_entropy(model(frames), labels.repeat_interleave(videos.shape[2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    n = min(200, len(test))
    videos = torch.stack([test[i]["video"] for i in range(n)])
    labels = torch.tensor([test[i]["label"] for i in range(n)])
    acc = float((classify_clips(model, videos) == labels).float().mean())
    return model, acc
