"""Training the video classifiers and their masked pre-training (the project's shared loop).

* :class:`ClassifierTrainer`: cross-entropy on labelled clips, from scratch, fine-tuning a
  pre-trained backbone (``init_from``) or as a linear probe of it; token inputs come from the
  frozen tokenizer (encoded once into the in-memory cache, per batch without it, or read
  from a ``magvit2 tokenize`` directory).
* :class:`PretrainTrainer`: masked prediction of tokens (BEVT) or pixels (MAE) on unlabelled clips.

Both export a :class:`~magvit2.understanding.model.ClipClassifier` to ``<out_dir>/export``.
Grid, bits and the number of classes come from the data and the tokenizer.
"""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from magvit2.config.base import ConfigError
from magvit2.data import build_dataset, to_tensor, to_uint8
from magvit2.data.tokens import TokenDataset
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.train import distributed as dist_utils
from magvit2.train.base import SingleModelTrainer
from magvit2.train.ema import EMA
from magvit2.train.schedule import warmup_cosine
from magvit2.understanding.config import ClassifierConfig, ClassifierTrainConfig, PretrainConfig
from magvit2.understanding.model import ClipClassifier, VideoClassifier
from magvit2.understanding.pretrain import MaskedVideoModel, sample_mask

__all__ = ["ClassifierTrainer", "PretrainTrainer", "ClipCache", "label_subset", "load_frozen_tokenizer"]


class ClipCache(Dataset):
    """Items of a dataset held in memory: uint8 frames, labels and (optionally) their tokens.

    Items: ``{"video": float [3, t, h, w], "label": int, "index": int}`` plus ``"tokens" [t', h', w']``.
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, tokens: torch.Tensor | None = None) -> None:
        self.frames, self.labels, self.tokens = frames, labels, tokens  # [N, t, h, w, 3] uint8, [N], [N, t', h', w']

    @classmethod
    @torch.no_grad()
    def build(cls, dataset: Dataset, tokenizer: VideoTokenizer | None = None, batch_size: int = 64,
              device: torch.device | str = "cpu", limit: int | None = None) -> "ClipCache":
        """Read (the first ``limit``) items of ``dataset`` once, and encode them with ``tokenizer``."""
        n = len(dataset) if limit is None else min(limit, len(dataset))
        frames, labels, tokens = [], [], []
        for start in range(0, n, batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, n))]
            video = torch.stack([it["video"] for it in items])
            frames.extend(torch.from_numpy(to_uint8(v)) for v in video)
            labels.extend(int(it["label"]) for it in items)
            if tokenizer is not None:
                tokens.append(tokenizer.encode(video.to(device)).cpu())
        return cls(torch.stack(frames), torch.tensor(labels), torch.cat(tokens) if tokens else None)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"video": to_tensor(self.frames[i].numpy()), "label": int(self.labels[i]), "index": i}
        if self.tokens is not None:
            item["tokens"] = self.tokens[i]
        return item


def label_subset(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A fixed ``fraction`` of ``dataset`` (chosen by ``seed`` alone), the whole dataset for 1.0."""
    if fraction >= 1.0:
        return dataset
    n = len(dataset)
    k = max(1, int(round(fraction * n)))
    keep = np.sort(np.random.default_rng([seed, 7]).permutation(n)[:k])
    return Subset(dataset, keep.tolist())


def load_frozen_tokenizer(path: str, device: torch.device) -> VideoTokenizer:
    """The tokenizer at ``path`` (default: the shipped digits tokenizer), frozen and in eval mode."""
    from magvit2.pretrained import default_model_dir

    directory = Path(path) if path else default_model_dir("digits-tokenizer")
    return VideoTokenizer.from_pretrained(directory, device).eval().requires_grad_(False)


def _class_names(dataset: Dataset) -> tuple[str, ...]:
    names = getattr(dataset, "class_names", None)
    if names is None and hasattr(dataset, "manifest"):
        names = dataset.manifest.get("class_names")
    return tuple(names or ())


def _grid(cfg: ClassifierConfig, num_frames: int, resolution: int, tokenizer: VideoTokenizer | None) -> ClassifierConfig:
    """``cfg`` with the grid (and bits) of clips of ``num_frames x resolution^2`` under the tokenizer or tubelets."""
    pt, ph, pw = cfg.tubelet
    if cfg.inputs == "tokens" or tokenizer is not None:
        assert tokenizer is not None
        grid = tokenizer.config.latent_shape(num_frames, resolution, resolution)
        cfg = dataclasses.replace(cfg, grid=grid, bits=tokenizer.config.bits)
        if cfg.inputs != "tokens" and (tokenizer.config.temporal_factor, tokenizer.config.spatial_factor) != (pt, ph):
            raise ConfigError(f"model.tubelet {cfg.tubelet} must equal the tokenizer's compression "
                              f"({tokenizer.config.temporal_factor}, {tokenizer.config.spatial_factor}, "
                              f"{tokenizer.config.spatial_factor}) for token targets")
        return cfg
    if (num_frames - 1) % pt or resolution % ph or resolution % pw:
        raise ConfigError(f"clips of {num_frames}x{resolution}x{resolution} do not split into tubelets {cfg.tubelet}; "
                          f"expected 1 + {pt}k frames and a multiple of {ph}")
    return dataclasses.replace(cfg, grid=(1 + (num_frames - 1) // pt, resolution // ph, resolution // pw))


class _UnderstandingTrainer(SingleModelTrainer):
    """The optimizer, EMA, checkpoint state and input plumbing both trainers share."""

    model: torch.nn.Module
    tokenizer: VideoTokenizer | None = None

    def _optimizer(self, params: list[tuple[str, torch.nn.Parameter]]) -> None:
        o = self.cfg.optim
        decay = [p for n, p in params if p.ndim >= 2 and "embed" not in n and "pos" not in n]
        no_decay = [p for n, p in params if not (p.ndim >= 2 and "embed" not in n and "pos" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas))
        self.sched = warmup_cosine(self.opt, o.warmup_steps, self.cfg.steps, o.min_lr_ratio)

    def _cache(self, dataset: Dataset, limit: int | None = None) -> Dataset:
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        if not self.cfg.cache or isinstance(base, (ClipCache, TokenDataset)):
            return dataset
        return ClipCache.build(dataset, self.tokenizer, device=self.device, limit=limit)

    @torch.no_grad()
    def _tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        if "tokens" in batch:
            return batch["tokens"].long()
        assert self.tokenizer is not None
        return self.tokenizer.encode(batch["video"])

    def _step(self, losses: list[torch.Tensor]) -> dict[str, float]:
        """The base trainer's clip-check-step, then the EMA; logs of this step (``skipped`` = 1 when not taken)."""
        loss = torch.stack(losses).mean()
        step = self.optimizer_step(self.opt, self.sched, self.model.parameters(), loss, self.cfg.optim.grad_clip, "loss")
        if step.taken:
            if self.ema is not None:
                self.ema.update(self.model)
            self.record_good_step()
        return {"loss": float(loss), "grad_norm": float(step.grad_norm), "lr": self.sched.get_last_lr()[0],
                "skipped": 0.0 if step.taken else 1.0}

    def _sync(self, i: int):
        return self.net.no_sync() if hasattr(self.net, "no_sync") and not self.is_last_micro_batch(i) else nullcontext()

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model


class ClassifierTrainer(_UnderstandingTrainer):
    """Supervised video classification over tokens, pixels or one frame (see :class:`ClassifierTrainConfig`)."""

    cfg: ClassifierTrainConfig

    def __init__(self, cfg: ClassifierTrainConfig, dataset: Dataset | None = None,
                 eval_dataset: Dataset | None = None) -> None:
        if dataset is None:
            if cfg.tokens and cfg.model.inputs != "tokens":
                raise ConfigError("tokens=DIR feeds a token classifier; set model.inputs=tokens or drop tokens=")
            dataset = TokenDataset(cfg.tokens) if cfg.tokens else build_dataset(cfg.data, train=True)
        self.class_names = _class_names(dataset)
        self.eval_dataset = eval_dataset if eval_dataset is not None else build_dataset(cfg.eval_data or cfg.data, train=False)
        super().__init__(cfg, label_subset(dataset, cfg.label_fraction, cfg.data.seed))

    def setup(self) -> None:
        cfg = self.cfg
        mcfg = cfg.model
        backbone = ClipClassifier.from_pretrained(cfg.init_from, self.device).model if cfg.init_from else None
        if backbone is not None:  # the architecture comes with the pre-trained weights
            mcfg = dataclasses.replace(backbone.config, num_classes=mcfg.num_classes, dropout=mcfg.dropout)
        if self.class_names:
            mcfg = dataclasses.replace(mcfg, num_classes=len(self.class_names))
        base = self.dataset.dataset if isinstance(self.dataset, Subset) else self.dataset
        tok_dir = cfg.tokenizer or (base.manifest.get("tokenizer") or "" if isinstance(base, TokenDataset) else "")
        self.tokenizer = load_frozen_tokenizer(tok_dir, self.device) if mcfg.inputs == "tokens" else None
        if isinstance(base, TokenDataset):
            mcfg = dataclasses.replace(mcfg, grid=base.grid, bits=base.bits)
        else:
            mcfg = _grid(mcfg, cfg.data.num_frames, cfg.data.resolution, self.tokenizer)
        self.model_config = mcfg
        self.dataset = self._cache(self.dataset)
        self.eval_dataset = self._cache(self.eval_dataset, limit=cfg.eval_items)
        self.model = VideoClassifier(mcfg).to(self.device).train()
        if backbone is not None:
            state = {k: v for k, v in backbone.state_dict().items() if not k.startswith("head.")}
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("head.") for k in missing):  # only the class head starts fresh
                raise RuntimeError(f"init_from {cfg.init_from}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if cfg.linear_probe:
            for name, p in self.model.named_parameters():
                p.requires_grad_(name.startswith("head."))
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.net = dist_utils.wrap_model(self.model, self.info, cfg.parallel)
        self._optimizer([(n, p) for n, p in self.model.named_parameters() if p.requires_grad])

    def _inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return self._tokens(batch) if self.model_config.inputs == "tokens" else batch["video"]

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        if self.cfg.linear_probe:
            self.model.eval()  # a probe reads fixed features: no dropout in the frozen backbone
        losses, correct, seen = [], 0, 0
        for i, batch in enumerate(micro_batches):
            labels = batch["label"].long()
            if (labels < 0).any():
                raise ConfigError("the training data has no labels; use a class-folder source (data.source=DIR)")
            with self._sync(i), self.autocast():
                logits = self.net(self._inputs(batch)).logits
                loss = F.cross_entropy(logits.float(), labels)
            if torch.isfinite(loss):
                (loss / len(micro_batches)).backward()
            losses.append(loss.detach())
            correct += int((logits.argmax(-1) == labels).sum())
            seen += len(labels)
        return {**self._step(losses), "accuracy": correct / seen}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        from magvit2.understanding.evaluate import predict_dataset

        model = self.eval_model
        was = model.training
        model.eval()
        limit = min(self.cfg.eval_items, len(self.eval_dataset))
        preds, labels = predict_dataset(lambda b: model(self._inputs(b)).logits, self.eval_dataset,
                                        self.cfg.eval_batch, self.device, limit)
        model.train(was)
        return {"accuracy": float((preds == labels).float().mean())}

    def export(self) -> Path | None:
        weights = dist_utils.model_state(self.eval_model)
        if not self.info.is_main:
            return None
        model = VideoClassifier(self.model_config)
        model.load_state_dict(weights)
        return ClipClassifier(model, self.tokenizer, self.class_names).save_pretrained(self.out_dir / "export")


class PretrainTrainer(_UnderstandingTrainer):
    """Masked pre-training on unlabelled clips (labels, if any, are never read)."""

    cfg: PretrainConfig

    def __init__(self, cfg: PretrainConfig, dataset: Dataset | None = None) -> None:
        super().__init__(cfg, dataset if dataset is not None else build_dataset(cfg.data, train=True))

    def setup(self) -> None:
        cfg = self.cfg
        self.tokenizer = load_frozen_tokenizer(cfg.tokenizer, self.device) if cfg.targets == "tokens" else None
        self.model_config = _grid(cfg.model, cfg.data.num_frames, cfg.data.resolution, self.tokenizer)
        self.dataset = self._cache(self.dataset)
        self.model = MaskedVideoModel(VideoClassifier(self.model_config), cfg.targets, cfg.normalize_pixels)
        self.model.to(self.device).train()
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.net = dist_utils.wrap_model(self.model, self.info, cfg.parallel)
        self._optimizer(list(self.model.named_parameters()))

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        cfg = self.cfg
        losses, accs = [], []
        for i, batch in enumerate(micro_batches):
            video = batch["video"]
            masked = sample_mask(video.shape[0], self.model_config.grid, cfg.mask_ratio, cfg.masking, self.device)
            tokens = self._tokens(batch) if cfg.targets == "tokens" else None
            with self._sync(i), self.autocast():
                out = self.net(video, masked, tokens)
            if torch.isfinite(out.loss):
                (out.loss / len(micro_batches)).backward()
            losses.append(out.loss.detach())
            accs.append(float(out.accuracy))
        logs = self._step(losses)
        if cfg.targets == "tokens":
            logs["token_accuracy"] = sum(accs) / len(accs)
        return logs

    def export(self) -> Path | None:
        """The pre-trained backbone (without its prediction head), for ``init_from``."""
        weights = dist_utils.model_state(self.eval_model)
        if not self.info.is_main:
            return None
        model = MaskedVideoModel(VideoClassifier(self.model_config), self.cfg.targets, self.cfg.normalize_pixels)
        model.load_state_dict(weights)
        return ClipClassifier(model.backbone).save_pretrained(self.out_dir / "export")
