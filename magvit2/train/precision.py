"""Training precision: bf16 autocast, and the kernels a bf16 step may safely use.

``precision="bf16"`` runs the networks under ``torch.autocast(dtype=bfloat16)``;
parameters, optimizer state, the quantizer and the losses stay fp32 (the loss
modules cast to fp32 themselves; see :mod:`magvit2.losses.adversarial` for R1).

Kernels are checked, not trusted. On CPUs with AVX-512, PyTorch's oneDNN
(``mkldnn``) bf16 Conv3d computes wrong weight gradients for inputs with two
frames (found with torch 2.13: relative errors from 1.4 to NaN, different on
every call; correct when oneDNN is limited to AVX2 or bypassed). The tiny
discriminator and tokenizer have exactly such a stage (5 frames -> 3 -> 2), so
the first GAN steps went non-finite. :meth:`Precision.for_training` therefore
compares bf16 convolution gradients against float64 once at start:

- correct with oneDNN: train with it (the fast path);
- correct only without: train with oneDNN switched off for each training step
  (forward and backward; slower on CPU, and exact);
- wrong either way: refuse bf16 with a one-line :class:`ConfigError`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from magvit2.config.base import ConfigError

__all__ = ["Precision", "bf16_conv_grads_ok"]

#: Seed of the private generator that draws the check's inputs (the global RNG is never touched).
CHECK_SEED = 0
#: Largest relative gradient error accepted from bf16 (bf16 keeps 8 significant bits: ~0.4% per op).
CHECK_TOLERANCE = 0.05
#: (dims, batch, in channels, out channels, spatial size) of the convolutions checked; the
#: 3D two-frame cases are the ones oneDNN gets wrong, the others guard the common path.
CHECK_CASES = ((3, 2, 8, 16, (2, 4, 4)), (3, 1, 3, 8, (2, 2, 2)), (3, 2, 8, 8, (5, 8, 8)), (2, 2, 8, 16, (8, 8)))


@contextlib.contextmanager
def _onednn(enabled: bool) -> Iterator[None]:
    """Switch oneDNN kernels on or off for the duration (only that flag; the others stay as they are)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def bf16_conv_grads_ok(device: torch.device, onednn: bool = True) -> bool:
    """Whether bf16 autocast convolutions on ``device`` give finite gradients within tolerance of float64."""
    gen = torch.Generator().manual_seed(CHECK_SEED)
    for dims, b, c_in, c_out, size in CHECK_CASES:
        conv = F.conv3d if dims == 3 else F.conv2d
        x = torch.randn(b, c_in, *size, generator=gen, dtype=torch.float64)
        w = torch.randn(c_out, c_in, *(3,) * dims, generator=gen, dtype=torch.float64) * 0.1
        gy = torch.randn(b, c_out, *size, generator=gen, dtype=torch.float64)
        ref = torch.autograd.grad(conv(x.requires_grad_(), w.requires_grad_(), padding=1), (x, w), gy)
        xs, ws = (t.detach().float().to(device).requires_grad_() for t in (x, w))
        with _onednn(onednn):
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                y = conv(xs, ws, padding=1)
            got = torch.autograd.grad(y, (xs, ws), gy.to(device, y.dtype))
        for g, r in zip(got, ref):
            g = g.detach().double().cpu()
            if not bool(torch.isfinite(g).all()) or float((g - r).abs().max() / r.abs().max()) > CHECK_TOLERANCE:
                return False
    return True


@dataclass(frozen=True)
class Precision:
    """How a trainer runs its steps: ``name`` is "fp32" or "bf16"; ``onednn`` whether oneDNN kernels may run."""

    name: str = "fp32"
    device: torch.device = torch.device("cpu")
    onednn: bool = True

    @classmethod
    def for_training(cls, name: str, device: torch.device) -> Precision:
        """Choose kernels for ``name`` on ``device``; raises :class:`ConfigError` when bf16 cannot train correctly."""
        if name != "bf16":
            return cls(name, device)
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision=bf16: {torch.cuda.get_device_name(device)} has no bf16 support; "
                              "use precision=fp32")
        if bf16_conv_grads_ok(device, onednn=True):
            return cls(name, device, onednn=True)
        if device.type == "cpu" and bf16_conv_grads_ok(device, onednn=False):
            return cls(name, device, onednn=False)
        raise ConfigError(f"precision=bf16 gives wrong convolution gradients on this {device.type} "
                          f"(torch {torch.__version__}); use precision=fp32")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: bf16 autocast, or nothing for fp32."""
        if self.name == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def kernels(self) -> contextlib.AbstractContextManager:
        """Wrap a whole training step (forward and backward) in this: keeps oneDNN off where it is wrong."""
        return contextlib.nullcontext() if self.onednn else _onednn(False)
