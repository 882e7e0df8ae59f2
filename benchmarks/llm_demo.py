"""Text <-> video with an off-the-shelf causal LM (tiny GPT-2) against the project's MLM, on a CPU budget.

Runs the stages of :mod:`magvit2.llm.demo` into one directory (each stage skips what is done), so
the two trainings can run as two processes side by side:

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/llm_demo.py --out runs/llm-demo --stage prepare
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/llm_demo.py --out runs/llm-demo --stage gpt &
    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/llm_demo.py --out runs/llm-demo --stage mlm &
    wait; OMP_NUM_THREADS=1 nice -n 19 python benchmarks/llm_demo.py --out runs/llm-demo --stage eval

(``eval-gpt`` and ``eval-mlm`` score one model each, so scoring can start when its training ends.)

``--stage all`` runs them in order. Results: ``<out>/results.json`` (section in benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from magvit2.llm.demo import LLMDemoConfig, claim_output, evaluate, evaluate_gpt, evaluate_mlm, prepare, run_demo, train_gpt, train_mlm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/llm-demo")
    ap.add_argument("--preset", default="digits", choices=LLMDemoConfig.preset_names())
    ap.add_argument("--stage", default="all", choices=("all", "prepare", "gpt", "mlm", "eval-gpt", "eval-mlm", "eval"))
    ap.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. budget_s=600")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = LLMDemoConfig.preset(args.preset).override(args.overrides)
    out = Path(args.out)
    claim_output(cfg, out)
    if args.stage == "all":
        res = run_demo(cfg, out)
    elif args.stage.startswith("eval"):
        res = {"eval": evaluate, "eval-gpt": evaluate_gpt, "eval-mlm": evaluate_mlm}[args.stage](cfg, out)
    else:
        vocab = prepare(cfg, out)
        res = {"gpt": lambda: train_gpt(cfg, out, vocab), "mlm": lambda: train_mlm(cfg, out),
               "prepare": lambda: {"prepared": str(out)}}[args.stage]()
    print(json.dumps({k: v for k, v in res.items() if k != "config"}, indent=2))


if __name__ == "__main__":
    main()
