"""VideoTokenizer: causal 3D CNN encoder, a quantizer (LFQ by default; see ``config.quantizer``), decoder.

Shape letters: b batch, c=3 colour channels, t frames, h height, w width,
d latent bits, and t', h', w' the token grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import torch
from torch import nn

from magvit2.layers.model_io import (
    CheckpointError, build_loaded, load_pretrained, save_pretrained,
)
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.quantizers import Quantizer, QuantizerOutput, ReduceHook, build_quantizer
from magvit2.tokenizer.decoder import Decoder
from magvit2.tokenizer.encoder import Encoder
from magvit2.tokenizer.stream import decode_stream, encode_stream

__all__ = ["VideoTokenizer", "TokenizerOutput", "CheckpointError"]

FORMAT = "magvit2.VideoTokenizer"

class TokenizerOutput(NamedTuple):
    reconstruction: torch.Tensor  #: [b, c, t, h, w]
    indices: torch.Tensor  #: [b, t', h', w'] int64 tokens
    quantizer: QuantizerOutput  #: quantized latent, indices, the quantizer's loss and metrics
    latent: torch.Tensor  #: [b, d, t', h', w'] encoder output before quantization


class VideoTokenizer(nn.Module):
    """MAGVIT-2 tokenizer. Images are one-frame videos and share the vocabulary.

    >>> tok = VideoTokenizer(TokenizerConfig.preset("tiny"))
    >>> idx = tok.encode(torch.zeros(1, 3, 17, 32, 32))   # [1, 5, 8, 8]
    >>> rec = tok.decode(idx)                              # [1, 3, 17, 32, 32]
    """

    def __init__(self, config: TokenizerConfig | None = None, reduce_hook: ReduceHook | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else TokenizerConfig()
        self.encoder = Encoder(self.config)
        self.quantizer: Quantizer = build_quantizer(self.config.quantizer, self.config.bits, reduce_hook)
        self.decoder = Decoder(self.config)

    # ----- checks ---------------------------------------------------------
    def _check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(f"expected a video [b, {self.config.in_channels}, t, h, w], got shape {tuple(video.shape)}")
        self.config.latent_shape(*video.shape[2:])  # frame and size contract

    # ----- encoding -------------------------------------------------------
    def encode_latent(self, video: torch.Tensor) -> torch.Tensor:
        """``[b, c, t, h, w]`` in [-1, 1] -> continuous latent ``[b, d, t', h', w']``."""
        self._check_video(video)
        return self.encoder(video)

    def quantize(self, latent: torch.Tensor, mask: torch.Tensor | None = None,
                 entropy_weight: float | None = None) -> QuantizerOutput:
        return self.quantizer(latent, mask=mask, entropy_weight=entropy_weight)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``[b, c, t, h, w]`` -> tokens ``[b, t', h', w']`` (t == 1 or 1 + 4k for video presets)."""
        z = self.encode_latent(video)
        return self.quantizer.latent_to_indices(z)

    # ----- decoding -------------------------------------------------------
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized latent ``[b, d, t', h', w']`` (the quantizer's codes) -> video ``[b, c, t, h, w]``."""
        if codes.ndim != 5 or codes.shape[1] != self.config.bits:
            raise ValueError(f"expected codes [b, {self.config.bits}, t', h', w'], got shape {tuple(codes.shape)}")
        return self.decoder(codes)

    def check_indices(self, indices: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``indices`` are integer tokens ``[b, t', h', w']`` of this vocabulary."""
        if indices.ndim != 4:
            raise ValueError(f"expected tokens [b, t', h', w'], got shape {tuple(indices.shape)}")
        if indices.dtype.is_floating_point:
            raise ValueError(f"expected integer tokens, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.config.codebook_size):
            raise ValueError(f"tokens must lie in [0, {self.config.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens ``[b, t', h', w']`` -> video ``[b, c, t, h, w]``."""
        self.check_indices(indices)
        dtype = next(self.parameters()).dtype
        return self.decode_codes(self.quantizer.indices_to_codes(indices, dtype=dtype))

    # ----- streams (videos of any length) ----------------------------------
    def encode_stream(self, chunks: Iterable[torch.Tensor], pad_end: bool = True) -> Iterator[torch.Tensor]:
        """Token frames ``[b, t', h', w']`` from frame chunks ``[b, c, t, h, w]`` of any lengths, as one
        causal stream (equal to :meth:`encode` of the whole clip); see :mod:`magvit2.tokenizer.stream`."""
        return encode_stream(self, chunks, pad_end)

    def decode_stream(self, tokens: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Frame chunks ``[b, c, t, h, w]`` from token chunks ``[b, t', h', w']`` of one stream (equal to
        :meth:`decode` of all tokens); see :mod:`magvit2.tokenizer.stream`."""
        return decode_stream(self, tokens)

    # ----- training forward -----------------------------------------------
    def forward(self, video: torch.Tensor, entropy_weight: float | None = None) -> TokenizerOutput:
        z = self.encode_latent(video)
        q = self.quantize(z, entropy_weight=entropy_weight)
        return TokenizerOutput(self.decoder(q.quantized), q.indices, q, z)

    # ----- save / load ----------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into directory ``path``."""
        return save_pretrained(path, FORMAT, self.config.to_dict(), self.state_dict())

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "VideoTokenizer":
        meta, state = load_pretrained(path, FORMAT, map_location)
        config = TokenizerConfig.from_dict(meta["config"])
        model = build_loaded(lambda: cls(config), state, path)
        return model.eval()
