"""End-to-end demonstration: a tiny GPT-2 reads and writes moving-digit videos as tokens.

1. ``prepare``: captioned moving digits (:mod:`magvit2.llm.captions`) are tokenized by the
   shipped digits tokenizer into token shards (``magvit2 tokenize``'s format), a ByT5 byte
   tokenizer is extended with the visual vocabulary, and both directions (caption -> video,
   video -> caption) are exported to JSONL (:func:`export_llm_dataset`).
2. ``train_gpt``: a GPT-2 from config, a plain PyTorch loop over the JSONL rows (loss on the
   target side), stopped by a CPU-time budget (``time.process_time``).
3. ``train_mlm``: the project's masked token model (:mod:`magvit2.generation`) on the same
   training clips, class-conditional on the digit, same budget and batch size.
4. ``evaluate``: on held-out handwriting, text -> video (the digit classifier and the motion
   direction of generated clips), video -> caption (exact match of digit, direction, speed),
   and the MLM's class-conditional clips scored by the same classifier.

Every stage writes into one output directory and skips what is already there.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from magvit2.config.base import Config
from magvit2.data.tokens import TokenDataset
from magvit2.errors import UserError
from magvit2.llm.captions import DIRECTIONS, CaptionedDigits, motion_direction, parse_caption
from magvit2.llm.causal import greedy_text_ids, pad_batch, sample_video_ids, tiny_gpt2
from magvit2.llm.export import export_llm_dataset, read_llm_rows
from magvit2.llm.vocab import VisualVocabConfig, VisualVocabulary, extend_vocabulary

__all__ = ["LLMDemoConfig", "claim_output", "run_demo", "prepare", "train_gpt", "train_mlm", "evaluate", "evaluate_gpt", "evaluate_mlm"]


@dataclass
class LLMDemoConfig(Config):
    """The demonstration's sizes and budgets.

    Fields:
        num_train: training clips (each gives one caption->video and one video->caption row).
        num_eval: held-out captions for text->video, clips for video->caption, and MLM clips.
        num_frames, resolution: clip size (the shipped digits tokenizer: 9 x 32 x 32 -> 3 x 8 x 8 tokens).
        width, depth, heads: GPT-2 size; the MLM gets the same width, depth and heads.
        budget_s: CPU seconds of training for each model (process time, one thread).
        max_steps: a step cap besides the budget.
        batch_size, lr, warmup_steps: optimisation, shared by both models.
        temperature, top_k: GPT-2 video sampling.
        mlm_steps, guidance: MaskGIT decoding of the MLM (as the shipped digits-lm card).
        mlm: also train and score the project's MLM.
        seed: data, init and sampling seed.
    """

    num_train: int = 4000
    num_eval: int = 100
    num_frames: int = 9
    resolution: int = 32
    width: int = 128
    depth: int = 4
    heads: int = 4
    budget_s: float = 300.0
    max_steps: int = 100_000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    temperature: float = 1.0
    top_k: int = 0
    mlm_steps: int = 12
    guidance: float = 5.0
    mlm: bool = True
    seed: int = 0


@LLMDemoConfig.register_preset("tiny")
def _tiny() -> LLMDemoConfig:
    return LLMDemoConfig(num_train=16, num_eval=4, width=32, depth=1, heads=2, budget_s=5.0, max_steps=3,
                         batch_size=4, warmup_steps=1, mlm_steps=2)


@LLMDemoConfig.register_preset("digits")
def _digits() -> LLMDemoConfig:
    return LLMDemoConfig()


#: fields that decide the data and the trained models; sampling settings may change between evaluations
_RUN_FIELDS = ("num_train", "num_eval", "num_frames", "resolution", "width", "depth", "heads", "budget_s", "max_steps",
               "batch_size", "lr", "warmup_steps", "seed")


def claim_output(cfg: LLMDemoConfig, out: Path) -> None:
    """Record the run's settings in ``out/demo_config.json``; refuse a directory holding another run."""
    path = out / "demo_config.json"
    mine = {k: v for k, v in cfg.to_dict().items() if k in _RUN_FIELDS}
    if path.is_file():
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k in _RUN_FIELDS}
        if theirs != mine:
            diff = sorted(k for k in _RUN_FIELDS if theirs.get(k) != mine.get(k))
            raise UserError(f"{out} holds a demo run with other settings ({', '.join(diff)}); choose a new output directory")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.to_dict(), indent=2))


def _log(msg: str) -> None:
    print(msg, flush=True)


def _digits_tokenizer(tokenizer_dir: str | Path | None):
    from magvit2.pretrained import default_model_dir
    from magvit2.tokenizer.model import VideoTokenizer

    return VideoTokenizer.from_pretrained(tokenizer_dir or default_model_dir("digits-tokenizer")).eval()


def _text_tokenizer():
    try:
        from transformers import ByT5Tokenizer
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
        raise UserError("magvit2.llm needs transformers: pip install 'magvit2[llm]'") from e
    return ByT5Tokenizer()  # bytes: no vocabulary file, nothing to download


def prepare(cfg: LLMDemoConfig, out: Path, tokenizer_dir: str | Path | None = None, log: Callable[[str], None] = _log
            ) -> VisualVocabulary:
    """Token shards of the train/eval clips and the JSONL export of the training rows."""
    from magvit2.train.tokenize import tokenize_dataset

    tok = _digits_tokenizer(tokenizer_dir)
    for split, n in (("train", cfg.num_train), ("test", cfg.num_eval)):
        ds = CaptionedDigits(split, n, cfg.num_frames, cfg.resolution, seed=cfg.seed)
        if not (out / f"tokens_{split}" / "manifest.json").is_file():
            log(f"tokenizing {n} {split} clips")
            tokenize_dataset(tok, ds, out / f"tokens_{split}", shard_size=512, progress=False)
        cap = out / f"captions_{split}.txt"
        if not cap.is_file():
            cap.write_text("".join(ds.caption_of(i) + "\n" for i in range(n)))
    text_tok = _text_tokenizer()
    grid = TokenDataset(out / "tokens_train").grid
    vocab = extend_vocabulary(text_tok, None, VisualVocabConfig(bits=tok.config.token_bits, groups=2, max_grid=max(grid)))
    captions = (out / "captions_train.txt").read_text().splitlines()
    export_llm_dataset(out / "tokens_train", vocab, out / "llm_train", captions=captions)
    return vocab


def _lr(cfg: LLMDemoConfig, step: int, used: float) -> float:
    """Linear warmup, then cosine decay over the fraction of the CPU budget used."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, used / cfg.budget_s)))


def _train(cfg: LLMDemoConfig, model: torch.nn.Module, loss_fn: Callable[[list[int]], torch.Tensor], n_items: int,
           name: str, log: Callable[[str], None]) -> dict[str, Any]:
    """A plain AdamW loop over random batches until the CPU budget or ``max_steps`` is spent."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.96), weight_decay=0.01)
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    start, step, losses = time.process_time(), 0, []
    while step < cfg.max_steps and (used := time.process_time() - start) < cfg.budget_s:
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step, used)
        loss = loss_fn(torch.randint(n_items, (cfg.batch_size,), generator=g).tolist())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach().item())
        step += 1
        if step % 50 == 0:
            log(f"{name} step {step} loss {sum(losses[-50:]) / 50:.4f} cpu {time.process_time() - start:.0f}s")
    model.eval()
    return {"steps": step, "cpu_s": round(time.process_time() - start, 1), "final_loss": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
            "params": sum(p.numel() for p in model.parameters())}


def train_gpt(cfg: LLMDemoConfig, out: Path, vocab: VisualVocabulary, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Train (or load) the GPT-2 on the exported rows; saved with its tokenizer in ``out/gpt2``."""
    path = out / "gpt2"
    if (path / "train.json").is_file():
        return json.loads((path / "train.json").read_text())
    rows = list(read_llm_rows(out / "llm_train"))
    n_pos = max(len(r["input_ids"]) for r in rows) + 48  # room for a caption longer than any seen
    text = _text_tokenizer()
    model = tiny_gpt2(len(text), n_pos, cfg.width, cfg.depth, cfg.heads, cfg.seed)
    vv = extend_vocabulary(text, model, vocab.config, seed=cfg.seed)
    if vv.group_offsets != vocab.group_offsets:  # the export's ids must be the model's
        raise RuntimeError("visual ids of the model differ from the exported dataset's")
    pad = vv.eos_id if vv.eos_id is not None else 0

    def loss_fn(idx: list[int]) -> torch.Tensor:
        return model(**pad_batch([rows[i] for i in idx], pad)).loss

    info = _train(cfg, model, loss_fn, len(rows), "gpt2", log)
    model.save_pretrained(str(path))
    text.save_pretrained(str(path))
    (path / "train.json").write_text(json.dumps(info, indent=2))
    return info


def _mlm_config(cfg: LLMDemoConfig, grid: tuple[int, int, int], bits: int):
    from magvit2.generation.config import LMConfig

    return LMConfig(bits=bits, groups=2, grid=grid, num_classes=10, depth=cfg.depth, width=cfg.width, heads=cfg.heads,
                    dropout=0.0, label_smoothing=0.0, class_everywhere=True)


def train_mlm(cfg: LLMDemoConfig, out: Path, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Train (or load) the project's class-conditional masked LM on the same clips and budget."""
    from magvit2.layers.model_io import save_pretrained
    from magvit2.losses.lm import mlm_loss
    from magvit2.generation.pipeline import LM_FORMAT, build_lm

    path = out / "mlm"
    if (path / "train.json").is_file():
        return json.loads((path / "train.json").read_text())
    data = TokenDataset(out / "tokens_train")
    lm_cfg = _mlm_config(cfg, data.grid, data.bits)
    torch.manual_seed(cfg.seed)
    model = build_lm(lm_cfg, "mlm")

    def loss_fn(idx: list[int]) -> torch.Tensor:
        return mlm_loss(model, data.tokens[idx], cond=data.labels[idx]).loss

    info = _train(cfg, model, loss_fn, len(data), "mlm", log)
    save_pretrained(path, LM_FORMAT, lm_cfg.to_dict(), model.state_dict(), extra={"kind": "mlm"})
    (path / "train.json").write_text(json.dumps(info, indent=2))
    return info


def _score_clips(videos: torch.Tensor, digits: list[int], directions: list[str] | None, classifier) -> dict[str, float]:
    from magvit2.eval.digits import classify_clips

    pred = classify_clips(classifier, videos).tolist()
    got = {"digit_accuracy": sum(p == d for p, d in zip(pred, digits)) / len(digits)}
    if directions is not None:
        moved = motion_direction(videos)
        got["direction_accuracy"] = sum(m == d for m, d in zip(moved, directions)) / len(directions)
        got["both_accuracy"] = sum(p == d and m == r for p, d, m, r in zip(pred, digits, moved, directions)) / len(digits)
    return got


def _eval_data(cfg: LLMDemoConfig, out: Path, tokenizer_dir: str | Path | None):
    """The digits tokenizer, the classifier, the held-out items, their digits, directions and tokens."""
    from magvit2.eval.digits import DigitClassifier
    from magvit2.pretrained import default_model_dir

    tok = _digits_tokenizer(tokenizer_dir)
    classifier = DigitClassifier.load(default_model_dir("digits-lm") / "digit_classifier.safetensors")
    test = CaptionedDigits("test", cfg.num_eval, cfg.num_frames, cfg.resolution, seed=cfg.seed)
    items = [test[i] for i in range(len(test))]
    dirs = [list(DIRECTIONS)[it["direction"]] for it in items]
    return tok, classifier, items, [it["label"] for it in items], dirs, TokenDataset(out / "tokens_test")


def _cached(path: Path, cfg: LLMDemoConfig) -> dict[str, Any] | None:
    if path.is_file():
        res = json.loads(path.read_text())
        if res.get("config") == cfg.to_dict():
            return res
    return None


@torch.no_grad()
def evaluate_gpt(cfg: LLMDemoConfig, out: Path, tokenizer_dir: str | Path | None = None) -> dict[str, Any]:
    """Both directions of the GPT-2 on held-out captions and clips, and the reference figures (``results_gpt.json``)."""
    from transformers import GPT2LMHeadModel

    if (res := _cached(out / "results_gpt.json", cfg)) is not None:
        return res
    tok, classifier, items, digits, dirs, data = _eval_data(cfg, out, tokenizer_dir)
    real = torch.stack([it["video"] for it in items])
    res: dict[str, Any] = {"config": cfg.to_dict(), "num_eval": len(items)}
    res["reference_real_clips"] = _score_clips(real, digits, dirs, classifier)
    res["reference_tokenizer_reconstructions"] = _score_clips(tok.decode(data.tokens).clamp(-1, 1), digits, dirs, classifier)

    model = GPT2LMHeadModel.from_pretrained(str(out / "gpt2")).eval()
    text = _text_tokenizer().__class__.from_pretrained(str(out / "gpt2"))
    vocab = VisualVocabulary(text, VisualVocabConfig.from_dict(json.loads((out / "llm_train" / "llm_manifest.json").read_text())["vocab"]))
    g = torch.Generator().manual_seed(cfg.seed)
    # text -> video: held-out captions, sampled video ids, parsed back strictly, decoded, scored
    t0 = time.process_time()
    prompts = [vocab.text_ids(it["caption"]) + vocab.video_prompt_ids(data.grid) for it in items]
    seqs = sample_video_ids(model, vocab, prompts, data.grid, cfg.temperature, cfg.top_k or None, g)
    grids = torch.stack([vocab.from_llm_ids(s).videos[0] for s in seqs])
    videos = tok.decode(grids).clamp(-1, 1)
    res["text_to_video"] = {**_score_clips(videos, digits, dirs, classifier), "cpu_s": round(time.process_time() - t0, 1)}
    torch.save({"videos": videos, "captions": [it["caption"] for it in items]}, out / "gpt2_text_to_video.pt")
    # video -> text: held-out clips' tokens as the prompt, greedy caption, parsed, exact match
    prompts = [vocab.video_ids(data.tokens[i]) for i in range(len(data))]
    outs = greedy_text_ids(model, vocab, prompts)
    caps = [vocab.from_llm_ids(o).text for o in outs]
    parsed = [parse_caption(c) for c in caps]
    n = len(items)
    res["video_to_text"] = {
        "digit_accuracy": sum(p is not None and p.digit == d for p, d in zip(parsed, digits)) / n,
        "direction_accuracy": sum(p is not None and p.direction == r for p, r in zip(parsed, dirs)) / n,
        "speed_accuracy": sum(p is not None and p.speed == it["caption"].rsplit(" ", 1)[1] for p, it in zip(parsed, items)) / n,
        "caption_exact_match": sum(c.strip() == it["caption"] for c, it in zip(caps, items)) / n,
        "well_formed": sum(p is not None for p in parsed) / n,
        "examples": [[it["caption"], c] for it, c in zip(items[:5], caps[:5])]}
    res["gpt2_train"] = json.loads((out / "gpt2" / "train.json").read_text())
    (out / "results_gpt.json").write_text(json.dumps(res, indent=2))
    return res


@torch.no_grad()
def evaluate_mlm(cfg: LLMDemoConfig, out: Path, tokenizer_dir: str | Path | None = None) -> dict[str, Any]:
    """The MLM's class-conditional clips for the held-out digits, scored by the classifier (``results_mlm.json``)."""
    from magvit2.generation.config import LMConfig
    from magvit2.generation.pipeline import LM_FORMAT, VideoGenerator, build_lm
    from magvit2.layers.model_io import build_loaded, load_pretrained

    if (res := _cached(out / "results_mlm.json", cfg)) is not None:
        return res
    tok, classifier, items, digits, dirs, data = _eval_data(cfg, out, tokenizer_dir)
    meta, state = load_pretrained(out / "mlm", LM_FORMAT)
    lm = build_loaded(lambda: build_lm(LMConfig.from_dict(meta["config"]), "mlm"), state, out / "mlm")
    t0 = time.process_time()
    clips = VideoGenerator(lm, tok).generate(digits, steps=cfg.mlm_steps, guidance_scale=cfg.guidance, seed=cfg.seed)
    res = {"config": cfg.to_dict(),
           "mlm_class_to_video": {**_score_clips(clips, digits, None, classifier), "cpu_s": round(time.process_time() - t0, 1)},
           "mlm_train": json.loads((out / "mlm" / "train.json").read_text())}
    (out / "results_mlm.json").write_text(json.dumps(res, indent=2))
    return res


def evaluate(cfg: LLMDemoConfig, out: Path, tokenizer_dir: str | Path | None = None,
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Score the GPT-2 (both directions) and, when trained, the MLM; writes ``results.json``."""
    res = dict(evaluate_gpt(cfg, out, tokenizer_dir))
    if (out / "mlm" / "train.json").is_file():
        res.update(evaluate_mlm(cfg, out, tokenizer_dir))
    (out / "results.json").write_text(json.dumps(res, indent=2))
    return res


def run_demo(cfg: LLMDemoConfig, out_dir: str | Path, tokenizer_dir: str | Path | None = None,
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """All stages; returns (and writes ``results.json``) the measured figures."""
    out = Path(out_dir)
    claim_output(cfg, out)
    vocab = prepare(cfg, out, tokenizer_dir, log)
    train_gpt(cfg, out, vocab, log)
    if cfg.mlm:
        train_mlm(cfg, out, log)
    return evaluate(cfg, out, tokenizer_dir, log)
