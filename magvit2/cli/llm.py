"""``magvit2 llm export|demo``: token shards as language-model data, and the text <-> video demonstration.

``export`` turns a token directory (``magvit2 tokenize``) plus captions into JSONL of input ids
for a Hugging Face causal LM, with the extended tokenizer saved beside it (resumable).
``demo`` trains a tiny GPT-2 on captioned moving digits in both directions and reports
held-out figures (``--preset digits`` is the benchmark; ``tiny`` runs in seconds).
Needs the optional extra: ``pip install 'magvit2[llm]'``.
"""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("llm", help="visual tokens for Hugging Face language models (export data, demo)")
    llm_sub = p.add_subparsers(dest="llm_command", required=True, metavar="ACTION")

    e = llm_sub.add_parser("export", help="token shards + captions -> JSONL of language-model input ids")
    e.add_argument("tokens", help="token directory written by `magvit2 tokenize`")
    e.add_argument("-o", "--output", required=True, help="output directory (resumes an export with the same settings)")
    e.add_argument("--captions", default=None,
                   help="text file, one caption per tokenized item (default: 'a video of CLASS' from the class names)")
    e.add_argument("--text-tokenizer", default="byt5",
                   help="'byt5' (bytes, no files needed) or a local Hugging Face tokenizer directory")
    e.add_argument("--groups", type=int, default=2, help="sub-tokens per visual token (18 bits, 2 -> 2 x 2^9 rows)")
    e.add_argument("--tasks", default="t2v,v2t", help="comma-separated: t2v (caption -> video), v2t (video -> caption)")
    e.set_defaults(func=run_export)

    d = llm_sub.add_parser("demo", help="train a tiny GPT-2 on captioned moving digits, both directions, and score it")
    d.add_argument("-o", "--output", default="outputs/llm-demo", help="output directory (finished stages are reused)")
    d.add_argument("--preset", default="tiny", help="tiny (seconds) or digits (the benchmark: 5 CPU minutes per model)")
    d.add_argument("--model", default=None, metavar="DIR", help="digits tokenizer directory; default: the shipped one")
    d.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. budget_s=300 mlm=false)")
    d.set_defaults(func=run_demo)


def _text_tokenizer(spec: str):
    from pathlib import Path

    from magvit2.errors import UserError

    try:
        import transformers
    except ModuleNotFoundError as e:
        raise UserError("`magvit2 llm` needs transformers: pip install 'magvit2[llm]'") from e
    if spec == "byt5":
        return transformers.ByT5Tokenizer()
    if not Path(spec).is_dir():
        raise UserError(f"--text-tokenizer must be 'byt5' or a local tokenizer directory, got {spec!r}")
    return transformers.AutoTokenizer.from_pretrained(spec, local_files_only=True)


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from magvit2.data.tokens import read_manifest
    from magvit2.errors import UserError
    from magvit2.llm import VisualVocabConfig, export_llm_dataset, extend_vocabulary

    manifest = read_manifest(args.tokens)
    captions = None
    if args.captions:
        if not Path(args.captions).is_file():
            raise FileNotFoundError(f"captions file not found: {args.captions}")
        captions = Path(args.captions).read_text().splitlines()
    tasks = [t for t in args.tasks.split(",") if t]
    if args.groups < 1 or args.groups > manifest["bits"]:
        raise UserError(f"--groups must be in [1, {manifest['bits']}] for {manifest['bits']}-bit tokens, got {args.groups}")
    config = VisualVocabConfig(bits=manifest["bits"], groups=args.groups, max_grid=max(manifest["grid"]))
    vocab = extend_vocabulary(_text_tokenizer(args.text_tokenizer), None, config)
    out = export_llm_dataset(args.tokens, vocab, args.output, captions=captions, tasks=tasks)
    print(f"exported {manifest['num_items']} items x {len(tasks)} tasks to {out} "
          f"({len(vocab.tokenizer)} ids; extended tokenizer in {out / 'tokenizer'})")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import json

    import torch

    from magvit2.llm.demo import LLMDemoConfig, run_demo as demo

    cfg = LLMDemoConfig.preset(args.preset).override(args.overrides)
    torch.set_num_threads(1)
    res = demo(cfg, args.output, args.model)
    t2v, v2t = res["text_to_video"], res["video_to_text"]
    print(json.dumps({"text_to_video": t2v, "video_to_text": {k: v for k, v in v2t.items() if k != "examples"},
                      "mlm_class_to_video": res.get("mlm_class_to_video")}, indent=2))
    print(f"results in {args.output}/results.json")
    return 0
