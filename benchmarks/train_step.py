"""Tokenizer training-step time, side by side with lucidrains' magvit2-pytorch trainer.

    python benchmarks/train_step.py                        # tiny and small presets (+ peer if installed)
    python benchmarks/train_step.py --peer-path DIR        # peer installed with `pip install --target DIR`
    python benchmarks/train_step.py --presets image-128 --batch 1 --frames 1 --size 128 --no-peer

One timed step is one training iteration of each project's own trainer, GAN on, fp32, after one
warm-up iteration, with the perceptual loss on and then off (the peer's perceptual loss runs all of
VGG16 including its 4096-wide dense layers, ours the LPIPS convolutions, so "off" compares the
tokenizers and discriminators alone):

* ours: ``TokenizerTrainer.train_step``: one generator step and one discriminator step on the same
  batch, LPIPS-VGG on every frame, lazy R1 every 16 steps, EMA update.
* peer: ``magvit2_pytorch.VideoTokenizerTrainer.train_step`` (CPU ``accelerate``): one generator
  step and one discriminator step, each on its own batch, perceptual loss on one random frame per
  clip, adaptive GAN weight, gradient penalty every 16 steps, EMA update. Its discriminator
  optimizer steps twice per iteration (a bug of the peer, timed as it is).

The peer is built at the preset's size: ``init_dim`` = base channels, one ``residual`` layer per
block, ``compress_space`` to each next width and ``compress_time`` where the preset halves time,
the same number of bits, and a discriminator of the preset's base width. The peer's perceptual
loss needs torchvision's pretrained VGG16, which cannot be downloaded offline and whose wheel does
not install beside this torch; the benchmark gives it a VGG16 of the same architecture with random
weights (the same arithmetic) and, when torchvision is missing, a minimal import stand-in, so the
peer code itself runs unmodified. Install the peer without dependencies, e.g.:

    pip install --no-deps --target /some/dir magvit2-pytorch==0.5.1 beartype ema-pytorch \\
        pytorch-warmup gateloop-transformer rotary-embedding-torch kornia kornia-rs \\
        pytorch-custom-utils taylor-series-linear-attention x-transformers jaxtyping accelerate psutil

(vector-quantize-pytorch must be importable too.)
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
import types
from datetime import date

import torch
from torch import nn
from torch.utils.data import Dataset

from magvit2.losses.adversarial import AdversarialConfig
from magvit2.train.config import TokenizerTrainConfig
from magvit2.train.tokenizer_trainer import TokenizerTrainer


class Noise(Dataset):
    """Random clips ``[3, t, s, s]`` in [-1, 1]; ``peer=True`` returns bare tensors (the peer's item format)."""

    def __init__(self, frames: int, size: int, peer: bool = False) -> None:
        self.shape, self.peer = (3, frames, size, size), peer

    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int):
        video = torch.rand(self.shape, generator=torch.Generator().manual_seed(i)) * 2 - 1
        return video if self.peer else {"video": video, "label": 0, "index": i}


def n_params(module: nn.Module | list) -> int:
    params = module.parameters() if isinstance(module, nn.Module) else module
    return sum(p.numel() for p in params)


def time_ours(preset: str, batch: int, frames: int, size: int, steps: int, perceptual: bool) -> tuple[float, int, int]:
    base = TokenizerTrainConfig.preset(preset)
    loss = dataclasses.replace(base.loss, adversarial=AdversarialConfig(discriminator_start=0, r1_interval=16),
                               perceptual_weight=base.loss.perceptual_weight if perceptual else 0.0)
    with tempfile.TemporaryDirectory() as d:
        cfg = dataclasses.replace(base, batch_size=batch, out_dir=d, progress=False, device="cpu", loss=loss,
                                  precision="fp32")
        tr = TokenizerTrainer(cfg, Noise(frames, size), eval_dataset=Noise(frames, size))
        batches = tr._batches()
        tr.train_step([next(batches)])  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step([next(batches)])
        return (time.perf_counter() - t0) / steps, n_params(tr.model), n_params(tr.disc)


# ----- the peer ---------------------------------------------------------------------------------------------
def _stand_in_torchvision() -> None:
    """Register a minimal ``torchvision`` so the peer imports; only names it touches at import time exist."""
    def lazy(name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: None  # transforms / utils helpers, unused by the timed step

    tv, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
    models.VGG16_Weights = type("VGG16_Weights", (), {"DEFAULT": None})
    tv.models, tv.transforms, tv.utils = models, types.ModuleType("torchvision.transforms"), types.ModuleType("torchvision.utils")
    for m in (tv.transforms, tv.utils):
        m.__getattr__ = lazy
    sys.modules.update({"torchvision": tv, "torchvision.models": models,
                        "torchvision.transforms": tv.transforms, "torchvision.utils": tv.utils})
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))  # only the peer's video-file loader uses OpenCV


def import_peer(path: str | None):
    if path:
        sys.path.insert(0, path)
    try:
        import torchvision  # noqa: F401
    except Exception:
        _stand_in_torchvision()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import magvit2_pytorch
    return magvit2_pytorch


def vgg16_architecture() -> nn.Module:
    """torchvision's VGG16 layout (features, 7x7 average pool, classifier without its last two layers)."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                         nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True))


def peer_layers(preset: str) -> tuple:
    m = TokenizerTrainConfig.preset(preset).model
    layers: list = []
    for i, mult in enumerate(m.channel_multipliers):
        layers += ["residual"] * m.num_res_blocks
        if i + 1 < len(m.channel_multipliers):
            width = m.base_channels * m.channel_multipliers[i + 1]
            layers.append(("compress_space", width))
            if m.temporal_downsample[i]:
                layers.append(("compress_time", width))
    return tuple(layers + ["residual"] * m.num_res_blocks)


def time_peer(peer, preset: str, batch: int, frames: int, size: int, steps: int, perceptual: bool) -> tuple[float, int, int]:
    cfg = TokenizerTrainConfig.preset(preset)
    m, dc = cfg.model, cfg.discriminator
    tok = peer.VideoTokenizer(
        image_size=size, init_dim=m.base_channels, layers=peer_layers(preset), codebook_size=2 ** m.bits,
        vgg=vgg16_architecture() if perceptual else None, perceptual_loss_weight=0.1 if perceptual else 0.0,
        use_gan=True, flash_attn=False,
        discr_kwargs=dict(dim=dc.base_channels, image_size=size, channels=3,
                          max_dim=dc.base_channels * max(dc.channel_multipliers)))
    peer.VideoTokenizerTrainer.print = lambda self, *a, **k: None  # silence its per-step loss prints
    with tempfile.TemporaryDirectory() as d:
        tr = peer.VideoTokenizerTrainer(
            tok, batch_size=batch, num_train_steps=steps + 1, learning_rate=1e-4, dataset=Noise(frames, size, peer=True),
            valid_frac=0.0, num_frames=frames, discr_start_after_step=0, warmup_steps=10,
            apply_gradient_penalty_every=16, checkpoints_folder=f"{d}/ckpt", results_folder=f"{d}/results",
            accelerate_kwargs={"cpu": True})
        dl = iter(_cycle(tr.dataloader))
        tr.train_step(dl)  # warm-up (its gradient-penalty step)
        t0 = time.perf_counter()
        for _ in range(steps):
            tr.train_step(dl)
        return (time.perf_counter() - t0) / steps, n_params(tok.parameters()), n_params(tok.discr)


def _cycle(loader):
    while True:
        yield from loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peer-path", default=None, help="folder to put first on sys.path for magvit2_pytorch")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    peer = None
    if not args.no_peer:
        try:
            peer = import_peer(args.peer_path)
        except ImportError as e:
            print(f"# peer not timed: magvit2_pytorch does not import ({e}); see this script's docstring")
    version = getattr(getattr(peer, "version", None), "__version__", "?") if peer else None
    print(f"# tokenizer train step, batch {args.batch} x {args.frames}x{args.size}x{args.size}, fp32, "
          f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {date.today()}"
          + (f", magvit2-pytorch {version}" if peer else ""))
    print("| preset | perceptual loss | ours s/step | ours G / D params | peer s/step | peer G / D params | peer / ours time |")
    print("|---|---|---|---|---|---|---|")
    for p in args.presets.split(","):
        for perceptual in (True, False):
            ours, g, d = time_ours(p, args.batch, args.frames, args.size, args.steps, perceptual)
            row = f"| {p} | {'on' if perceptual else 'off'} | {ours:.3f} | {g / 1e6:.2f}M / {d / 1e6:.2f}M |"
            if peer:
                theirs, pg, pd = time_peer(peer, p, args.batch, args.frames, args.size, args.steps, perceptual)
                row += f" {theirs:.3f} | {pg / 1e6:.2f}M / {pd / 1e6:.2f}M | {theirs / ours:.2f}x |"
            else:
                row += " - | - | - |"
            print(row, flush=True)

if __name__ == "__main__":
    main()
