"""Growing a trained tokenizer to more bits per token (``magvit2.tokenizer.grow``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.data import DataConfig, build_dataset
from magvit2.errors import UserError
from magvit2.eval.metrics import psnr
from magvit2.pretrained import default_model_dir
from magvit2.pretrained.cards import TOKENIZER_SLICE
from magvit2.tokenizer.grow import grow_bits
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.tokenizer_trainer import TokenizerTrainer


@torch.no_grad()
def test_grown_decoder_ignores_the_new_bits_and_keeps_the_old_decoding(conditioned_tokenizer) -> None:
    model = conditioned_tokenizer()
    d = model.config.bits
    grown = grow_bits(model, d + 4).eval()
    assert grown.config.bits == d + 4 and grown.quantizer.codebook_size == 1 << (d + 4)
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 2, (2, d, 2, 4, 4), generator=g).float() * 2 - 1
    ref = model.decode_codes(codes)
    for _ in range(2):  # whatever the new bits are
        extra = torch.randint(0, 2, (2, 4, 2, 4, 4), generator=g).float() * 2 - 1
        assert torch.allclose(grown.decode_codes(torch.cat([codes, extra], 1)), ref, atol=1e-6)
    # the encoder's trained rows are kept; its new rows are not zero (the new bits carry information)
    w_old, w_new = model.encoder.conv_out.conv.weight, grown.encoder.conv_out.conv.weight
    assert torch.equal(w_new[:d], w_old) and w_new[d:].abs().sum() > 0


@torch.no_grad()
def test_grown_shipped_tokenizer_reconstructs_a_real_clip_as_before() -> None:
    """On a held-out real clip the grown tokenizer's old bits mostly agree with the trained ones (the
    latent norm now spans the new channels too) and its reconstruction is close to the trained one."""
    tok = VideoTokenizer.from_pretrained(default_model_dir("tokenizer")).eval()
    ds = build_dataset(DataConfig(**TOKENIZER_SLICE), train=False)  # the card's held-out slice
    video = ds[0]["video"][None]
    torch.manual_seed(0)
    grown = grow_bits(tok, tok.config.bits + 4).eval()
    d = tok.config.bits
    agree = ((tok.encode_latent(video) > 0) == (grown.encode_latent(video)[:, :d] > 0)).float().mean()
    assert agree > 0.9
    ref, rec = tok(video).reconstruction, grown(video).reconstruction
    assert float(psnr(rec, ref)) > 25.0  # against the trained model's own reconstruction
    assert abs(float(psnr(rec, video)) - float(psnr(ref, video))) < 0.5


def test_grow_refuses_fewer_bits_and_other_quantizers(conditioned_tokenizer) -> None:
    model = conditioned_tokenizer()
    with pytest.raises(UserError, match="more than the trained"):
        grow_bits(model, model.config.bits)
    fsq = dataclasses.replace(TokenizerConfig.preset("tiny"), bits=4,
                              quantizer=dataclasses.replace(model.config.quantizer, kind="fsq", levels=(8, 5, 5, 5)))
    with pytest.raises(UserError, match="needs an LFQ tokenizer"):
        grow_bits(VideoTokenizer(fsq), 12)


def test_trainer_grows_a_tokenizer_given_with_fewer_bits(tmp_path: Path, conditioned_tokenizer) -> None:
    model = conditioned_tokenizer()
    model.save_pretrained(tmp_path / "trained")
    base = TokenizerTrainConfig.preset("tiny")
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, bits=base.model.bits + 2),
                              init_from=str(tmp_path / "trained"), out_dir=str(tmp_path / "run"), device="cpu",
                              progress=False)
    clips = [{"video": torch.zeros(3, 5, 16, 16), "label": 0, "index": 0}]
    tr = TokenizerTrainer(cfg, clips, eval_dataset=clips)
    d = base.model.bits
    w = tr.model.decoder.conv_in.conv.weight
    assert w.shape[1] == d + 2
    assert torch.equal(w[:, :d], model.decoder.conv_in.conv.weight) and not w[:, d:].any()
