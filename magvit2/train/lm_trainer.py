"""Training the token language models on token shards (same loop, checkpoints and processes as the tokenizer)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from magvit2.config.base import ConfigError
from magvit2.data.tokens import TokenDataset
from magvit2.losses.lm import ar_loss, mlm_loss
from magvit2.generation.masking import frame_context_mask
from magvit2.generation.pipeline import VideoGenerator, build_lm
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.train import distributed as dist_utils
from magvit2.train.base import SingleModelTrainer
from magvit2.train.ema import EMA
from magvit2.train.lm_config import LMTrainConfig
from magvit2.train.schedule import warmup_cosine

__all__ = ["LMTrainer"]

#: Seed of the masks drawn for evaluation, so eval losses of different steps are comparable.
EVAL_MASK_SEED = 1234


class LMTrainer(SingleModelTrainer):
    cfg: LMTrainConfig

    def __init__(self, cfg: LMTrainConfig, dataset: Dataset | None = None) -> None:
        if dataset is None:
            if not cfg.tokens:
                raise ConfigError("no token data: set tokens=DIR (written by `magvit2 tokenize`)")
            dataset = TokenDataset(cfg.tokens)
        grid = tuple(dataset[0]["tokens"].shape)
        if grid != tuple(cfg.model.grid):
            raise ConfigError(f"token grid {grid} does not match model.grid {tuple(cfg.model.grid)}")
        super().__init__(cfg, dataset)

    def setup(self) -> None:
        cfg = self.cfg
        self.model = build_lm(cfg.model, cfg.kind).to(self.device).train()
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None  # before sharding: whole weights
        self.wrapped_model = dist_utils.wrap_model(self.model, self.info, cfg.parallel)  # before the optimizer (FSDP2)
        o = cfg.optim
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas))
        self.sched = warmup_cosine(self.opt, o.warmup_steps, cfg.steps, o.min_lr_ratio)

    @property
    def eval_model(self):
        return self.ema.model if self.ema is not None else self.model

    def _known(self, b: int) -> torch.Tensor | None:
        if self.cfg.context_prob <= 0:
            return None
        known = frame_context_mask(self.cfg.model.grid, self.cfg.context_frames, b, self.device)
        use = torch.rand(b, device=self.device) < self.cfg.context_prob
        return known & use[:, None]

    def _loss(self, model, batch: dict[str, Any]):
        tokens = batch["tokens"]
        cond = batch["label"] if self.cfg.model.num_classes > 0 else None
        known = self._known(tokens.shape[0])
        fn = mlm_loss if self.cfg.kind == "mlm" else ar_loss
        return fn(model, tokens, cond=cond, known=known)

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float] | None:
        n = len(micro_batches)
        losses, accs = [], []
        net = self.wrapped_model
        for i, batch in enumerate(micro_batches):
            sync = net.no_sync() if hasattr(net, "no_sync") and not self.is_last_micro_batch(i) else nullcontext()
            with sync, self.autocast():
                out = self._loss(net, batch)
            (out.loss / n).backward() if torch.isfinite(out.loss) else None
            losses.append(out.loss.detach())
            accs.append(float(out.token_accuracy))
        loss = torch.stack(losses).mean()
        step = self.optimizer_step(self.opt, self.sched, self.model.parameters(), loss, self.cfg.optim.grad_clip, "loss")
        logs = {"loss": float(loss), "token_accuracy": sum(accs) / n, "grad_norm": float(step.grad_norm),
                "lr": self.sched.get_last_lr()[0], "skipped": 0.0 if step.taken else 1.0}
        if step.taken:
            if self.ema is not None:
                self.ema.update(self.model)
            self.record_good_step()
        return logs

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        model = self.eval_model
        was = model.training
        model.eval()
        k = min(self.cfg.eval_batch, len(self.dataset))
        batch = {"tokens": torch.stack([self.dataset[i]["tokens"] for i in range(k)]).to(self.device),
                 "label": torch.tensor([self.dataset[i]["label"] for i in range(k)], device=self.device)}
        with torch.random.fork_rng(devices=[]):  # the same masks at every evaluation, training's stream untouched
            torch.manual_seed(EVAL_MASK_SEED)
            out = self._loss(model, batch)
        model.train(was)
        return {"loss": float(out.loss), "token_accuracy": float(out.token_accuracy)}

    def _tokenizer_dir(self) -> Path | None:
        if self.cfg.tokenizer:
            return Path(self.cfg.tokenizer)
        manifest = getattr(self.dataset, "manifest", {})
        return Path(manifest["tokenizer"]) if manifest.get("tokenizer") else None

    def export(self) -> Path | None:
        """Save the EMA model with its tokenizer as a :class:`VideoGenerator` in ``<out_dir>/export``."""
        weights = dist_utils.model_state(self.eval_model)  # a collective under FSDP2 without EMA
        if not self.info.is_main:
            return None
        tok_dir = self._tokenizer_dir()
        if tok_dir is None or not (tok_dir / "config.json").is_file():
            return None  # token data without a known tokenizer: checkpoints only
        gen = VideoGenerator(build_lm(self.cfg.model, self.cfg.kind), VideoTokenizer.from_pretrained(tok_dir))
        gen.lm.load_state_dict(weights)
        return gen.save_pretrained(self.out_dir / "export")
