"""Tokenize a dataset, train the tiny masked LM on its tokens, generate per class, predict frames."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import Dataset

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.data.tokens import TokenDataset, read_manifest
from magvit2.generation.config import LMConfig
from magvit2.generation.pipeline import VideoGenerator
from magvit2.train.config import OptimConfig
from magvit2.train.lm_config import LMTrainConfig
from magvit2.train.lm_trainer import LMTrainer
from magvit2.train.tokenize import tokenize_dataset


class TwoClasses(Dataset):
    """Class 0: bright left half; class 1: bright right half (5 frames of 16x16, slight noise per index)."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        v = torch.full((3, 5, 16, 16), -0.8) + 0.1 * torch.rand(3, 5, 16, 16, generator=g)
        label = i % 2
        if label == 0:
            v[..., :8] = 0.8
        else:
            v[..., 8:] = 0.8
        return {"video": v, "label": label, "index": i}


def _tokenizer() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig.preset("tiny")).eval()


def test_tokenize_is_resumable_and_exact(tmp_path: Path) -> None:
    tok, ds = _tokenizer(), TwoClasses()
    out = tokenize_dataset(tok, ds, tmp_path / "tokens", shard_size=10, batch_size=4, progress=False)
    tokens = TokenDataset(out)
    assert len(tokens) == 24 and tokens.grid == (2, 4, 4) and tokens.bits == 8
    assert read_manifest(out)["num_shards"] == 3
    for i in (0, 13, 23):
        assert torch.equal(tokens[i]["tokens"], tok.encode(ds[i]["video"][None])[0])
        assert tokens[i]["label"] == i % 2
    # Resuming: a finished shard is not rewritten, a missing one is.
    first = out / "shard_00000.safetensors"
    stamp = first.stat().st_mtime_ns
    (out / "shard_00001.safetensors").unlink()
    tokenize_dataset(tok, ds, out, shard_size=10, batch_size=4, progress=False)
    assert first.stat().st_mtime_ns == stamp and (out / "shard_00001.safetensors").is_file()
    assert torch.equal(TokenDataset(out).tokens, tokens.tokens)


def _lm_cfg(tmp_path: Path, tokens: Path, **kw) -> LMTrainConfig:
    model = dataclasses.replace(LMConfig.preset("tiny"), grid=(2, 4, 4), bits=8, num_classes=2, class_dropout=0.1)
    base = LMTrainConfig(model=model, steps=150, batch_size=12, log_every=25, eval_every=1000, ckpt_every=1000,
                         out_dir=str(tmp_path / "lm"), tokens=str(tokens), progress=False, device="cpu",
                         ema_decay=0.0, context_prob=0.3, context_frames=1,
                         optim=OptimConfig(lr=3e-3, betas=(0.9, 0.96), weight_decay=0.0, warmup_steps=10))
    return dataclasses.replace(base, **kw)


def test_mlm_generates_requested_class(tmp_path: Path) -> None:
    """A tiny MLM on tokens of two visually distinct classes generates clips a simple classifier assigns to
    the requested class far above chance; frame prediction keeps the context frames' tokens."""
    tok = _tokenizer()
    tok_dir = tok.save_pretrained(tmp_path / "tok")
    ds = TwoClasses()
    tokenize_dataset(tok, ds, tmp_path / "tokens", batch_size=8, progress=False, info={"tokenizer": str(tok_dir)})
    trainer = LMTrainer(_lm_cfg(tmp_path, tmp_path / "tokens"))
    trainer.fit()
    gen = VideoGenerator.from_pretrained(tmp_path / "lm" / "export")
    labels = [0] * 6 + [1] * 6
    videos = gen.generate(labels, steps=8, seed=0, temperature=0.5)
    assert videos.shape == (12, 3, 5, 16, 16)
    # The classifier: nearest class centroid of the (untrained) tokenizer's reconstructions of real clips.
    real_all = torch.stack([ds[i]["video"] for i in range(len(ds))])
    y = torch.tensor([ds[i]["label"] for i in range(len(ds))])
    rec = tok.decode(tok.encode(real_all)).flatten(1)
    centroids = torch.stack([rec[y == c].mean(0) for c in (0, 1)])
    predicted = torch.cdist(videos.flatten(1), centroids).argmin(1)
    accuracy = (predicted == torch.tensor(labels)).float().mean().item()
    assert accuracy >= 0.9, accuracy
    # Frame prediction: the context's latent frame is kept, so (the decoder being causal) the first
    # predicted frame is exactly the reconstruction of the real first frame.
    real = torch.stack([ds[i]["video"] for i in range(4)])
    pred = gen.predict(real, context_frames=1, steps=4, seed=1)
    assert pred.shape == (4, 3, 5, 16, 16)
    first = tok.decode(tok.encode(real[:, :, :1])).clamp(-1, 1)
    assert torch.allclose(pred[:, :, :1], first, atol=1e-5)
