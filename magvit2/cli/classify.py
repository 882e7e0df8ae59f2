"""Video classification on the command line.

* ``magvit2 train classifier --inputs tokens|pixels|frame [--tokenizer DIR] --config PRESET key=value ...``
* ``magvit2 train pretrain --targets tokens|pixels [--tokenizer DIR] --config PRESET key=value ...``
  (masked pre-training; fine-tune with ``train classifier --inputs pixels init_from=RUN/export``)
* ``magvit2 eval classify --model DIR --data SOURCE [-o OUT]``: accuracy and a confusion matrix
  (printed; written as ``confusion.csv`` and ``confusion.png`` under ``OUT``).

``cli/train.py`` and ``cli/evaluate.py`` register these; the work is done by
:mod:`magvit2.understanding`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from magvit2.errors import UserError

__all__ = ["add_train_options", "understanding_trainer", "add_eval_parser"]


def add_train_options(p: argparse.ArgumentParser) -> None:
    """The options ``train classifier`` and ``train pretrain`` add to ``magvit2 train``."""
    p.add_argument("--inputs", choices=["tokens", "pixels", "frame"], default=None,
                   help="classifier: what the transformer reads (frame = the middle frame only)")
    p.add_argument("--targets", choices=["tokens", "pixels"], default=None,
                   help="pretrain: predict the masked tubelets' tokens (BEVT) or pixels (MAE)")
    p.add_argument("--tokenizer", default=None, metavar="DIR",
                   help="frozen tokenizer for token inputs/targets (default: the shipped digits tokenizer)")


def understanding_trainer(args: argparse.Namespace) -> tuple[type, type]:
    """``(config class, trainer class)`` for ``args.what``; ``--inputs/--targets/--tokenizer`` become overrides."""
    from magvit2.understanding.config import ClassifierTrainConfig, PretrainConfig
    from magvit2.understanding.trainer import ClassifierTrainer, PretrainTrainer

    extra = []
    if args.what == "classifier" and args.targets:
        raise UserError("--targets belongs to `train pretrain`; `train classifier` takes --inputs")
    if args.what == "pretrain" and args.inputs not in (None, "pixels"):
        raise UserError(f"masked pre-training trains a pixel-input model; got --inputs {args.inputs}")
    if args.inputs and args.what == "classifier":
        extra.append(f"model.inputs={args.inputs}")
    if args.targets:
        extra.append(f"targets={args.targets}")
    if args.tokenizer:
        if not Path(args.tokenizer, "config.json").is_file():
            raise UserError(f"--tokenizer {args.tokenizer}: expected a tokenizer directory with config.json")
        extra.append(f"tokenizer={args.tokenizer}")
    args.overrides = extra + list(args.overrides)  # explicit key=value overrides win
    if args.what == "classifier":
        return ClassifierTrainConfig, ClassifierTrainer
    return PretrainConfig, PretrainTrainer


def add_eval_parser(ev: argparse._SubParsersAction) -> None:
    """Register ``magvit2 eval classify``."""
    c = ev.add_parser("classify", help="accuracy and confusion matrix of a video classifier on a labelled dataset")
    c.add_argument("--model", required=True, metavar="DIR", help="classifier directory (`magvit2 train classifier`)")
    c.add_argument("--data", default="motion",
                   help="data preset, YAML DataConfig, built-in source (motion, digits) or class-folder directory")
    c.add_argument("--split", choices=["train", "test"], default="test")
    c.add_argument("--frames", type=int, default=None, help="frames per clip (default: what the model was trained on)")
    c.add_argument("--resolution", type=int, default=None, help="clip size (default: what the model was trained on)")
    c.add_argument("--max-items", type=int, default=None, help="evaluate at most this many clips")
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("-o", "--output", default=None, metavar="DIR", help="write confusion.csv, confusion.png, report.json")
    c.add_argument("--device", default="auto")
    c.set_defaults(func=run_eval)


def _clip_shape(clf) -> tuple[int, int]:
    """Frames and size of the clips ``clf`` was built for."""
    cfg = clf.config
    if cfg.inputs == "tokens":
        ft, fs = clf.tokenizer.config.temporal_factor, clf.tokenizer.config.spatial_factor
    else:
        ft, fs = cfg.tubelet[0], cfg.tubelet[1]
    return 1 + (cfg.grid[0] - 1) * ft, cfg.grid[1] * fs


def run_eval(args: argparse.Namespace) -> int:
    from magvit2.cli.common import data_config, pick_device
    from magvit2.data import build_dataset
    from magvit2.understanding import ClipClassifier, evaluate_classifier, write_report

    device = pick_device(args.device)
    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError(f"--output {args.output} is a file; expected a directory for confusion.csv/png")
    clf = ClipClassifier.from_pretrained(args.model, device)
    frames, size = _clip_shape(clf)
    cfg = data_config(args.data, args.frames or frames, args.resolution or size)
    ds = build_dataset(cfg, train=args.split == "train")
    names = tuple(getattr(ds, "class_names", ()) or ())
    if names and names != clf.class_names:
        raise UserError(f"the data's classes {list(names)[:4]}... differ from the model's {list(clf.class_names)[:4]}...")
    report = evaluate_classifier(clf, ds, args.batch_size, args.max_items, device)
    width = max(len(n) for n in report.class_names)
    print(f"accuracy: {100 * report.accuracy:.2f}% on {report.num_items} clips ({report.clips_per_s:.1f} clips/s)")
    print("confusion (rows: true class, columns: predicted class in the same order):")
    for name, row in zip(report.class_names, report.confusion):
        print(f"  {name:>{width}} " + " ".join(f"{int(x):4d}" for x in row))
    if args.output:
        paths = write_report(report, args.output)
        summary = {"model": str(args.model), "data": args.data, "split": args.split, "accuracy": report.accuracy,
                   "num_items": report.num_items, "clips_per_s": report.clips_per_s,
                   "class_names": list(report.class_names)}
        tmp = Path(args.output, "report.json.tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(Path(args.output, "report.json"))
        print(f"wrote {paths['csv']} and {paths['png']}")
    return 0
