"""Open-MAGVIT2's video tokenizer (SEED-Voken): exact parity where its code is available.

SEED-Voken is not packaged; point ``SEED_VOKEN`` at a checkout of it (the directory holding
``src/Open_MAGVIT2``) to run these tests, e.g. ``SEED_VOKEN=~/src/SEED-Voken pytest
tests/test_open_magvit2_video.py``. Without it they are skipped. Their
``improved_video_model.py`` imports only torch and einops; their LFQ is the same file as the
``open-magvit2`` wheel's, which is used here. Small random weights, their own layout
(channel multipliers 1, 2, 2, 4: time halves twice), 32 base channels, 5 frames of 16x16.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from magvit2 import VideoTokenizer
from magvit2.tokenizer.convert import from_open_magvit2

ROOT = os.environ.get("SEED_VOKEN")
MODEL = Path(ROOT or ".") / "src/Open_MAGVIT2/modules/diffusionmodules/improved_video_model.py"
pytestmark = pytest.mark.skipif(not (ROOT and MODEL.is_file()),
                                reason="set SEED_VOKEN to a SEED-Voken checkout to run the video parity tests")
lfq_ref = pytest.importorskip("open_magvit2.taming.modules.vqvae.lookup_free_quantize")


def _their_video_module():
    spec = importlib.util.spec_from_file_location("seed_voken_improved_video_model", MODEL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    mod = _their_video_module()
    dd = dict(ch=32, out_ch=3, in_channels=3, num_res_blocks=1, z_channels=18, ch_mult=[1, 2, 2, 4], resolution=16)
    enc, dec = mod.Encoder(**dd).eval(), mod.Decoder(**dd).eval()
    with torch.no_grad():
        for m in [*enc.modules(), *dec.modules()]:
            if isinstance(m, torch.nn.GroupNorm) and m.affine:
                m.weight.add_(0.2 * torch.randn_like(m.weight))
                m.bias.add_(0.2 * torch.randn_like(m.bias))
    state = {**{f"encoder.{k}": v for k, v in enc.state_dict().items()},
             **{f"decoder.{k}": v for k, v in dec.state_dict().items()}}
    return enc, dec, lfq_ref.LFQ(dim=18, codebook_size=2**18).eval(), state


@pytest.mark.parametrize("frames", [5, 1])
def test_converted_video_tokenizer_equals_open_magvit2(reference, frames: int) -> None:
    enc, dec, quantize, state = reference
    tok = from_open_magvit2(state, ema=False)
    cfg = tok.config
    assert cfg.temporal_downsample == (False, True, True) and cfg.norm_scope == "clip" and not cfg.causal
    video = torch.rand(2, 3, frames, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        z = enc(video)
        quant, _, idx = quantize(z)
        rec = dec(quant)
        ours = tok.encode(video)
        ours_rec = tok.decode(ours)
    assert ours.shape == (2, z.shape[2], 2, 2)
    assert torch.equal(ours.flatten(), idx)
    assert ours_rec.shape == rec.shape and (ours_rec - rec).abs().max() <= 1e-4


def test_converted_video_tokenizer_round_trips(reference, tmp_path: Path) -> None:
    tok = from_open_magvit2(reference[3], ema=False)
    tok.save_pretrained(tmp_path / "v")
    back = VideoTokenizer.from_pretrained(tmp_path / "v")
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        idx = tok.encode(video)
        assert torch.equal(back.encode(video), idx) and torch.equal(back.decode(idx), tok.decode(idx))
