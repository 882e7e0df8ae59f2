"""Token shards plus captions -> JSONL of language-model ids (streaming, resumable).

Reads a token directory written by ``magvit2 tokenize`` (:mod:`magvit2.data.tokens`) one
shard at a time and writes ``part_XXXXX.jsonl`` for shard ``XXXXX``: one row per item and
task, ``{"input_ids": [...], "prompt_length": k, "task": "t2v" | "v2t", "index": i, "caption": str}``.
``t2v`` is caption then video (``caption <|video|> ... <|/video|> EOS``), ``v2t`` the reverse;
``prompt_length`` is the number of leading ids that condition the target (a training loop
masks them out of the loss, or ignores the field and trains on everything). Each part is
written to a temporary file and renamed, so a part that exists is complete and a rerun
skips it. ``llm_manifest.json`` records the visual vocabulary and counts; the extended
tokenizer is saved in ``tokenizer/`` so readers map ids back.

The rows load with ``datasets.load_dataset("json", data_files="OUT/part_*.jsonl")``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from safetensors.torch import load_file

from magvit2.data.tokens import read_manifest, shard_name
from magvit2.errors import UserError
from magvit2.llm.vocab import VisualVocabulary

__all__ = ["export_llm_dataset", "read_llm_rows", "TASKS", "LLM_MANIFEST", "part_name"]

TASKS = ("t2v", "v2t")
LLM_MANIFEST = "llm_manifest.json"


def part_name(k: int) -> str:
    return f"part_{k:05d}.jsonl"


def _caption_fn(captions: Sequence[str] | Callable[[int, int], str] | None, manifest: dict[str, Any]
                ) -> Callable[[int, int], str]:
    """(item index, label) -> caption: a list indexed by item, a function, or the class names."""
    if callable(captions):
        return captions
    if captions is not None:
        if len(captions) != manifest["num_items"]:
            raise UserError(f"expected {manifest['num_items']} captions (one per tokenized item), got {len(captions)}")
        return lambda i, label: captions[i]
    names = manifest.get("class_names")
    if not names:
        raise UserError("the token directory has no class names; pass captions (one per item)")
    return lambda i, label: f"a video of {names[label]}"


def export_llm_dataset(token_dir: str | Path, vocab: VisualVocabulary, out_dir: str | Path,
                       captions: Sequence[str] | Callable[[int, int], str] | None = None,
                       tasks: Sequence[str] = TASKS, progress: bool = False) -> Path:
    """Write ``part_*.jsonl`` and ``llm_manifest.json`` into ``out_dir`` (resumes a previous run)."""
    manifest = read_manifest(token_dir)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise UserError(f"tasks must be some of {TASKS}, got {list(tasks)}")
    if manifest["bits"] != vocab.config.bits:
        raise UserError(f"tokens have {manifest['bits']} bits, the visual vocabulary {vocab.config.bits}")
    out = Path(out_dir)
    info = {"token_dir_items": manifest["num_items"], "num_parts": manifest["num_shards"], "grid": manifest["grid"],
            "tasks": list(tasks), "vocab": vocab.config.to_dict(), "text_tokenizer": type(vocab.tokenizer).__name__,
            "vocab_size": len(vocab.tokenizer)}
    if (out / LLM_MANIFEST).is_file():
        old = json.loads((out / LLM_MANIFEST).read_text())
        if old != info:
            raise UserError(f"{out} holds an export with other settings; choose a new output directory")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not an LLM export; choose a new output directory")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / LLM_MANIFEST).is_file():
        vocab.tokenizer.save_pretrained(str(out / "tokenizer"))
        tmp = out / (LLM_MANIFEST + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, out / LLM_MANIFEST)
    caption_of = _caption_fn(captions, manifest)
    todo = [k for k in range(manifest["num_shards"]) if not (out / part_name(k)).is_file()]
    for k in todo:
        shard = load_file(str(Path(token_dir) / shard_name(k)))
        tokens, labels = shard["tokens"].long(), shard["labels"].long()
        first = k * manifest["shard_size"]
        tmp = out / (part_name(k) + ".tmp")
        with tmp.open("w") as f:
            for j in range(tokens.shape[0]):
                i = first + j
                text = caption_of(i, int(labels[j]))
                for task in tasks:
                    f.write(json.dumps(_row(vocab, text, tokens[j], task, i)) + "\n")
        os.replace(tmp, out / part_name(k))
        if progress:
            print(f"part {k + 1}/{manifest['num_shards']}", flush=True)
    return out


def _row(vocab: VisualVocabulary, text: str, tokens: torch.Tensor, task: str, index: int) -> dict[str, Any]:
    if task == "t2v":
        prompt = vocab.text_ids(text)
        ids = prompt + vocab.to_llm_ids(tokens)
    else:
        prompt = vocab.video_ids(tokens)
        ids = prompt + vocab.to_llm_ids(text)
    return {"input_ids": ids, "prompt_length": len(prompt), "task": task, "index": index, "caption": text}


def read_llm_rows(out_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the rows of an export, part by part."""
    out = Path(out_dir)
    if not (out / LLM_MANIFEST).is_file():
        raise UserError(f"{out} is not an LLM export: {LLM_MANIFEST} missing (run `magvit2 llm export` first)")
    for path in sorted(out.glob("part_*.jsonl")):
        with path.open() as f:
            for line in f:
                yield json.loads(line)
