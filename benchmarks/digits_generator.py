"""Why generated digits miss their class: measurements on a digits generator.

    python benchmarks/digits_generator.py --model magvit2/pretrained/digits-lm --tokens runs/digits-tokens

Prints, for the generator directory ``--model`` (LM + its tokenizer + ``digit_classifier.safetensors``):

1. **class signal**: mean NLL (nats per token, all sub-tokens) of held-out digit clips' tokens with the
   true label, a wrong label (label + 1 mod 10) and the null label, at mask ratios 1.0 (the first
   MaskGIT step) and 0.5. If true ~ wrong, the model ignores the class.
2. **sub-token coupling**: over the training tokens (``--tokens``), the mutual information between the
   sub-tokens of one token, I(s_1; s_2) in nats, and the fraction of generated tokens that never occur
   in the training tokens (vs the same fraction for held-out real tokens). A large coupling with many
   unseen generated tokens means that sampling the product of independent sub-token marginals
   produces invalid tokens.
3. **per-class accuracy and the guidance curve**: the shipped classifier's accuracy on
   ``--per-class`` clips per class at 12 MaskGIT steps, for each ``--guidance`` scale.

``--json OUT`` also writes everything as JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.data import DataConfig, build_dataset  # noqa: E402
from magvit2.data.tokens import TokenDataset  # noqa: E402
from magvit2.eval.digits import DigitClassifier, classify_clips  # noqa: E402
from magvit2.generation.masking import flatten_grid  # noqa: E402
from magvit2.generation.pipeline import VideoGenerator  # noqa: E402
from magvit2.pretrained.cards import generator_metrics  # noqa: E402
from magvit2.quantizers.factorize import split_indices  # noqa: E402


@torch.no_grad()
def heldout_tokens(gen: VideoGenerator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, seq]`` tokens and ``[n]`` labels of held-out moving-digit clips (unseen handwriting)."""
    ds = build_dataset(DataConfig(source="digits", num_frames=gen.num_frames, resolution=32, digit_size=16),
                       train=False)
    x = torch.stack([ds[i]["video"] for i in range(n)])
    y = torch.tensor([ds[i]["label"] for i in range(n)])
    return flatten_grid(gen.tokenizer.encode(x)), y


@torch.no_grad()
def class_signal(gen: VideoGenerator, tokens: torch.Tensor, labels: torch.Tensor, background: int) -> dict:
    """NLL per token with the true / a wrong / the null label. Masks: ``all`` positions, a random
    ``half``, or exactly the ``digit`` positions (tokens other than the background token); the NLL is
    averaged over the masked positions (``all``, ``half``) or the masked digit positions (``digit``)."""
    lm, cfg = gen.lm, gen.config
    sub = split_indices(tokens, cfg.bits_per_group)  # [b, n, g]
    digit = tokens != background
    g = torch.Generator().manual_seed(0)
    masks = {"all": torch.ones_like(digit), "half": torch.rand(tokens.shape, generator=g) < 0.5, "digit": digit}
    out = {"digit_positions_per_clip": round(float(digit.sum(1).float().mean()), 1)}
    for mname, masked in masks.items():
        for name, cond in (("true", labels), ("wrong", (labels + 1) % cfg.num_classes),
                           ("null", torch.full_like(labels, cfg.null_class))):
            logits = lm.logits(sub, masked, cond).float()  # [b, n, g, k]
            logp = torch.log_softmax(logits, dim=-1).gather(-1, sub[..., None])[..., 0].sum(-1)  # [b, n]
            out[f"nll_{name}_{mname}"] = round(float(-logp[masked].mean()), 4)
            out[f"nll_{name}_{mname}_on_digit"] = round(float(-logp[masked & digit].mean()), 4)
    return out


def coupling(train_tokens: torch.Tensor, bits_per_group: tuple[int, ...]) -> dict:
    """Mutual information between the sub-tokens of one token, over all training positions."""
    if len(bits_per_group) < 2:
        return {"sub_token_mi_nats": 0.0}
    sub = split_indices(train_tokens.reshape(-1), bits_per_group)
    k0, k1 = 2 ** bits_per_group[0], 2 ** bits_per_group[1]
    joint = torch.bincount(sub[:, 0] * k1 + sub[:, 1], minlength=k0 * k1).double().reshape(k0, k1)
    joint /= joint.sum()
    p0, p1 = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    mi = float((joint[nz] * (joint[nz] / (p0 @ p1)[nz]).log()).sum())
    h = float(-(joint[nz] * joint[nz].log()).sum())
    return {"sub_token_mi_nats": round(mi, 4), "token_entropy_nats": round(h, 4),
            "distinct_training_tokens": int(nz.sum())}


def unseen_fraction(tokens: torch.Tensor, seen: torch.Tensor) -> float:
    return round(float((~seen[tokens.reshape(-1)]).float().mean()), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="magvit2/pretrained/digits-lm")
    p.add_argument("--tokens", default="runs/digits-tokens", help="training tokens (`magvit2 tokenize`)")
    p.add_argument("--heldout", type=int, default=200, help="held-out clips for the class-signal test")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--guidance", type=float, nargs="*", default=[0.0, 1.0, 2.0, 3.0, 5.0, 8.0])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--signal-only", action="store_true", help="stop after the class-signal test")
    args = p.parse_args()
    torch.set_num_threads(1)
    gen = VideoGenerator.from_pretrained(args.model)
    clf = DigitClassifier.load(Path(args.model) / "digit_classifier.safetensors")
    cfg = gen.config
    report: dict = {"model": str(args.model), "bits_per_group": list(cfg.bits_per_group)}

    tokens, labels = heldout_tokens(gen, args.heldout)
    train = TokenDataset(args.tokens).tokens
    background = int(train.reshape(-1).mode().values)
    report["class_signal"] = class_signal(gen, tokens, labels, background)
    print("class signal:", report["class_signal"], flush=True)
    if args.signal_only:
        return
    seen = torch.zeros(2 ** cfg.bits, dtype=torch.bool)
    seen[train.reshape(-1)] = True
    report["coupling"] = coupling(train, cfg.bits_per_group)
    report["coupling"]["unseen_heldout_real"] = unseen_fraction(tokens, seen)
    k = cfg.num_classes
    gen_tokens = gen.sample_tokens(k * 5, [c for c in range(k) for _ in range(5)], steps=12, seed=0,
                                   guidance_scale=5.0)
    report["coupling"]["unseen_generated_g5"] = unseen_fraction(gen_tokens, seen)
    print("coupling:", report["coupling"], flush=True)

    curve = {}
    for s in args.guidance:
        torch.manual_seed(0)
        m = generator_metrics(gen, clf, per_class=args.per_class, seed=1, guidance=s if s > 0 else None)
        curve[str(s)] = {"class_accuracy": m["class_accuracy"], "per_class": m["per_class"]}
        print(f"guidance {s}: {m['class_accuracy']:.0%}  per class {m['per_class']}", flush=True)
    report["guidance_curve"] = curve
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
