"""A Hugging Face causal LM over an extended vocabulary: a tiny GPT-2 from config, batches, sampling.

Sampling is constrained by the sequence format (:mod:`magvit2.llm.vocab`): inside a video the
``j``-th sub-token may only come from group ``j mod g``, and a caption may only use text ids.
The model still chooses freely within those sets; the constraint only rules out sequences that
:meth:`VisualVocabulary.from_llm_ids` would reject. Everything runs with a KV cache.

Shape letters: b batch, s sequence, v vocabulary.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from magvit2.errors import UserError
from magvit2.llm.vocab import VisualVocabulary

__all__ = ["tiny_gpt2", "pad_batch", "sample_video_ids", "greedy_text_ids", "IGNORE"]

IGNORE = -100  #: label of ids left out of the loss (the Hugging Face convention)


def tiny_gpt2(vocab_size: int, n_positions: int, width: int = 128, depth: int = 4, heads: int = 4,
              seed: int = 0) -> Any:
    """A GPT-2 built from ``GPT2Config`` (no download), tied input/output embeddings."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
        raise UserError("magvit2.llm needs transformers: pip install 'magvit2[llm]'") from e
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=width, n_layer=depth, n_head=heads,
                     bos_token_id=None, eos_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def pad_batch(rows: Sequence[dict[str, Any]], pad_id: int, prompt_loss: bool = False) -> dict[str, torch.Tensor]:
    """Rows ``{"input_ids", "prompt_length"}`` -> right-padded ``input_ids``, ``attention_mask``, ``labels`` ``[b, s]``.

    Labels are the ids (the model shifts them), :data:`IGNORE` on padding and, unless
    ``prompt_loss``, on each row's prompt.
    """
    s = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), s), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), s), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), s), dtype=torch.long)
    for i, r in enumerate(rows):
        x = torch.tensor(r["input_ids"], dtype=torch.long)
        ids[i, : len(x)], mask[i, : len(x)], labels[i, : len(x)] = x, 1, x
        if not prompt_loss:
            labels[i, : r["prompt_length"]] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _allowed(vocab_size: int, ids: range | Sequence[int]) -> torch.Tensor:
    m = torch.full((vocab_size,), float("-inf"))
    m[torch.as_tensor(list(ids), dtype=torch.long)] = 0.0
    return m


@torch.no_grad()
def sample_video_ids(model: Any, vocab: VisualVocabulary, prompts: Sequence[Sequence[int]], grid: Sequence[int],
                     temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
                     ) -> list[list[int]]:
    """Complete each prompt (ending in :meth:`VisualVocabulary.video_prompt_ids`) with a video of ``grid``.

    Prompts of equal length are sampled as one batch. Returns each prompt followed by its
    ``n * g`` sampled sub-token ids and ``<|/video|>``.
    """
    n_sub = int(torch.tensor(list(grid)).prod()) * vocab.groups
    v = model.get_output_embeddings().weight.shape[0]
    masks = [_allowed(v, vocab.group_range(g)) for g in range(vocab.groups)]
    out: list[list[int] | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for rows in by_len.values():
        x = torch.tensor([list(prompts[i]) for i in rows], dtype=torch.long)  # b s
        res = model(input_ids=x, use_cache=True)
        cache, logits, new = res.past_key_values, res.logits[:, -1], []
        for j in range(n_sub):
            z = logits.float() / max(temperature, 1e-6) + masks[j % vocab.groups]
            if top_k:
                kth = z.topk(top_k, dim=-1).values[:, -1:]
                z = z.masked_fill(z < kth, float("-inf"))
            nxt = torch.multinomial(z.softmax(-1), 1, generator=generator) if temperature > 0 else z.argmax(-1, keepdim=True)
            new.append(nxt)
            if j + 1 < n_sub:
                res = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache, logits = res.past_key_values, res.logits[:, -1]
        sampled = torch.cat(new, dim=1).tolist()
        for r, i in enumerate(rows):
            out[i] = list(prompts[i]) + sampled[r] + [vocab.video_end]
    return out  # type: ignore[return-value]


@torch.no_grad()
def greedy_text_ids(model: Any, vocab: VisualVocabulary, prompts: Sequence[Sequence[int]], max_new: int = 48
                    ) -> list[list[int]]:
    """Greedy text continuation of equal-length prompts until EOS (text ids only); returns the new ids."""
    if len({len(p) for p in prompts}) != 1:
        raise ValueError("greedy_text_ids takes prompts of equal length")
    v = model.get_output_embeddings().weight.shape[0]
    mask = _allowed(v, [i for i in range(v) if not vocab.is_visual(i)])
    x = torch.tensor([list(p) for p in prompts], dtype=torch.long)
    max_new = min(max_new, getattr(model.config, "n_positions", x.shape[1] + max_new) - x.shape[1])
    res = model(input_ids=x, use_cache=True)
    cache, logits = res.past_key_values, res.logits[:, -1]
    new, done = [], torch.zeros(len(prompts), dtype=torch.bool)
    for _ in range(max_new):
        nxt = (logits.float() + mask).argmax(-1, keepdim=True)
        new.append(nxt)
        if vocab.eos_id is not None:
            done |= nxt[:, 0] == vocab.eos_id
        if bool(done.all()) or len(new) == max_new:
            break
        res = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        cache, logits = res.past_key_values, res.logits[:, -1]
    rows = torch.cat(new, dim=1).tolist()
    if vocab.eos_id is not None:
        rows = [r[: r.index(vocab.eos_id) + 1] if vocab.eos_id in r else r for r in rows]
    return rows
