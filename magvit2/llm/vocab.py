"""Visual tokens inside a Hugging Face tokenizer and causal LM.

A video's token grid ``[t, h, w]`` of ``bits``-bit indices enters the language model's
vocabulary as **factorized sub-tokens** (:mod:`magvit2.quantizers.factorize`): a 2^18
tokenizer adds 2 x 2^9 = 1,024 rows, not 262,144. Sub-token ``g`` has its own id range,
so a sub-token in the wrong slot is detected, not silently decoded. One video reads::

    <|video|> <|size_T|> <|size_H|> <|size_W|>  s0 s1 s0 s1 ...  <|/video|>

with the grid in raster order (t, then h, then w) and each position's ``g`` sub-tokens
in group order (group 0 = lowest bits). The three size markers carry the geometry, so
:meth:`VisualVocabulary.from_llm_ids` knows how many sub-tokens a complete video has and
never returns a wrong shape.

**Embedding rows of the new tokens** (:func:`extend_vocabulary`, ``init="mean"``): each new
input row (and each new output row of an untied head) is the mean of the existing text rows
plus Gaussian noise of std ``init_std`` (0.02, GPT-2's ``initializer_range``). At the mean, a new
token's initial logit is the average text logit, so the extended model's distribution over text
barely moves (Hewitt, 2021, "Initializing new word embeddings for pretrained language models");
the noise makes the rows distinct. Text ids and text rows are never changed.

Shape letters: t, h, w token grid; g sub-tokens per token; n = t * h * w.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
from einops import rearrange

from magvit2.config.base import Config
from magvit2.errors import UserError
from magvit2.quantizers.factorize import join_indices, split_bits, split_indices

__all__ = ["VisualVocabConfig", "VisualVocabulary", "LLMSequenceError", "Interleaved", "extend_vocabulary",
           "INIT_MODES"]

INIT_MODES = ("mean", "normal")


class LLMSequenceError(UserError):
    """A sequence of language-model ids is not a well-formed interleaving of text and videos."""


@dataclass
class VisualVocabConfig(Config):
    """Which visual tokens a language model's vocabulary gets.

    Fields:
        bits: bits per visual token (the video tokenizer's LFQ dimension).
        groups: sub-tokens per visual token (18 bits, 2 groups -> 2 x 2^9 new rows).
        max_grid: largest t, h or w a sequence can state (one ``<|size_k|>`` marker per k).
        prefix: prefix of every new token's string, so they never collide with text.
    """

    bits: int = 18
    groups: int = 2
    max_grid: int = 64
    prefix: str = "mv2"

    def __post_init__(self) -> None:
        split_bits(self.bits, self.groups)  # validates groups in [1, bits]
        if max(self.bits_per_group) > 16:
            raise UserError(f"sub-tokens of {max(self.bits_per_group)} bits add too many rows; raise groups (bits={self.bits})")
        if self.max_grid < 1:
            raise UserError(f"max_grid must be >= 1, got {self.max_grid}")

    @property
    def bits_per_group(self) -> tuple[int, ...]:
        return split_bits(self.bits, self.groups)

    def token_strings(self) -> list[str]:
        """All new token strings: 2 video markers, ``max_grid`` size markers, then each group's sub-tokens."""
        p = self.prefix
        out = [f"<|{p}_video|>", f"<|/{p}_video|>"]
        out += [f"<|{p}_size_{k}|>" for k in range(1, self.max_grid + 1)]
        for g, b in enumerate(self.bits_per_group):
            out += [f"<|{p}_g{g}_{v}|>" for v in range(1 << b)]
        return out


@VisualVocabConfig.register_preset("tiny")
def _tiny() -> VisualVocabConfig:
    return VisualVocabConfig(bits=8, groups=2, max_grid=8)


@VisualVocabConfig.register_preset("digits")
def _digits() -> VisualVocabConfig:
    return VisualVocabConfig(bits=10, groups=2, max_grid=16)


@VisualVocabConfig.register_preset("paper")
def _paper() -> VisualVocabConfig:
    return VisualVocabConfig(bits=18, groups=2, max_grid=64)


class Interleaved(NamedTuple):
    """What :meth:`VisualVocabulary.from_llm_ids` found, in order.

    segments: text (``str``) and videos (``LongTensor [t, h, w]``) in sequence order.
    valid: one bool ``[t, h, w]`` per video: True where the position was decoded from the ids
        (all True for a complete video; False positions of a best-effort decode hold ``fill``).
    complete: every video had all its sub-tokens and its end marker, and nothing was malformed.
    problems: one line per defect found (empty when ``complete``).
    """

    segments: list[str | torch.Tensor]
    valid: list[torch.Tensor]
    complete: bool
    problems: list[str]

    @property
    def text(self) -> str:
        return "".join(s for s in self.segments if isinstance(s, str))

    @property
    def videos(self) -> list[torch.Tensor]:
        return [s for s in self.segments if isinstance(s, torch.Tensor)]


class VisualVocabulary:
    """The visual ids of an extended tokenizer, and the interleaving of text and token grids."""

    def __init__(self, tokenizer: Any, config: VisualVocabConfig) -> None:
        strings = config.token_strings()
        ids = tokenizer.convert_tokens_to_ids(strings)
        unk = getattr(tokenizer, "unk_token_id", None)
        if any(i is None or i == unk for i in ids):
            raise UserError(f"the tokenizer has no visual tokens for {config}; call extend_vocabulary first")
        start = ids[2 + config.max_grid]
        if ids[2 + config.max_grid:] != list(range(start, start + len(ids) - 2 - config.max_grid)):
            raise UserError("the tokenizer's visual sub-tokens are not contiguous ids; extend it with extend_vocabulary")
        self.tokenizer, self.config = tokenizer, config
        self.video_start, self.video_end = ids[0], ids[1]
        self.size_ids = ids[2 : 2 + config.max_grid]  # size k -> size_ids[k - 1]
        self.group_offsets: list[int] = []
        off = start
        for b in config.bits_per_group:
            self.group_offsets.append(off)
            off += 1 << b
        self.first_id, self.end_id = min(ids), max(ids) + 1
        self._size_of = {i: k + 1 for k, i in enumerate(self.size_ids)}
        self.eos_id = getattr(tokenizer, "eos_token_id", None)

    # ----- ids ---------------------------------------------------------------
    @property
    def groups(self) -> int:
        return self.config.groups

    def group_range(self, g: int) -> range:
        """Ids of sub-token group ``g``."""
        return range(self.group_offsets[g], self.group_offsets[g] + (1 << self.config.bits_per_group[g]))

    def is_visual(self, i: int) -> bool:
        return self.first_id <= i < self.end_id

    def text_ids(self, text: str) -> list[int]:
        """``text`` as the tokenizer's ids, without special tokens (no BOS/EOS)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def video_ids(self, tokens: torch.Tensor) -> list[int]:
        """A token grid ``[t, h, w]`` -> ``<|video|>`` size markers, ``n * g`` sub-token ids, ``<|/video|>``."""
        if tokens.ndim != 3:
            raise UserError(f"a video's tokens must be a grid [t, h, w], got shape {tuple(tokens.shape)}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= 1 << self.config.bits:
            raise UserError(f"visual tokens must be in [0, 2^{self.config.bits}), got [{int(tokens.min())}, {int(tokens.max())}]")
        if max(tokens.shape) > self.config.max_grid:
            raise UserError(f"grid {tuple(tokens.shape)} exceeds max_grid={self.config.max_grid} of the visual vocabulary")
        sub = split_indices(rearrange(tokens, "t h w -> (t h w)"), self.config.bits_per_group)  # n g
        sub = sub + torch.tensor(self.group_offsets, dtype=torch.long)
        sizes = [self.size_ids[k - 1] for k in tokens.shape]
        return [self.video_start, *sizes, *rearrange(sub, "n g -> (n g)").tolist(), self.video_end]

    def video_prompt_ids(self, grid: Sequence[int]) -> list[int]:
        """The opening of a video of ``grid (t, h, w)``: ``<|video|>`` and the three size markers."""
        if len(grid) != 3 or min(grid) < 1 or max(grid) > self.config.max_grid:
            raise UserError(f"grid must be three sizes in [1, {self.config.max_grid}], got {tuple(grid)}")
        return [self.video_start, *[self.size_ids[k - 1] for k in grid]]

    # ----- interleave ----------------------------------------------------------
    def to_llm_ids(self, *segments: str | torch.Tensor, eos: bool = True) -> list[int]:
        """Text (``str``) and videos (``[t, h, w]`` token grids) in the given order -> one id list.

        ``to_llm_ids(caption, tokens)`` is a caption followed by its video; ``to_llm_ids(tokens, caption)``
        the reverse. The tokenizer's EOS id ends the sequence when ``eos`` (and the tokenizer has one).
        """
        ids: list[int] = []
        for s in segments:
            if isinstance(s, str):
                ids += self.text_ids(s)
            elif isinstance(s, torch.Tensor):
                ids += self.video_ids(s)
            else:
                raise UserError(f"segments must be str (text) or a LongTensor [t, h, w] (video), got {type(s).__name__}")
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def from_llm_ids(self, ids: Sequence[int] | torch.Tensor, strict: bool = True, fill: int = 0) -> Interleaved:
        """The inverse of :meth:`to_llm_ids`; the sequence ends at the first EOS (or its last id).

        A video that stops early (the sequence ends, or text or EOS comes before its last
        sub-token or its end marker), lacks its size markers, or has a sub-token in the wrong
        group slot is a defect. ``strict=True`` raises :class:`LLMSequenceError` naming the
        defect. ``strict=False`` decodes best-effort: a video with a known grid keeps that
        shape, every position read from the ids is marked True in ``valid``, the rest hold
        ``fill``; a video without a readable grid is dropped; ``complete`` is False and
        ``problems`` lists each defect. Never a tensor of another shape than the stated grid.
        """
        seq = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_id is not None and self.eos_id in seq:
            seq = seq[: seq.index(self.eos_id)]
        segments: list[str | torch.Tensor] = []
        valid: list[torch.Tensor] = []
        problems: list[str] = []
        text: list[int] = []
        pos, k = 0, 0
        while pos < len(seq):
            i = seq[pos]
            if i == self.video_start:
                if text:
                    segments.append(self.tokenizer.decode(text))
                    text = []
                k += 1
                pos, video, mask, problem = self._read_video(seq, pos + 1, k, fill)
                if problem:
                    problems.append(problem)
                if video is not None:
                    segments.append(video)
                    valid.append(mask)
            elif self.is_visual(i):
                problems.append(f"visual id {i} at position {pos} outside any video (expected text or <|video|>)")
                pos += 1
            else:
                text.append(i)
                pos += 1
            if problems and strict:
                raise LLMSequenceError(problems[0])
        if text:
            segments.append(self.tokenizer.decode(text))
        return Interleaved(segments, valid, not problems, problems)

    def _read_video(self, seq: list[int], pos: int, k: int, fill: int
                    ) -> tuple[int, torch.Tensor | None, torch.Tensor | None, str | None]:
        """Read video ``k`` whose ``<|video|>`` ended at ``pos``: (next position, grid, valid mask, defect)."""
        grid = []
        while len(grid) < 3 and pos < len(seq) and seq[pos] in self._size_of:
            grid.append(self._size_of[seq[pos]])
            pos += 1
        if len(grid) < 3:
            return pos, None, None, (f"video {k} has {len(grid)} of its 3 size markers (t, h, w) at position {pos}; "
                                     f"its shape is unknown")
        t, h, w = grid
        g = self.groups
        need = t * h * w * g
        got: list[int] = []
        problem = None
        while pos < len(seq) and len(got) < need:
            i = seq[pos]
            slot = len(got) % g
            if i not in self.group_range(slot):
                if self.is_visual(i) and i != self.video_end and i != self.video_start:
                    problem = f"video {k}: id {i} at position {pos} is not a group-{slot} sub-token"
                    pos += 1  # skip the malformed id
                break
            got.append(i - self.group_offsets[slot])
            pos += 1
        if problem is None and len(got) < need:
            problem = (f"video {k} of grid ({t}, {h}, {w}) is truncated: expected {need} sub-tokens "
                       f"({g} per token), got {len(got)}")
        elif problem is None:
            if pos < len(seq) and seq[pos] == self.video_end:
                pos += 1
            else:
                problem = f"video {k} has all {need} sub-tokens but no <|/video|> end marker at position {pos}"
        n_tok = len(got) // g
        sub = torch.full((t * h * w, g), 0, dtype=torch.long)
        if n_tok:
            sub[:n_tok] = torch.tensor(got[: n_tok * g], dtype=torch.long).reshape(n_tok, g)
        flat = join_indices(sub, self.config.bits_per_group)  # n
        mask = torch.zeros(t * h * w, dtype=torch.bool)
        mask[:n_tok] = True
        flat[~mask] = fill
        video = rearrange(flat, "(t h w) -> t h w", t=t, h=h, w=w)
        return pos, video, rearrange(mask, "(t h w) -> t h w", t=t, h=h, w=w), problem


@torch.no_grad()
def extend_vocabulary(tokenizer: Any, model: Any | None, config: VisualVocabConfig, init: str = "mean",
                      init_std: float = 0.02, seed: int = 0) -> VisualVocabulary:
    """Add the visual tokens of ``config`` to a Hugging Face ``tokenizer`` and resize ``model``'s embeddings.

    Text tokens keep their ids and their embedding (and output) rows. New rows follow ``init``:
    ``"mean"`` (the mean of the existing text rows plus N(0, init_std^2) noise, see the module
    docstring) or ``"normal"`` (N(0, init_std^2), as a freshly built model). ``model`` may be None
    (tokenizer only, e.g. to write a dataset). Returns the :class:`VisualVocabulary`.
    """
    if init not in INIT_MODES:
        raise UserError(f"init must be one of {INIT_MODES}, got {init!r}")
    strings = config.token_strings()
    vocab = tokenizer.get_vocab()
    present = [s for s in strings if s in vocab]
    if present:
        raise UserError(f"the tokenizer already has visual tokens (e.g. {present[0]}); extend it once")
    n_text = len(tokenizer)
    tokenizer.add_tokens(strings, special_tokens=True)
    vv = VisualVocabulary(tokenizer, config)
    if model is not None:
        old_rows = model.get_input_embeddings().weight.shape[0]
        if old_rows < n_text:
            raise UserError(f"the model has {old_rows} embedding rows for a tokenizer of {n_text} tokens")
        # rows beyond the tokenizer (a padded vocabulary) are reused before the table grows
        model.resize_token_embeddings(max(len(tokenizer), old_rows), mean_resizing=False)
        g = torch.Generator().manual_seed(seed)
        tables = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != tables[0].data_ptr():
            tables.append(out.weight)
        new = torch.arange(n_text, len(tokenizer))
        for w in tables:
            noise = torch.randn(len(new), w.shape[1], generator=g) * init_std
            base = w[:n_text].float().mean(0, keepdim=True) if init == "mean" else 0.0
            w[new] = (base + noise).to(w.dtype)
        if out is not None and getattr(out, "bias", None) is not None:
            out.bias[new] = 0.0
    return vv
