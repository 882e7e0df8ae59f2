"""Training precision: bf16 kernels are checked against float64 before a run relies on them."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from magvit2.config.base import ConfigError
from magvit2.train import precision as precision_mod
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.precision import Precision
from magvit2.train.tokenizer_trainer import TokenizerTrainer


def _conv3d_grads(dtype_ctx, x: torch.Tensor, w: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x, w = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    with dtype_ctx():
        y = F.conv3d(x, w, padding=1)
    return tuple(g.double() for g in torch.autograd.grad(y, (x, w), gy.to(y.dtype)))


def test_bf16_training_kernels_give_correct_conv3d_weight_gradients() -> None:
    """The shape that broke bf16 GAN training: a two-frame Conv3d (oneDNN's AVX-512 bf16 weight gradient)."""
    prec = Precision.for_training("bf16", torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 8, 2, 4, 4, generator=gen), torch.randn(16, 8, 3, 3, 3, generator=gen) * 0.1
    gy = torch.randn(2, 16, 2, 4, 4, generator=gen)
    ref = _conv3d_grads(contextlib.nullcontext, x.double(), w.double(), gy.double())
    for _ in range(3):  # the broken kernel's output changes from call to call
        with prec.kernels():
            got = _conv3d_grads(prec.autocast, x, w, gy)
        for g, r in zip(got, ref):
            assert torch.isfinite(g).all()
            assert float((g - r).abs().max() / r.abs().max()) < 0.05


def test_fp32_needs_no_check_and_changes_nothing() -> None:
    prec = Precision.for_training("fp32", torch.device("cpu"))
    assert prec.onednn
    with prec.autocast(), prec.kernels():
        assert not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.enabled


def test_kernels_without_onednn_restore_the_flag() -> None:
    before = torch.backends.mkldnn.enabled
    with Precision("bf16", torch.device("cpu"), onednn=False).kernels():
        assert torch.backends.mkldnn.enabled is False
    assert torch.backends.mkldnn.enabled == before


def test_trainer_refuses_bf16_in_one_line_where_it_cannot_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(precision_mod, "bf16_conv_grads_ok", lambda device, onednn=True: False)
    cfg = dataclasses.replace(TokenizerTrainConfig.preset("tiny"), precision="bf16", device="cpu",
                              out_dir=str(tmp_path / "run"), progress=False)
    with pytest.raises(ConfigError, match="precision=bf16 gives wrong convolution gradients") as e:
        TokenizerTrainer(cfg, dataset=[{"video": torch.zeros(3, 5, 16, 16)}] * 4)
    assert "\n" not in str(e.value) and "precision=fp32" in str(e.value)
    assert not (tmp_path / "run").exists()  # refused at start: nothing written


def test_bf16_uses_onednn_where_its_gradients_are_right(monkeypatch) -> None:
    calls = []

    def fake_check(device, onednn=True):
        calls.append(onednn)
        return onednn is False

    monkeypatch.setattr(precision_mod, "bf16_conv_grads_ok", fake_check)
    assert Precision.for_training("bf16", torch.device("cpu")).onednn is False and calls == [True, False]
    monkeypatch.setattr(precision_mod, "bf16_conv_grads_ok", lambda device, onednn=True: True)
    assert Precision.for_training("bf16", torch.device("cpu")).onednn is True
