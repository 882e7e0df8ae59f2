"""Held-out PSNR / LPIPS against training step for a tokenizer run, as CSV + PNG.

Usage: ``python recipes/tokenizer_curve.py RUN_DIR OUT_PREFIX [--every 50] [--init DIR] [--until STEP]
[--offset STEPS]``

Reads every checkpoint ``RUN_DIR/checkpoints/step_*.pt`` whose step is a multiple of ``--every``,
evaluates its EMA weights on the shipped tokenizer card's held-out slice (``tokenizer_metrics``:
carphone clips and two held-out photos, 17x64x64, in groups of the run's ``group_frames``) and writes
``OUT_PREFIX.csv`` and ``OUT_PREFIX.png``. ``--init DIR`` adds the starting weights as step 0.
Rows already in an existing CSV are kept, so it can be rerun while the run trains, and a run continued
in another directory gets one curve: first its parent with ``--until`` the step it was continued from,
then the continuation, both into the same OUT_PREFIX. A continuation that counts its steps from 0 (a
tokenizer grown to more bits, ``magvit2.tokenizer.grow``) takes ``--offset`` = the parent's last step; the
``bits`` column and a marker in the plot show where the layout changed.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.config.tokenizer import TokenizerConfig  # noqa: E402
from magvit2.pretrained.cards import tokenizer_metrics  # noqa: E402
from magvit2.tokenizer import VideoTokenizer  # noqa: E402
from magvit2.train.checkpoint import load_checkpoint  # noqa: E402

FIELDS = ["step", "psnr", "ssim", "lpips", "perplexity", "distinct_codes", "bits"]
INTS = ("step", "distinct_codes", "bits")


def _row(step: int, tok: VideoTokenizer) -> dict:
    m = tokenizer_metrics(tok.eval())
    return {"step": step, **{k: m[k] for k in FIELDS[1:-1]}, "bits": tok.config.bits}


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(steps, [r["psnr"] for r in rows], "o-")
    ax[0].set(xlabel="step", ylabel="held-out PSNR (dB)")
    ax[1].plot(steps, [r["lpips"] for r in rows], "o-", color="C1")
    ax[1].set(xlabel="step", ylabel="held-out LPIPS (VGG)")
    for a in ax:
        a.grid(alpha=0.3)
    for before, after in zip(rows, rows[1:]):  # where the run was grown to more bits
        if "bits" in before and "bits" in after and before["bits"] != after["bits"]:
            for a in ax:
                a.axvline(before["step"], color="grey", ls="--", lw=1)
            ax[0].annotate(f"{int(before['bits'])} -> {int(after['bits'])} bits", (before["step"], ax[0].get_ylim()[0]),
                           rotation=90, va="bottom", ha="right", fontsize=8, color="grey")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path, help="output prefix: writes OUT.csv and OUT.png")
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--init", type=Path, default=None, help="the weights the run started from (step 0)")
    p.add_argument("--until", type=int, default=None, help="ignore checkpoints after this step")
    p.add_argument("--offset", type=int, default=0,
                   help="add this to the run's steps (a continuation that counts its steps from 0)")
    args = p.parse_args()
    torch.set_num_threads(1)
    csv_path, png_path = args.out.with_suffix(".csv"), args.out.with_suffix(".png")
    rows = {}
    if csv_path.is_file():
        with csv_path.open() as f:
            rows = {int(r["step"]): {k: float(v) for k, v in r.items() if v not in ("", None)}
                    for r in csv.DictReader(f)}
    if args.init is not None and 0 not in rows:
        rows[0] = _row(0, VideoTokenizer.from_pretrained(args.init))
    import yaml

    model_cfg = TokenizerConfig.from_dict(yaml.safe_load((args.run / "config.yaml").read_text())["model"])
    for ckpt in sorted((args.run / "checkpoints").glob("step_*.pt")):
        own = int(re.findall(r"\d+", ckpt.stem)[0])
        step = own + args.offset
        if own % args.every or step in rows or (args.until is not None and own > args.until):
            continue
        state = load_checkpoint(ckpt)
        tok = VideoTokenizer(model_cfg)
        tok.load_state_dict({k.removeprefix("model."): v for k, v in state["ema"].items()})
        rows[step] = _row(step, tok)
        print(rows[step], flush=True)
    ordered = [rows[s] for s in sorted(rows)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in ordered:
            w.writerow({k: "" if k not in r else int(r[k]) if k in INTS else round(float(r[k]), 4) for k in FIELDS})
    _plot(ordered, png_path, f"{args.run.name}: held-out carphone clips + 2 photos, "
                             f"{model_cfg.group_frames}-frame groups (EMA weights)")
    print(f"wrote {csv_path} and {png_path}")


if __name__ == "__main__":
    main()
