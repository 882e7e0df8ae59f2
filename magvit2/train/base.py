"""The loop every trainer shares: processes, data position, precision, non-finite steps,
checkpoints with exact resume, logging.

A subclass builds its models in ``setup()``, does one optimizer step in
``train_step(micro_batches)`` (through :meth:`Trainer.optimizer_step`) and
returns scalar logs, and describes its state through ``state()`` /
``load_state()``. Everything about processes lives here and in
:mod:`magvit2.train.distributed`; model code never sees it.

Random streams. Every rank seeds ``cfg.seed`` before ``setup()`` so models start
identical everywhere, then switches to its own stream ``rank_seed(cfg.seed, rank)``
for masking, dropout and augmentation. Checkpoints hold every rank's RNG state,
so a resume with the same number of processes continues each stream exactly.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset

from magvit2.config.base import ConfigError
from magvit2.train import distributed as dist_utils
from magvit2.train.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from magvit2.train.config import RunConfig
from magvit2.train.logger import RunLogger
from magvit2.train.precision import Precision
from magvit2.train.sampler import ResumableSampler
from magvit2.train.schedule import restore_schedule

__all__ = ["Trainer", "SingleModelTrainer", "NonFiniteError", "OptimizerStep", "grad_norm", "rank_seed", "loader_seed"]


class NonFiniteError(RuntimeError):
    """Too many non-finite steps in a row."""


class OptimizerStep(NamedTuple):
    grad_norm: torch.Tensor  #: global gradient norm before clipping (whole tensors under FSDP2)
    taken: bool  #: False when the loss or the norm was non-finite on some rank and the step was skipped


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own random stream after model initialisation (``seed`` itself builds the models)."""
    return seed + 1 + rank


#: Primes that spread (seed, epoch, rank) over distinct DataLoader generator seeds: distinct for every
#: world size below 1009 and the first 991 epochs of each seed.
LOADER_SEED_STRIDE, LOADER_EPOCH_STRIDE = 1_000_003, 1009


def loader_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the DataLoader's private generator (worker seeding) for one epoch on one rank."""
    return seed * LOADER_SEED_STRIDE + epoch * LOADER_EPOCH_STRIDE + rank


#: Resuming with more processes than wrote the checkpoint: the new ranks' streams also depend on the step
#: (a prime stride, so different resume points give different streams).
RESUME_SEED_STRIDE = 7919


def grad_norm(params: Iterable[torch.Tensor], clip: float = 0.0) -> torch.Tensor:
    """Global gradient norm of ``params``, clipping the gradients to ``clip`` first when ``clip > 0``."""
    params = [p for p in params if p.grad is not None]
    return dist_utils.full_tensor(torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf")))


class Trainer:
    """Subclasses implement ``setup``, ``train_step``, ``state``, ``load_state``; optionally ``evaluate`` and ``export``."""

    def __init__(self, cfg: RunConfig, dataset: Dataset) -> None:
        self.cfg = cfg
        self.info = dist_utils.init_distributed(cfg.device)
        self.device = self.info.device
        self.precision = Precision.for_training(cfg.precision, self.device)  # refuses bf16 where it cannot work
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
        torch.manual_seed(rank_seed(cfg.seed, self.info.rank))  # per-rank streams for masking, dropout, augmentation

    # ----- to implement ---------------------------------------------------
    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float] | None:
        """One iteration; return this step's scalar logs. A step skipped as non-finite reports
        ``skipped=1`` with the values it computed (or returns None: then only ``skipped`` is logged)."""
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
        """The forward-pass precision context (bf16 autocast or nothing)."""
        return self.precision.autocast()

    def optimizer_step(self, opt: torch.optim.Optimizer, sched: Any, params: Iterable[torch.Tensor],
                       loss: torch.Tensor, clip: float, what: str) -> OptimizerStep:
        """Clip, check and step: the one optimizer step every trainer takes.

        Computes the gradient norm of ``params`` (clipping to ``clip`` when > 0); if ``loss`` and
        the norm are finite on every rank, steps ``opt`` and ``sched``, else drops the gradients
        and records a non-finite step (``what`` names the loss in the error). Gradients are
        cleared either way.
        """
        norm = grad_norm(params, clip)
        taken = self.all_finite(loss, norm)
        if taken:
            opt.step()
            sched.step()
        opt.zero_grad(set_to_none=True)
        if not taken:
            self.record_bad_step(f"{what} {float(loss):.4g}, grad norm {float(norm):.4g}")
        return OptimizerStep(norm, taken)

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
        gen = torch.Generator().manual_seed(loader_seed(self.cfg.seed, self.epoch, self.info.rank))
        return DataLoader(self.dataset, batch_size=self.cfg.batch_size, sampler=self.sampler, drop_last=True,
                          num_workers=self.cfg.num_workers, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, generator=gen)

    def _batches(self) -> Iterator[dict[str, Any]]:
        per_epoch = len(self.sampler) // self.cfg.batch_size
        if per_epoch < 1:
            raise ConfigError(f"batch_size {self.cfg.batch_size} exceeds the {len(self.sampler)} samples per process")
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
        rngs = dist_utils.gather_objects(rng_state())  # every rank's stream, in rank order (a collective)
        if not self.info.is_main:
            dist_utils.barrier()
            return None
        state.update(step=self.step, epoch=self.epoch, batches_in_epoch=self.batches_in_epoch,
                     skipped_steps=self.skipped_steps, rng=rngs, config=self.cfg.to_dict())
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
        rng = self._rank_rng(state["rng"])
        if rng is not None:
            set_rng_state(rng)
        else:  # a rank the checkpoint did not have: a fresh stream of its own
            torch.manual_seed(rank_seed(self.cfg.seed, self.info.rank) + RESUME_SEED_STRIDE * self.step)
        return True

    def _rank_rng(self, saved: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any] | None:
        """This rank's saved RNG state, or None when the checkpoint holds none for this rank."""
        if isinstance(saved, dict):  # written before per-rank states were saved: rank 0's only
            saved = [saved]
        if len(saved) != self.info.world_size and self.info.is_main:
            warnings.warn(f"checkpoint was written by {len(saved)} process(es), this run has "
                          f"{self.info.world_size}: data order and random streams will differ from an "
                          "uninterrupted run", stacklevel=3)
        return saved[self.info.rank] if self.info.rank < len(saved) else None

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
                with self.precision.kernels():
                    logs = self.train_step(micro)
                self.step += 1
                samples += self.cfg.batch_size * self.cfg.grad_accum * self.info.world_size
                last = logs if logs is not None else {"skipped": 1.0}  # this step's own values, never older ones
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


class SingleModelTrainer(Trainer):
    """A trainer of one model with an optional EMA, one optimizer and one scheduler.

    Subclasses set ``self.model`` (wrapped for processes or not), ``self.ema`` (an
    :class:`~magvit2.train.ema.EMA` or None), ``self.opt`` and ``self.sched`` in
    ``setup()``; the checkpoint state is those four, as whole tensors.
    """

    def state(self) -> dict[str, Any]:
        return {"model": dist_utils.model_state(self.model), "ema": self.ema.state_dict() if self.ema else None,
                "opt": dist_utils.optimizer_state(self.model, self.opt), "sched": self.sched.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        dist_utils.load_model_state(self.model, state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        dist_utils.load_optimizer_state(self.model, self.opt, state["opt"])
        restore_schedule(self.sched, state["sched"], self.cfg.optim.lr, self.cfg.optim.betas)
