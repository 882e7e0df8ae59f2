"""VideoGenerator: a token language model plus the tokenizer that decodes its tokens.

Saved as one directory: the language model (``config.json`` + ``model.safetensors``)
and the tokenizer in ``tokenizer/``. Sampling is the library's MaskGIT sampler
(or the AR sampler) over the model's logits; this class only wires them to
pixels.

Shape letters: b batch, c channels, t frames, h height, w width, n tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from magvit2.layers.model_io import build_loaded, load_pretrained, save_pretrained
from magvit2.generation.ar import AutoregressiveTokenModel
from magvit2.generation.ar_sampling import ar_sample
from magvit2.generation.config import LMConfig
from magvit2.generation.masking import flatten_grid, frame_context_mask, unflatten_grid
from magvit2.generation.mlm import MaskedTokenModel
from magvit2.generation.sampling import maskgit_sample
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.errors import UserError

__all__ = ["VideoGenerator", "build_lm", "LM_FORMAT"]

LM_FORMAT = "magvit2.TokenLM"
KINDS = ("mlm", "ar")


def build_lm(config: LMConfig, kind: str = "mlm") -> MaskedTokenModel | AutoregressiveTokenModel:
    if kind not in KINDS:
        raise UserError(f"language model kind must be one of {KINDS}, got {kind!r}")
    return MaskedTokenModel(config) if kind == "mlm" else AutoregressiveTokenModel(config)


class VideoGenerator:
    """Class-conditional generation and frame prediction in pixel space."""

    def __init__(self, lm: MaskedTokenModel | AutoregressiveTokenModel, tokenizer: VideoTokenizer) -> None:
        if lm.config.bits != tokenizer.config.token_bits:
            raise UserError(f"language model has {lm.config.bits}-bit tokens, tokenizer {tokenizer.config.token_bits}-bit")
        self.lm, self.tokenizer = lm.eval(), tokenizer.eval()
        self.kind = "mlm" if isinstance(lm, MaskedTokenModel) else "ar"

    @property
    def config(self) -> LMConfig:
        return self.lm.config

    @property
    def num_frames(self) -> int:
        """Pixel frames of one generated clip."""
        return 1 + (self.config.grid[0] - 1) * self.tokenizer.config.temporal_factor

    def to(self, device: torch.device | str) -> "VideoGenerator":
        self.lm.to(device)
        self.tokenizer.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    # ----- save / load -----------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        save_pretrained(path, LM_FORMAT, self.config.to_dict(), self.lm.state_dict(), extra={"kind": self.kind})
        self.tokenizer.save_pretrained(path / "tokenizer")
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "VideoGenerator":
        meta, state = load_pretrained(path, LM_FORMAT, map_location)
        config = LMConfig.from_dict(meta["config"])
        lm = build_loaded(lambda: build_lm(config, meta.get("kind", "mlm")), state, path)
        return cls(lm, VideoTokenizer.from_pretrained(Path(path) / "tokenizer", map_location))

    # ----- sampling ----------------------------------------------------------
    def _labels(self, labels: Sequence[int] | torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if labels is None:
            return None
        y = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        k = self.config.num_classes
        if k == 0:
            raise UserError("this model is unconditional; expected no class labels")
        if y.numel() != batch or int(y.min()) < 0 or int(y.max()) >= k:
            raise UserError(f"expected {batch} class labels in [0, {k}), got {y.tolist()}")
        return y

    @torch.no_grad()
    def sample_tokens(self, batch: int, labels: Sequence[int] | torch.Tensor | None = None, *, steps: int = 12,
                      guidance_scale: float | None = None, temperature: float = 1.0,
                      known_tokens: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
                      seed: int | None = None, top_k: int | None = None) -> torch.Tensor:
        """Token grids ``[b, t', h', w']``."""
        cfg = self.config
        y = self._labels(labels, batch)
        g = torch.Generator(device=self.device)
        g.manual_seed(seed if seed is not None else torch.seed())
        if guidance_scale is not None and y is None:
            raise UserError("guidance_scale needs class labels")
        if self.kind == "mlm":
            out = maskgit_sample(self.lm.logits, batch, cfg.seq_len, cfg.bits_per_group, steps, cond=y,
                                 null_cond=self.lm.null_cond(batch, self.device), known_tokens=known_tokens,
                                 known_mask=known_mask, temperature=temperature, guidance_scale=guidance_scale,
                                 generator=g, device=self.device)
            seq = out.tokens
        else:
            prefix = None
            if known_mask is not None:
                p = int(known_mask[0].sum())
                if not bool(known_mask[:, :p].all()):
                    raise UserError("the autoregressive model only takes a contiguous prefix as context")
                prefix = known_tokens[:, :p]
            seq = ar_sample(self.lm, batch, cond=y, prefix=prefix, temperature=temperature, top_k=top_k,
                            guidance_scale=guidance_scale, generator=g).tokens
        return unflatten_grid(seq, cfg.grid)

    @torch.no_grad()
    def generate(self, labels: Sequence[int] | torch.Tensor | None = None, num: int | None = None, **kw) -> torch.Tensor:
        """Videos ``[b, 3, t, h, w]`` in [-1, 1] for the given class labels (or ``num`` unconditional ones)."""
        batch = len(labels) if labels is not None else int(num or 1)
        return self.tokenizer.decode(self.sample_tokens(batch, labels, **kw)).clamp(-1, 1)

    @torch.no_grad()
    def predict(self, video: torch.Tensor, context_frames: int = 5, labels=None, **kw) -> torch.Tensor:
        """Continue ``video`` ``[b, 3, T, h, w]``: its first ``context_frames`` (1 + 4k) frames are kept as
        context tokens, the rest of the clip is generated. Returns ``[b, 3, num_frames, h, w]``."""
        tf = self.tokenizer.config.temporal_factor
        if context_frames < 1 or (context_frames - 1) % tf or context_frames >= self.num_frames:
            raise UserError(f"context_frames must be 1 + {tf}k and below {self.num_frames}, got {context_frames}")
        if video.shape[2] < context_frames:
            raise UserError(f"the video has {video.shape[2]} frames; expected at least {context_frames}")
        b = video.shape[0]
        ctx = self.tokenizer.encode(video[:, :, :context_frames].to(self.device))  # [b, k, h', w']
        if tuple(ctx.shape[2:]) != tuple(self.config.grid[1:]):
            raise UserError(f"video frames give a {tuple(ctx.shape[2:])} token grid; the model expects {tuple(self.config.grid[1:])}")
        k = ctx.shape[1]
        known_mask = frame_context_mask(self.config.grid, k, b, self.device)
        known = torch.zeros(b, self.config.seq_len, dtype=torch.long, device=self.device)
        known[:, : ctx[0].numel()] = flatten_grid(ctx)
        tokens = self.sample_tokens(b, labels, known_tokens=known, known_mask=known_mask, **kw)
        return self.tokenizer.decode(tokens).clamp(-1, 1)
