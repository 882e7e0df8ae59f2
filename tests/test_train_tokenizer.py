"""The tokenizer trainer: optimizer stepping, exact resume, non-finite handling, learning on real clips."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from magvit2.losses.adversarial import AdversarialConfig
from magvit2.train.base import NonFiniteError
from magvit2.train.checkpoint import latest_checkpoint, load_checkpoint
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.schedule import lr_factor
from magvit2.train.tokenizer_trainer import TokenizerTrainer


class Clips(Dataset):
    """Smooth random clips (fast, deterministic per index); ``poison`` makes them NaN."""

    def __init__(self, n: int = 16, t: int = 5, size: int = 16) -> None:
        self.n, self.t, self.size, self.poison = n, t, size, False

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        low = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1
        v = torch.nn.functional.interpolate(low, size=(self.size, self.size), mode="bilinear", align_corners=False)
        v = v.unsqueeze(1).expand(3, self.t, 1, self.size, self.size).squeeze(2).contiguous()
        if self.poison:
            v = torch.full_like(v, float("nan"))
        return {"video": v, "label": 0, "index": i}


def _cfg(tmp_path: Path, **kw) -> TokenizerTrainConfig:
    base = TokenizerTrainConfig.preset("tiny")
    loss = dataclasses.replace(base.loss, adversarial=AdversarialConfig(discriminator_start=2, r1_interval=2))
    opts = dict(steps=6, batch_size=2, log_every=1, eval_every=1000, ckpt_every=1000, out_dir=str(tmp_path / "run"),
                loss=loss, progress=False, device="cpu")
    opts.update(kw)
    return dataclasses.replace(base, **opts)


def _logged(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["split"] == "train"}


def _assert_every_step_finite(logged: dict[int, dict], steps: int, gan_from: int) -> None:
    """Every logged step of a GAN + R1 run is finite and was taken; R1 ran on the lazy-R1 steps."""
    assert sorted(logged) == list(range(1, steps + 1))
    for step, row in logged.items():
        assert row["skipped"] == 0.0, (step, row)
        keys = ("loss_g", "recon", "grad_norm_g") + (("loss_d", "grad_norm_d", "r1", "lecam") if step >= gan_from else ())
        for key in keys:
            assert isinstance(row[key], float) and math.isfinite(row[key]), (step, key, row[key])
    assert logged[gan_from]["r1"] > 0  # step 3 is iteration 2: an R1 step (r1_interval=2)


def test_each_optimizer_steps_exactly_once_per_iteration(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, steps=5, grad_accum=2)
    tr = TokenizerTrainer(cfg, Clips(), eval_dataset=Clips())
    tr.fit()
    g_param = next(tr.model.parameters())
    d_param = next(tr.disc.parameters())
    assert int(tr.opt_g.state[g_param]["step"]) == 5  # every iteration
    assert int(tr.opt_d.state[d_param]["step"]) == 3  # every iteration from discriminator_start=2
    assert (tr.g_steps, tr.d_steps) == (5, 3)


def test_resume_gives_identical_losses(tmp_path: Path) -> None:
    straight = _cfg(tmp_path / "a")
    TokenizerTrainer(straight, Clips(), eval_dataset=Clips()).fit()
    TokenizerTrainer(_cfg(tmp_path / "b"), Clips(), eval_dataset=Clips()).fit(3)  # interrupted at step 3
    resumed = TokenizerTrainer(_cfg(tmp_path / "b"), Clips(), eval_dataset=Clips())
    assert resumed.resume() and resumed.step == 3
    resumed.fit()
    a, b = _logged(tmp_path / "a" / "run"), _logged(tmp_path / "b" / "run")
    for step in (4, 5, 6):
        for key in ("loss_g", "recon", "loss_d", "grad_norm_g"):
            assert a[step][key] == b[step][key], (step, key)


def test_resume_takes_learning_rate_and_betas_from_the_config(tmp_path: Path) -> None:
    """A checkpoint stores the old peak lr and betas; a resumed run with new ones must use the new ones."""
    TokenizerTrainer(_cfg(tmp_path), Clips(), eval_dataset=Clips()).fit(3)
    base = _cfg(tmp_path)
    optim = dataclasses.replace(base.optim, lr=base.optim.lr / 4, betas=(0.5, 0.9))
    disc_optim = dataclasses.replace(base.disc_optim, lr=base.disc_optim.lr / 8)
    resumed = TokenizerTrainer(dataclasses.replace(base, steps=12, optim=optim, disc_optim=disc_optim), Clips(),
                               eval_dataset=Clips())
    assert resumed.resume() and resumed.step == 3
    for opt, sched, o in ((resumed.opt_g, resumed.sched_g, optim), (resumed.opt_d, resumed.sched_d, disc_optim)):
        # the new peak on the new schedule, at the scheduler's own step (the discriminator's started later)
        expected = o.lr * lr_factor(sched.last_epoch, o.warmup_steps, 12, o.min_lr_ratio)
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(expected) and group["initial_lr"] == o.lr
            assert tuple(group["betas"]) == tuple(o.betas)
        assert sched.get_last_lr() == pytest.approx([expected] * len(opt.param_groups))
    assert resumed.sched_g.last_epoch == 3 and resumed.sched_d.last_epoch == resumed.d_steps
    resumed.fit(4)
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(optim.lr * lr_factor(4, optim.warmup_steps, 12,
                                                                                     optim.min_lr_ratio))


def test_non_finite_steps_are_skipped_then_abort(tmp_path: Path) -> None:
    data = Clips()
    cfg = _cfg(tmp_path, steps=10, ckpt_every=1, max_bad_steps=3)
    tr = TokenizerTrainer(cfg, data, eval_dataset=Clips())
    tr.fit(2)
    good = {k: v.clone() for k, v in tr.model.state_dict().items()}
    data.poison = True
    tr2 = TokenizerTrainer(cfg, data, eval_dataset=Clips())
    assert tr2.resume()
    with pytest.raises(NonFiniteError, match="3 non-finite steps in a row"):
        tr2.fit()
    assert tr2.skipped_steps == 3
    for k, v in tr2.model.state_dict().items():  # skipped steps changed nothing
        assert torch.equal(v, good[k]), k
    logged = _logged(tmp_path / "run")
    assert logged[2]["skipped"] == 0.0 and math.isfinite(logged[2]["recon"])
    for step in (3, 4):  # logged as skipped, with their own (non-finite) values, not step 2's
        assert logged[step]["skipped"] == 1.0 and logged[step]["skipped_steps"] == step - 2, logged[step]
        assert logged[step]["recon"] == "nan" and logged[step]["loss_g"] == "nan", logged[step]
    last = latest_checkpoint(tr2.ckpt_dir)
    assert last is not None and load_checkpoint(last)["step"] == 2


@pytest.mark.slow
def test_tiny_tokenizer_learns_on_real_clips(tmp_path: Path) -> None:
    """A few dozen steps on real in-package clips improve held-out PSNR and keep bits in use."""
    from magvit2.data import DataConfig

    base = TokenizerTrainConfig.preset("tiny")
    data = DataConfig(source="packaged", num_frames=5, resolution=32, clips_per_video=8)
    cfg = dataclasses.replace(base, steps=40, batch_size=4, out_dir=str(tmp_path / "run"), progress=False,
                              device="cpu", data=data, eval_every=1000, ckpt_every=1000, ema_decay=0.0)
    tr = TokenizerTrainer(cfg)
    before = tr.evaluate()
    tr.fit()
    after = tr.evaluate()
    assert after["psnr"] > before["psnr"] + 2.0, (before, after)
    assert after["balanced_bits"] >= 0.5, after
    assert (tmp_path / "run" / "export" / "model.safetensors").is_file()


def test_bf16_training_matches_fp32_and_keeps_the_quantizer_fp32(tmp_path: Path) -> None:
    """precision=bf16: finite steps with GAN and R1, losses close to fp32 from the same start, LFQ math in fp32."""
    runs = {}
    for precision in ("fp32", "bf16"):
        tr = TokenizerTrainer(_cfg(tmp_path / precision, steps=4, precision=precision), Clips(), eval_dataset=Clips())
        tr.fit()
        assert tr.skipped_steps == 0 and tr.d_steps == 2
        runs[precision] = (tr, _logged(tmp_path / precision / "run"))
    (tr, bf16), (_, fp32) = runs["bf16"], runs["fp32"]
    for key in ("recon", "loss_g"):  # step 1: same weights and batch; only the arithmetic differs
        assert abs(bf16[1][key] - fp32[1][key]) <= 0.05 * abs(fp32[1][key]) + 1e-3, (key, bf16[1][key], fp32[1][key])
    _assert_every_step_finite(bf16, steps=4, gan_from=3)
    x = Clips()[0]["video"][None]
    with tr.autocast():
        out = tr.model(x)
    assert out.latent.dtype == torch.bfloat16  # the network ran in bf16 ...
    q = out.quantizer
    assert q.per_sample_entropy.dtype == q.codebook_entropy.dtype == torch.float32  # ... the quantizer did not


_FORCED_KERNELS_RUN = """
import json, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from test_train_tokenizer import Clips, _cfg, _logged
from magvit2.train.tokenizer_trainer import TokenizerTrainer
from pathlib import Path
tr = TokenizerTrainer(_cfg(Path(sys.argv[2]), steps=4, precision="bf16"), Clips(), eval_dataset=Clips())
tr.fit()
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "onednn": tr.precision.onednn,
                  "skipped": tr.skipped_steps, "d_steps": tr.d_steps}))
"""


def test_bf16_gan_r1_run_is_finite_with_kernels_for_cpus_without_avx512(tmp_path: Path) -> None:
    """The same bf16 GAN + R1 run in a process whose ATen and oneDNN kernels are forced to AVX2 (no native bf16)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _FORCED_KERNELS_RUN, str(Path(__file__).parent), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["capability"] == "AVX2"  # the forced kernels are really in use
    assert got["skipped"] == 0 and got["d_steps"] == 2, got
    _assert_every_step_finite(_logged(tmp_path / "run"), steps=4, gan_from=3)
