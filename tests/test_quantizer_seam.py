"""The quantizer seam end to end: a tiny tokenizer with FSQ (no edits outside quantizers/ needed)
trains with the tokenizer trainer, which logs the metrics FSQ reports; its tokens go through the
codec losslessly and train and sample a masked LM. A new codec prior is one class plus one
registration."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from magvit2.codec import VideoCodec, compress, decompress, prior_kinds
from magvit2.codec.container import PRIOR_KINDS
from magvit2.codec.priors import PRIORS, UniformPrior, register_prior
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.data.tokens import TokenDataset
from magvit2.data.transforms import to_uint8
from magvit2.generation.config import LMConfig
from magvit2.generation.pipeline import VideoGenerator
from magvit2.quantizers import FSQ, QuantizerConfig
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.lm_config import LMTrainConfig
from magvit2.train.lm_trainer import LMTrainer
from magvit2.train.tokenize import tokenize_dataset
from magvit2.train.tokenizer_trainer import TokenizerTrainer

from test_train_tokenizer import Clips


def _fsq_trainer_cfg(tmp_path: Path) -> TokenizerTrainConfig:
    base = TokenizerTrainConfig.preset("tiny")
    model = TokenizerConfig.preset("tiny", bits=4, quantizer=QuantizerConfig(kind="fsq", levels=(4, 4, 4, 4)))
    loss = dataclasses.replace(base.loss, perceptual_weight=0.0)
    return dataclasses.replace(base, model=model, loss=loss, steps=3, batch_size=2, log_every=1, eval_every=1000,
                               ckpt_every=1000, out_dir=str(tmp_path / "tok"), progress=False, device="cpu")


@pytest.fixture(scope="module")
def fsq_run(tmp_path_factory) -> tuple[Path, TokenizerTrainer]:
    tmp = tmp_path_factory.mktemp("fsq")
    tr = TokenizerTrainer(_fsq_trainer_cfg(tmp), Clips(n=8, t=5, size=16), eval_dataset=Clips(n=4, t=5, size=16))
    tr.fit()
    return tmp, tr


def test_fsq_tokenizer_trains_and_logs_its_metrics(fsq_run) -> None:
    tmp, tr = fsq_run
    assert isinstance(tr.model.quantizer, FSQ) and tr.model.config.codebook_size == 256
    rows = [json.loads(x) for x in (tmp / "tok" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all("rounding_error" in r and np.isfinite(r["loss_g"]) for r in train)
    assert not any("codebook_entropy" in r for r in train)  # nothing LFQ-specific is assumed


def test_fsq_tokens_through_codec_and_mlm(fsq_run, tmp_path: Path) -> None:
    _, tr = fsq_run
    tok = tr.model.eval()
    frames = to_uint8(Clips(n=2, t=5, size=16)[1]["video"])  # [5, 16, 16, 3]
    decoded = decompress(compress(frames, tok), tok)
    want = tok.encode(torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None] / 127.5 - 1)
    assert torch.equal(decoded.tokens[0], want[0])  # lossless on tokens; the header holds token_bits = 8
    assert decoded.header.token_bits == tok.config.token_bits == 8

    tokens = tokenize_dataset(tok, Clips(n=6, t=5, size=16), tmp_path / "tokens", shard_size=6, batch_size=3,
                              progress=False)
    ds = TokenDataset(tokens)
    assert ds.bits == 8 and ds.grid == tok.config.latent_shape(5, 16, 16)
    model = dataclasses.replace(LMConfig.preset("tiny"), grid=ds.grid, bits=ds.bits, num_classes=0)
    cfg = LMTrainConfig(model=model, steps=2, batch_size=3, log_every=1, eval_every=1000, ckpt_every=1000,
                        out_dir=str(tmp_path / "lm"), tokens=str(tokens), progress=False, device="cpu", ema_decay=0.0)
    lm = LMTrainer(cfg)
    lm.fit()
    gen = VideoGenerator(lm.model, tok)
    video = gen.generate(None, num=2, steps=2, seed=0)
    assert video.shape == (2, 3, 5, 16, 16) and torch.isfinite(video).all()


def test_a_new_prior_is_one_class_and_one_registration() -> None:
    class HalfSplit(UniformPrior):
        """A uniform prior under another name (what a real new prior would replace with its model)."""

    kind = f"test-{len(PRIOR_KINDS)}"
    register_prior(kind, len(PRIOR_KINDS), lambda src: HalfSplit((4, 4)))(HalfSplit)
    try:
        assert kind in prior_kinds() and HalfSplit.kind == kind
        from magvit2.tokenizer import VideoTokenizer

        tok = VideoTokenizer(TokenizerConfig.preset("tiny")).eval()
        frames = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
        data = compress(frames, tok, prior=kind)
        assert VideoCodec(tok, kind).decode(data).header.prior_kind == kind  # the header carries its code
        with pytest.raises(ValueError, match="codes consecutive"):
            register_prior("another", 0, lambda src: HalfSplit((4, 4)))(HalfSplit)
    finally:  # keep the registry as the package defines it
        del PRIORS[kind]
        PRIOR_KINDS.remove(kind)
