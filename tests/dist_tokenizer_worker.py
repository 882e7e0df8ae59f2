"""Run by ``torchrun --nproc_per_node 2`` from test_distributed.py: a few tiny DDP or FSDP2 steps on CPU.

Arguments: ``OUT [ddp|fsdp] [STEPS] [resume]``.

Each rank writes a fingerprint of its EMA weights and the codebook entropy it
saw, so the test can check that ranks agree. (Writing per-rank files is for the
test only; the trainer itself writes on rank 0.)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_tokenizer import Clips  # noqa: E402

from magvit2.train.config import TokenizerTrainConfig  # noqa: E402
from magvit2.train.tokenizer_trainer import TokenizerTrainer  # noqa: E402


def os_threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1


def main(out: str, parallel: str = "ddp", steps: str = "3", resume: str = "no") -> None:
    threads_at_start = os_threads()
    base = TokenizerTrainConfig.preset("tiny")
    cfg = dataclasses.replace(base, steps=int(steps), batch_size=2, log_every=1, eval_every=1000, ckpt_every=3,
                              out_dir=out, progress=False, device="cpu", parallel=parallel)
    cfg = cfg.override(["loss.adversarial.discriminator_start=1", "loss.perceptual_weight=0"])
    tr = TokenizerTrainer(cfg, Clips(n=8), eval_dataset=Clips(n=4))
    rng_after_resume = None
    if resume == "resume":
        assert tr.resume(), "no checkpoint to resume from"
        rng_after_resume = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
    tr.fit()
    rank = tr.info.rank
    h = hashlib.sha256()
    for v in tr.ema.model.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    x = torch.stack([Clips(n=8)[i + 4 * rank]["video"] for i in range(2)])
    model = tr.ema.model  # whole weights under DDP and FSDP2 alike
    z = model.encode_latent(x)
    q = model.quantize(z)  # codebook entropy through the all-reduce hook: same on both ranks
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"ema": h.hexdigest(), "codebook_entropy": float(q.codebook_entropy),
         "world": int(os.environ["WORLD_SIZE"]), "steps": tr.g_steps, "rng_after_resume": rng_after_resume}))
    from magvit2.train.distributed import cleanup

    cleanup()  # with the trainer (and its DDP/FSDP2 models) still alive: gloo's threads must be gone anyway
    Path(out, f"rank{rank}.threads.json").write_text(json.dumps({"at_start": threads_at_start,
                                                                 "after_cleanup": os_threads()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
