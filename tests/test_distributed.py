"""Two gloo processes on CPU under torchrun: DDP and FSDP2 training, global codebook entropy, identical EMA,
rank-0 writing, whole-tensor checkpoints and resume under FSDP2."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "dist_tokenizer_worker.py"), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def check_ranks(out: Path, steps: int) -> None:
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["steps"] == r1["steps"] == steps
    assert r0["ema"] == r1["ema"], "EMA weights differ across ranks"
    assert abs(r0["codebook_entropy"] - r1["codebook_entropy"]) < 1e-6, "codebook entropy is not global"
    for r in (0, 1):  # cleanup() joined gloo's worker threads although the wrapped models are still alive
        threads = json.loads((out / f"rank{r}.threads.json").read_text())
        assert threads["after_cleanup"] == threads["at_start"], threads


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    torchrun(str(out), "ddp")
    return out


@pytest.mark.slow
def test_two_process_training(ddp_run: Path) -> None:
    check_ranks(ddp_run, 3)
    ckpts = sorted(p.name for p in (ddp_run / "checkpoints").glob("step_*.pt"))
    assert ckpts == ["step_0000003.pt"]
    assert (ddp_run / "export" / "model.safetensors").is_file()


@pytest.mark.slow
def test_fsdp_matches_ddp_and_resumes(ddp_run: Path, tmp_path: Path) -> None:
    from magvit2.tokenizer import VideoTokenizer
    from magvit2.train.config import TokenizerTrainConfig

    out = tmp_path / "fsdp"
    torchrun(str(out), "fsdp")
    check_ranks(out, 3)
    # The checkpoint holds whole tensors (not rank 0's shards). The training update equals the DDP run's up
    # to float rounding, which Adam amplifies where a gradient is near zero (its first steps are ~sign(g)).
    ddp = torch.load(ddp_run / "checkpoints" / "step_0000003.pt", map_location="cpu", weights_only=False)["model"]
    fsdp = torch.load(out / "checkpoints" / "step_0000003.pt", map_location="cpu", weights_only=False)["model"]
    cfg = TokenizerTrainConfig.preset("tiny")
    torch.manual_seed(cfg.seed)  # the trainers' initialisation
    init = VideoTokenizer(cfg.model).state_dict()
    assert ddp.keys() == fsdp.keys() == init.keys()
    diff = ref = 0.0
    for k, v in ddp.items():
        w = fsdp[k]
        assert type(w) is torch.Tensor and w.shape == v.shape, k
        if v.is_floating_point():
            diff += float(((w - v) ** 2).sum())
            ref += float(((v - init[k]) ** 2).sum())
    assert ref ** 0.5 > 0.1, "the weights did not train, so the comparison says nothing"
    assert (diff / ref) ** 0.5 < 0.1, f"FSDP2 and DDP updates differ by {(diff / ref) ** 0.5:.1%}"
    VideoTokenizer.from_pretrained(out / "export")  # the export is a plain, loadable model
    # Resume under FSDP2 from the whole-tensor checkpoint and train one more step.
    torchrun(str(out), "fsdp", "4", "resume")
    check_ranks(out, 4)
    assert (out / "checkpoints" / "step_0000004.pt").is_file()
    # Every rank's random stream was saved and each rank resumed its own (not a reseeded one).
    saved = torch.load(out / "checkpoints" / "step_0000003.pt", map_location="cpu", weights_only=False)["rng"]
    assert len(saved) == 2 and not torch.equal(saved[0]["torch"], saved[1]["torch"])
    for rank in (0, 1):
        got = json.loads((out / f"rank{rank}.json").read_text())["rng_after_resume"]
        assert got == hashlib.sha256(saved[rank]["torch"].numpy().tobytes()).hexdigest(), f"rank {rank}"
