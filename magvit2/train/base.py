"""The loop every trainer shares: processes, data position, precision, non-finite steps,
checkpoints with exact resume, logging.

A subclass builds its models in ``setup()``, does one optimizer step in
``train_step(micro_batches)`` and returns scalar logs, and describes its state
through ``state()`` / ``load_state()``. Everything about processes lives here
and in :mod:`magvit2.train.distributed`; model code never sees it.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from magvit2.train import distributed as dist_utils
from magvit2.train.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from magvit2.train.config import RunConfig
from magvit2.train.logger import RunLogger
from magvit2.train.sampler import ResumableSampler

__all__ = ["Trainer", "NonFiniteError"]


class NonFiniteError(RuntimeError):
    """Too many non-finite steps in a row."""


class Trainer:
    """Subclasses implement ``setup``, ``train_step``, ``state``, ``load_state``; optionally ``evaluate`` and ``export``."""

    def __init__(self, cfg: RunConfig, dataset: Dataset) -> None:
        self.cfg = cfg
        self.info = dist_utils.init_distributed(cfg.device)
        self.device = self.info.device
        torch.manual_seed(cfg.seed)  # identical model initialisation on every rank
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.step = 0
        self.bad_in_a_row = 0
        self.skipped_steps = 0
        self.dataset = dataset
        self.sampler = ResumableSampler(len(dataset), cfg.seed, self.info.rank, self.info.world_size)
        self.epoch = 0
        self.batches_in_epoch = 0
        self.logger = RunLogger(self.out_dir, enabled=self.info.is_main)
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_yaml(self.out_dir / "config.yaml")  # the resolved config of this run
        self.setup()
        torch.manual_seed(cfg.seed + 1 + self.info.rank)  # per-rank streams for masking, dropout, augmentation

    # ----- to implement ---------------------------------------------------
    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float] | None:
        """One optimizer step; return scalar logs, or None when the step was skipped as non-finite."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        return {}

    def export(self) -> Path | None:
        return None

    # ----- helpers for subclasses ---------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def all_finite(self, *values: torch.Tensor) -> bool:
        """True when every value is finite on every rank (all ranks take the same decision)."""
        ok = torch.tensor(float(all(bool(torch.isfinite(v).all()) for v in values)), device=self.device)
        return bool(dist_utils.mean_across_ranks(ok) >= 1.0)

    def record_bad_step(self, what: str) -> None:
        self.bad_in_a_row += 1
        self.skipped_steps += 1
        if self.bad_in_a_row >= self.cfg.max_bad_steps:
            last = latest_checkpoint(self.ckpt_dir)
            raise NonFiniteError(
                f"{self.bad_in_a_row} non-finite steps in a row at step {self.step} ({what}); "
                f"last good checkpoint: {last if last else 'none written yet'}")

    def record_good_step(self) -> None:
        self.bad_in_a_row = 0

    def is_last_micro_batch(self, i: int) -> bool:
        return i == self.cfg.grad_accum - 1

    # ----- data -------------------------------------------------------------
    def _loader(self) -> DataLoader:
        # A private generator (seeded per epoch and rank) keeps worker seeding off the global RNG,
        # so creating a loader on resume does not shift the random stream of training.
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch * 1009 + self.info.rank)
        return DataLoader(self.dataset, batch_size=self.cfg.batch_size, sampler=self.sampler, drop_last=True,
                          num_workers=self.cfg.num_workers, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, generator=g)

    def _batches(self) -> Iterator[dict[str, Any]]:
        per_epoch = len(self.sampler) // self.cfg.batch_size
        if per_epoch < 1:
            raise ValueError(f"batch_size {self.cfg.batch_size} exceeds the {len(self.sampler)} samples per process")
        while True:
            if self.batches_in_epoch >= per_epoch:
                self.epoch, self.batches_in_epoch = self.epoch + 1, 0
            self.sampler.set_epoch(self.epoch, self.batches_in_epoch * self.cfg.batch_size)
            for batch in self._loader():
                self.batches_in_epoch += 1
                yield {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            self.epoch, self.batches_in_epoch = self.epoch + 1, 0

    # ----- checkpoints --------------------------------------------------------
    def save(self) -> Path | None:
        state = self.state()  # may involve collectives (FSDP), so every rank calls it
        if not self.info.is_main:
            dist_utils.barrier()
            return None
        state.update(step=self.step, epoch=self.epoch, batches_in_epoch=self.batches_in_epoch,
                     skipped_steps=self.skipped_steps, rng=rng_state(), config=self.cfg.to_dict())
        path = save_checkpoint(state, self.ckpt_dir, self.step, keep=self.cfg.keep_checkpoints)
        dist_utils.barrier()
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        """Load ``path`` or the latest checkpoint in the run directory; False if there is none."""
        path = Path(path) if path else latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        state = load_checkpoint(path, map_location=self.device)
        self.load_state(state)
        self.step, self.epoch = state["step"], state["epoch"]
        self.batches_in_epoch, self.skipped_steps = state["batches_in_epoch"], state["skipped_steps"]
        if self.info.is_main:
            set_rng_state(state["rng"])
        else:
            torch.manual_seed(self.cfg.seed + self.info.rank + 7919 * self.step)
        return True

    # ----- the loop ------------------------------------------------------------
    def fit(self, steps: int | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) total steps; returns the last logged scalars."""
        total = self.cfg.steps if steps is None else steps
        batches = self._batches()
        last: dict[str, float] = {}
        bar = None
        if self.info.is_main and self.cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc=type(self).__name__, dynamic_ncols=True)
        t0, samples = time.perf_counter(), 0
        try:
            while self.step < total:
                micro = [next(batches) for _ in range(self.cfg.grad_accum)]
                logs = self.train_step(micro)
                self.step += 1
                samples += self.cfg.batch_size * self.cfg.grad_accum * self.info.world_size
                if logs is not None:
                    last = logs
                if bar is not None:
                    bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == total:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    logs = {k: float(dist_utils.mean_across_ranks(torch.tensor(v, device=self.device)))
                            for k, v in last.items()}
                    logs.update(samples_per_s=samples / dt, skipped_steps=float(self.skipped_steps))
                    self.logger.scalars(self.step, logs)
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:5]})
                    t0, samples = time.perf_counter(), 0
                if self.step % self.cfg.eval_every == 0 or self.step == total:
                    ev = self.evaluate()
                    if ev:
                        self.logger.scalars(self.step, ev, prefix="eval")
                        last = {**last, **{f"eval_{k}": v for k, v in ev.items()}}
                if (self.step % self.cfg.ckpt_every == 0 or self.step == total) and self.bad_in_a_row == 0:
                    self.save()  # never during a run of non-finite steps: the last good checkpoint stays the latest
        finally:
            if bar is not None:
                bar.close()
        self.export()
        self.logger.close()
        return last

    @staticmethod
    def finite_or_nan(x: float) -> float:
        return x if math.isfinite(x) else float("nan")
