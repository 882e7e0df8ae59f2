"""Video understanding from tokens, measured against pixels (MAGVIT-2 Sec. 4.4 at CPU scale).

Task: motion digits (``magvit2.data.motion``), 9 frames of 32x32, 10 motion classes (4 directions
x slow/fast, clockwise, counter-clockwise), chance 10%; the same clips labelled by digit class
form a second, appearance task. Train clips use the training handwriting, test clips unseen
handwriting. The frozen tokenizer is the shipped digits tokenizer (3x8x8 tokens of 10 bits).
All models are the same transformer (``--depth``, ``--width``); only the input embedding differs.

Parts:

1. supervised, all labels: token inputs, pixel tubelets (4x4x4, the token grid), the middle
   frame only (single-frame baseline); accuracy, parameters, train time, inference clips/s,
   storage per clip; ``--seeds`` seeds;
2. the digit-class task, same three inputs (one seed);
3. masked pre-training of the pixel model on the unlabelled training clips, with token targets
   (BEVT) or normalised-pixel targets (MAE), ``--pretrain-steps`` steps; then fine-tuning on
   ``--label-fraction`` of the labels for ``--finetune-steps`` steps, against the same model
   trained from scratch on the same labels for the same steps; ``--seeds`` seeds each.

Everything goes through the library's trainers (``ClassifierTrainer``, ``PretrainTrainer``)
on clips rendered and tokenized once.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/understanding.py --out runs/understanding [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from magvit2.data.motion import MotionDigits
from magvit2.understanding import (
    ClassifierTrainConfig,
    ClassifierTrainer,
    ClipCache,
    ClipClassifier,
    PretrainConfig,
    PretrainTrainer,
    evaluate_classifier,
)
from magvit2.understanding.evaluate import predict_dataset
from magvit2.understanding.trainer import load_frozen_tokenizer

FRAMES, SIZE = 9, 32


def relabel(cache: ClipCache, ds: MotionDigits) -> ClipCache:
    """The same clips with ``ds``'s labels (e.g. digit classes instead of motions)."""
    return ClipCache(cache.frames, torch.tensor([ds.label(i) for i in range(len(cache))]), cache.tokens)


def mean_std(xs: list[float]) -> str:
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def run_cfg(args, out: Path, name: str, steps: int, seed: int, inputs: str, **extra) -> ClassifierTrainConfig:
    cfg = ClassifierTrainConfig.preset("motion")
    model = dataclasses.replace(cfg.model, inputs=inputs, depth=args.depth, width=args.width, heads=args.heads)
    return dataclasses.replace(cfg, model=model, steps=steps, seed=seed, out_dir=str(out / name), eval_every=10**9,
                               ckpt_every=10**9, log_every=max(steps // 4, 1), batch_size=args.batch, progress=False,
                               data=dataclasses.replace(cfg.data, num_frames=FRAMES, resolution=SIZE), **extra)


def train_classifier(cfg: ClassifierTrainConfig, train: ClipCache, test: ClipCache) -> dict:
    t0 = time.perf_counter()
    trainer = ClassifierTrainer(cfg, train, test)
    trainer.fit()
    train_s = time.perf_counter() - t0
    model = trainer.eval_model.eval()
    inputs = trainer._inputs
    with torch.no_grad():
        t1 = time.perf_counter()
        preds, labels = predict_dataset(lambda b: model(inputs(b)).logits, test, 100, "cpu")
        stored_s = time.perf_counter() - t1
    params = sum(p.numel() for p in model.parameters())
    return {"accuracy": float((preds == labels).float().mean()), "params": params, "train_s": train_s,
            "clips_per_s_stored": len(test) / stored_s, "export": str(Path(cfg.out_dir) / "export")}


def pixels_to_prediction(export: str, test_raw: MotionDigits, n: int) -> float:
    """Inference clips/s from pixels (the tokenizer's encoding included for token inputs)."""
    clf = ClipClassifier.from_pretrained(export)
    return evaluate_classifier(clf, Subset(test_raw, range(n)), batch_size=50).clips_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/understanding")
    ap.add_argument("--train-clips", type=int, default=1000)
    ap.add_argument("--test-clips", type=int, default=300)
    ap.add_argument("--steps", type=int, default=300, help="supervised steps (all labels)")
    ap.add_argument("--digit-steps", type=int, default=100)
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--label-fraction", type=float, default=0.1)
    ap.add_argument("--mask-ratio", type=float, default=0.5)
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the pre-training comparison")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (to split the seeds over processes)")
    ap.add_argument("--sup-seeds", type=int, default=1, help="seeds of the supervised runs")
    ap.add_argument("--probe", action="store_true", help="also fit linear probes of the pre-trained backbones")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--parts", default="supervised,digits,pretrain")
    ap.add_argument("--quick", action="store_true", help="a few steps of everything (checks the script runs)")
    args = ap.parse_args()
    if args.quick:
        args.train_clips, args.test_clips, args.seeds, args.sup_seeds, args.batch = 64, 32, 2, 1, 4
        args.steps = args.digit_steps = args.pretrain_steps = args.finetune_steps = 4
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict = {"args": vars(args), "date": datetime.date.today().isoformat(), "machine": platform.machine(),
                     "torch": torch.__version__}

    tok = load_frozen_tokenizer("", "cpu")
    train_raw = MotionDigits("train", args.train_clips, FRAMES, SIZE)
    test_raw = MotionDigits("test", args.test_clips, FRAMES, SIZE)
    t0 = time.perf_counter()
    train = ClipCache.build(train_raw, tok)
    test = ClipCache.build(test_raw, tok)
    n_clips = len(train) + len(test)
    results["tokenize_clips_per_s"] = n_clips / (time.perf_counter() - t0)  # rendering included
    grid = tuple(train.tokens.shape[1:])
    results["storage"] = {"uint8_pixels_bytes": FRAMES * SIZE * SIZE * 3,
                          "token_bytes": grid[0] * grid[1] * grid[2] * tok.config.bits / 8, "grid": grid,
                          "bits": tok.config.bits}
    print(json.dumps(results["storage"]), flush=True)

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2))

    if "pretrain" in parts:
        rows: dict[str, list[dict]] = {"scratch": [], "tokens": [], "pixels": [], "probe-tokens": [], "probe-pixels": []}
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for targets in ("tokens", "pixels"):
                pcfg = PretrainConfig.preset("motion")
                model = dataclasses.replace(pcfg.model, depth=args.depth, width=args.width, heads=args.heads)
                pcfg = dataclasses.replace(pcfg, model=model, targets=targets, steps=args.pretrain_steps, seed=seed,
                                           mask_ratio=args.mask_ratio, out_dir=str(out / f"pre-{targets}-{seed}"),
                                           batch_size=args.batch, progress=False, ckpt_every=10**9,
                                           log_every=max(args.pretrain_steps // 4, 1),
                                           data=dataclasses.replace(pcfg.data, num_frames=FRAMES, resolution=SIZE))
                t0 = time.perf_counter()
                logs = PretrainTrainer(pcfg, train).fit()
                pre_s = time.perf_counter() - t0
                export = str(out / f"pre-{targets}-{seed}" / "export")
                for probe in (False, True) if args.probe else (False,):
                    cfg = run_cfg(args, out, f"ft-{targets}-{seed}{'-probe' if probe else ''}", args.finetune_steps,
                                  seed, "pixels", label_fraction=args.label_fraction, init_from=export,
                                  linear_probe=probe)
                    r = train_classifier(cfg, train, test)
                    r.update(pretrain_s=pre_s, pretrain_loss=logs.get("loss"),
                             pretrain_token_accuracy=logs.get("token_accuracy"))
                    rows[("probe-" if probe else "") + targets].append(r)
                    print(f"seed {seed} {targets} probe={probe}: {r['accuracy']:.3f}", flush=True)
            cfg = run_cfg(args, out, f"scratch-{seed}", args.finetune_steps, seed, "pixels",
                          label_fraction=args.label_fraction)
            rows["scratch"].append(train_classifier(cfg, train, test))
            print(f"seed {seed} scratch: {rows['scratch'][-1]['accuracy']:.3f}", flush=True)
            results["pretrain"] = rows
            save()

    if "supervised" in parts:
        rows = {}
        for inputs in ("tokens", "pixels", "frame"):
            rows[inputs] = []
            for seed in range(args.sup_seeds):
                r = train_classifier(run_cfg(args, out, f"sup-{inputs}-{seed}", args.steps, seed, inputs), train, test)
                rows[inputs].append(r)
                print(f"supervised {inputs} seed {seed}: {r['accuracy']:.3f} ({r['train_s']:.0f} s)", flush=True)
            rows[inputs][0]["clips_per_s_pixels"] = pixels_to_prediction(rows[inputs][0]["export"], test_raw,
                                                                         min(100, len(test)))
            results["supervised"] = rows
            save()

    if "digits" in parts:
        dtrain = relabel(train, MotionDigits("train", args.train_clips, FRAMES, SIZE, target="digit"))
        dtest = relabel(test, MotionDigits("test", args.test_clips, FRAMES, SIZE, target="digit"))
        rows = {}
        for inputs in ("tokens", "pixels", "frame"):
            rows[inputs] = [train_classifier(run_cfg(args, out, f"digit-{inputs}", args.digit_steps, 0, inputs),
                                             dtrain, dtest)]
            print(f"digit task {inputs}: {rows[inputs][0]['accuracy']:.3f}", flush=True)
        results["digits"] = rows
        save()
    save()
    print(report(results))


def report(results: dict) -> str:
    """The markdown rows for RESULTS.md."""
    lines = []
    st = results["storage"]
    if "supervised" in results:
        lines += ["| inputs | motion accuracy % (mean ± std) | params | train s / run | clips/s from stored inputs "
                  "| clips/s from pixels | storage / clip |", "|---|---|---|---|---|---|---|"]
        for inputs, rows in results["supervised"].items():
            store = f"{st['token_bytes']:.0f} B" if inputs == "tokens" else f"{st['uint8_pixels_bytes']} B"
            if inputs == "frame":
                store = f"{st['uint8_pixels_bytes'] // 9} B"
            lines.append(f"| {inputs} | {mean_std([r['accuracy'] for r in rows])} | {rows[0]['params']:,} | "
                         f"{statistics.mean(r['train_s'] for r in rows):.0f} | "
                         f"{statistics.mean(r['clips_per_s_stored'] for r in rows):.0f} | "
                         f"{rows[0].get('clips_per_s_pixels', float('nan')):.0f} | {store} |")
    if "digits" in results:
        lines += ["", "| inputs | digit-class accuracy % (1 seed) |", "|---|---|"]
        lines += [f"| {k} | {100 * v[0]['accuracy']:.1f} |" for k, v in results["digits"].items()]
    if "pretrain" in results:
        lines += ["", "| pixel model, fine-tuned on the labelled subset | accuracy % (mean ± std) | seeds |", "|---|---|---|"]
        names = {"scratch": "scratch", "tokens": "pre-trained, token targets (BEVT)",
                 "pixels": "pre-trained, pixel targets (MAE)", "probe-tokens": "linear probe, token targets",
                 "probe-pixels": "linear probe, pixel targets"}
        for k, rows in results["pretrain"].items():
            if rows:
                lines.append(f"| {names[k]} | {mean_std([r['accuracy'] for r in rows])} | {len(rows)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
