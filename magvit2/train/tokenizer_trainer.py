"""Tokenizer training: generator (tokenizer) and discriminator, each stepping once per iteration.

Per iteration: the tokenizer takes one optimizer step on the generator loss
(reconstruction + perceptual + adversarial + LFQ), then, once the GAN has
started, the discriminator takes exactly one step on its loss (non-saturating
+ LeCam + lazy R1) using the reconstructions of the same micro-batches.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from magvit2.data import build_dataset
from magvit2.data.transforms import to_uint8
from magvit2.data.writers import make_grid
from magvit2.eval.metrics import psnr
from magvit2.losses.tokenizer_loss import TokenizerLoss
from magvit2.quantizers import code_usage
from magvit2.tokenizer.discriminator import StyleGANDiscriminator
from magvit2.tokenizer.grow import grow_bits
from magvit2.tokenizer.inflate import inflate_tokenizer
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.train import distributed as dist_utils
from magvit2.train.base import Trainer
from magvit2.train.config import OptimConfig, TokenizerTrainConfig
from magvit2.train.ema import EMA
from magvit2.train.schedule import restore_schedule, warmup_cosine

__all__ = ["TokenizerTrainer"]


def _adam(params, o: OptimConfig, steps: int):
    opt = torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    return opt, warmup_cosine(opt, o.warmup_steps, steps, o.min_lr_ratio)


class TokenizerTrainer(Trainer):
    cfg: TokenizerTrainConfig

    def __init__(self, cfg: TokenizerTrainConfig, dataset: Dataset | None = None,
                 eval_dataset: Dataset | None = None) -> None:
        self._eval_dataset = eval_dataset
        super().__init__(cfg, dataset if dataset is not None else build_dataset(cfg.data, train=True))

    # ----- construction -------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        hook = dist_utils.all_reduce_mean if self.info.distributed else None
        if cfg.init_from:
            src = VideoTokenizer.from_pretrained(cfg.init_from)
            if src.config == cfg.model:
                model = src
            elif src.config.bits < cfg.model.bits and replace(src.config, bits=cfg.model.bits) == cfg.model:
                model = grow_bits(src, cfg.model.bits)  # same layout, more bits per token
            else:
                model = inflate_tokenizer(src, cfg.model)
            model.quantizer.reduce_hook = hook
        else:
            model = VideoTokenizer(cfg.model, reduce_hook=hook)
        self.model = model.to(self.device).train()
        self.disc = StyleGANDiscriminator(cfg.discriminator).to(self.device).train()
        self.loss = TokenizerLoss(cfg.loss).to(self.device)
        self.loss.prepare(self.device)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None  # before sharding: whole weights
        # DDP / FSDP2 wrappers used for the forward passes; self.model and self.disc stay the plain modules
        self.wrapped_model = dist_utils.wrap_model(self.model, self.info, cfg.parallel)
        self.wrapped_disc = dist_utils.wrap_model(self.disc, self.info, cfg.parallel)
        self.opt_g, self.sched_g = _adam(self.model.parameters(), cfg.optim, cfg.steps)  # after: FSDP2 swaps params
        self.opt_d, self.sched_d = _adam(self.disc.parameters(), cfg.disc_optim, cfg.steps)
        self.d_steps = 0  # discriminator optimizer steps taken (one per iteration once the GAN is on)
        self.g_steps = 0
        self._eval_batch: torch.Tensor | None = None

    @property
    def eval_model(self) -> VideoTokenizer:
        return self.ema.model if self.ema is not None else self.model

    # ----- one iteration ------------------------------------------------------
    def _sync(self, module: nn.Module, i: int) -> contextlib.AbstractContextManager:
        """Skip DDP gradient sync on all but the last micro-batch."""
        if hasattr(module, "no_sync") and not self.is_last_micro_batch(i):
            return module.no_sync()
        return contextlib.nullcontext()

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float] | None:
        cfg, step = self.cfg, self.step
        n = len(micro_batches)
        gan_on = self.loss.adversarial.active(step)
        ent_w = self.loss.entropy_weight(step)
        # --- generator ---
        self.disc.requires_grad_(False)
        fakes, logs, losses = [], {}, []
        for i, batch in enumerate(micro_batches):
            x = batch["video"]
            with self._sync(self.wrapped_model, i), self.autocast():
                out = self.wrapped_model(x, entropy_weight=ent_w)
                g_loss = self.loss.generator(x, out, step, disc=self.disc if gan_on else None)
            (g_loss.loss / n).backward() if torch.isfinite(g_loss.loss) else None
            losses.append(g_loss.loss.detach())
            fakes.append(out.reconstruction.detach())
            for k in ("recon", "perceptual", "adversarial", "quantizer"):
                logs[k] = logs.get(k, 0.0) + float(getattr(g_loss, k)) / n
            logs.update({k: float(v.detach()) for k, v in out.quantizer.metrics.items()})  # whatever it reports
        self.disc.requires_grad_(True)
        loss_g = torch.stack(losses).mean()
        g_step = self.optimizer_step(self.opt_g, self.sched_g, self.model.parameters(), loss_g,
                                     cfg.optim.grad_clip, "generator loss")
        logs.update(loss_g=float(loss_g), grad_norm_g=float(g_step.grad_norm), lr=self.sched_g.get_last_lr()[0],
                    entropy_weight=ent_w)
        if not g_step.taken:
            return {**logs, "skipped": 1.0}
        self.g_steps += 1
        if self.ema is not None:
            self.ema.update(self.model)
        # --- discriminator: exactly one step per iteration once the GAN is on ---
        if gan_on:
            d_losses = []
            for i, (batch, fake) in enumerate(zip(micro_batches, fakes)):
                with self._sync(self.wrapped_disc, i), self.autocast():
                    d_loss = self.loss.discriminator(self.wrapped_disc, batch["video"], fake, step)
                (d_loss.loss / n).backward() if torch.isfinite(d_loss.loss) else None
                d_losses.append(d_loss.loss.detach())
                logs.update(logit_real=float(d_loss.logits_real), logit_fake=float(d_loss.logits_fake),
                            lecam=float(d_loss.lecam), r1=float(d_loss.r1))
            loss_d = torch.stack(d_losses).mean()
            d_step = self.optimizer_step(self.opt_d, self.sched_d, self.disc.parameters(), loss_d,
                                         cfg.disc_optim.grad_clip, "discriminator loss")
            logs.update(loss_d=float(loss_d), grad_norm_d=float(d_step.grad_norm))
            if not d_step.taken:
                return {**logs, "skipped": 1.0}
            self.d_steps += 1
        self.record_good_step()
        return {**logs, "skipped": 0.0}

    # ----- evaluation ----------------------------------------------------------
    def _eval_videos(self) -> torch.Tensor:
        if self._eval_batch is None:
            ds = self._eval_dataset
            if ds is None:
                ds = build_dataset(self.cfg.eval_data or self.cfg.data, train=False)
            k = min(self.cfg.eval_batch, len(ds))
            self._eval_batch = torch.stack([ds[i]["video"] for i in range(k)]).to(self.device)
        return self._eval_batch

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        model = self.eval_model
        was_training = model.training
        model.eval()
        x = self._eval_videos()
        out = model(x)
        usage = code_usage(out.indices, self.cfg.model.token_bits)
        metrics = {"psnr": float(psnr(x, out.reconstruction.clamp(-1, 1)).mean()),
                   "balanced_bits": float(usage.balanced_bit_fraction),
                   "perplexity": float(usage.perplexity),
                   "distinct_codes": float(usage.distinct_codes)}
        if self.info.is_main:
            real, fake = to_uint8(x), to_uint8(out.reconstruction)  # [b, t, h, w, c]
            frames = [im for pair in zip(real[:, 0], fake[:, 0]) for im in pair]
            self.logger.image("recon_first_frame", self.step, make_grid(frames, nrow=2))
            clip = np.concatenate([real[0], fake[0]], axis=2)  # real | reconstruction, side by side
            if clip.shape[0] > 1:
                self.logger.clip("recon_clip", self.step, clip)
        model.train(was_training)
        return metrics

    # ----- state ----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        # whole tensors under FSDP2 too (collectives: every rank calls state())
        return {
            "model": dist_utils.model_state(self.model), "disc": dist_utils.model_state(self.disc),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "loss": self.loss.state_dict(),
            "opt_g": dist_utils.optimizer_state(self.model, self.opt_g),
            "opt_d": dist_utils.optimizer_state(self.disc, self.opt_d),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "g_steps": self.g_steps, "d_steps": self.d_steps,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        dist_utils.load_model_state(self.model, state["model"])
        dist_utils.load_model_state(self.disc, state["disc"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.loss.load_state_dict(state["loss"])
        dist_utils.load_optimizer_state(self.model, self.opt_g, state["opt_g"])
        dist_utils.load_optimizer_state(self.disc, self.opt_d, state["opt_d"])
        restore_schedule(self.sched_g, state["sched_g"], self.cfg.optim.lr, self.cfg.optim.betas)
        restore_schedule(self.sched_d, state["sched_d"], self.cfg.disc_optim.lr, self.cfg.disc_optim.betas)
        self.g_steps, self.d_steps = state["g_steps"], state["d_steps"]

    def export(self) -> Path | None:
        """Save the EMA tokenizer (or the raw one without EMA) as ``<out_dir>/export``."""
        model = self.eval_model
        sharded = dist_utils.is_sharded(model)  # no EMA under FSDP2: gather the weights on every rank
        state = dist_utils.model_state(model) if sharded else None
        if not self.info.is_main:
            return None
        if sharded:  # save a plain copy
            model = VideoTokenizer(self.cfg.model)
            model.load_state_dict(state)
        return model.save_pretrained(self.out_dir / "export")
