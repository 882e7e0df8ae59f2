"""Video classifiers over tokens or pixels, and the bundle that saves one with its tokenizer.

:class:`VideoClassifier` is one network for both inputs of :class:`ClassifierConfig`:

* tokens ``[b, t', h', w']`` -> sub-tokens ``[b, n, g]`` (:func:`split_indices`) -> the sum of their
  embeddings, with the generator's :class:`SubTokenEmbedding` (the same module, so a token
  classifier and a token LM embed tokens the same way);
* pixels ``[b, c, t, h, w]`` -> causal tubelets ``[b, n, pt*ph*pw*c]`` -> a linear embedding.

Then a position embedding, the generator's :class:`Transformer`, mean pooling and a linear
class head. Pixel inputs accept a ``masked [b, n]`` map: masked positions are replaced by a
learned [MASK] vector before the transformer (BEiT/BEVT-style masked pre-training).

Shape letters: b batch, c channels, t frames, h height, w width, n positions (t' h' w'),
g sub-token groups, d width, k classes, p pixels per tubelet.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from einops import rearrange, repeat
from torch import nn

from magvit2.layers.model_io import build_loaded, load_pretrained, save_pretrained
from magvit2.generation.transformer import PositionEmbedding, SubTokenEmbedding, Transformer, init_weights
from magvit2.quantizers.factorize import split_indices
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.understanding.config import ClassifierConfig

__all__ = ["ClassifierOutput", "TubeletEmbedding", "VideoClassifier", "ClipClassifier", "CLASSIFIER_FORMAT"]

CLASSIFIER_FORMAT = "magvit2.VideoClassifier"


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  #: [b, k] class logits
    hidden: torch.Tensor  #: [b, n, d] final per-position features


class TubeletEmbedding(nn.Module):
    """Causal tubelets, cut like the tokenizer: ``[b, c, 1 + pt*(t'-1), h, w] -> [b, t'*h'*w', d]``.

    The first frame is repeated ``pt - 1`` times in front, so it forms a tubelet of its own
    (latent frame 0 of a causal tokenizer) and frames ``1 + pt*(i-1) .. pt*i`` form tubelet ``i``.
    """

    def __init__(self, tubelet: Sequence[int], channels: int, width: int) -> None:
        super().__init__()
        self.tubelet = tuple(int(x) for x in tubelet)
        pt, ph, pw = self.tubelet
        self.proj = nn.Linear(channels * pt * ph * pw, width)

    def patches(self, video: torch.Tensor) -> torch.Tensor:
        """``video [b, c, t, h, w] -> [b, n, p]`` pixel tubelets (raster order over t', h', w')."""
        pt, ph, pw = self.tubelet
        b, c, t, h, w = video.shape
        if (t - 1) % pt or h % ph or w % pw:
            raise ValueError(f"a clip [b, c, 1 + {pt}k, h, w] with h, w multiples of {(ph, pw)} expected, got {tuple(video.shape)}")
        video = torch.cat([repeat(video[:, :, :1], "b c 1 h w -> b c r h w", r=pt - 1), video], dim=2)
        return rearrange(video, "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=pt, ph=ph, pw=pw)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(self.patches(video))


class VideoClassifier(nn.Module):
    """``inputs -> ClassifierOutput(logits [b, k], hidden [b, n, d])``; see the module docstring."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        if config.inputs == "tokens":
            self.embed: nn.Module = SubTokenEmbedding(config.bits_per_group, d)
        else:
            self.embed = TubeletEmbedding(config.tubelet, config.channels, d)
            self.mask_token = nn.Parameter(torch.zeros(d))
        self.pos = PositionEmbedding(config.input_grid, d, config.pos_embedding)
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.depth, d, config.heads, config.mlp_ratio, config.dropout)
        self.head = nn.Linear(d, config.num_classes)
        init_weights(self, config.init_std)

    @property
    def seq_len(self) -> int:
        t, h, w = self.config.input_grid
        return t * h * w

    def select_frames(self, video: torch.Tensor) -> torch.Tensor:
        """The frames the model sees: the whole clip, or its middle frame for ``inputs="frame"``."""
        if self.config.inputs != "frame":
            return video
        mid = video.shape[2] // 2
        return video[:, :, mid : mid + 1]

    def embed_inputs(self, x: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``[b, t', h', w']`` or pixels ``[b, c, t, h, w]`` -> ``[b, n, d]`` (masked positions -> [MASK])."""
        if self.config.inputs == "tokens":
            if x.ndim != 4 or x.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"a token classifier takes int tokens [b, t', h', w'], got {x.dtype} {tuple(x.shape)}")
            if masked is not None:
                raise ValueError("masking is defined for pixel inputs only")
            e = self.embed(split_indices(rearrange(x, "b t h w -> b (t h w)"), self.config.bits_per_group))
        else:
            if x.ndim != 5 or not x.is_floating_point():
                raise ValueError(f"a pixel classifier takes clips [b, c, t, h, w] in [-1, 1], got {x.dtype} {tuple(x.shape)}")
            e = self.embed(self.select_frames(x))
            if masked is not None:
                e = torch.where(masked[..., None], self.mask_token.to(e.dtype), e)
        if e.shape[1] != self.seq_len:
            raise ValueError(f"inputs give {e.shape[1]} positions, the model's grid {self.config.input_grid} has {self.seq_len}")
        return e + self.pos()

    def features(self, x: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
        """``[b, n, d]`` transformer features (the pre-training heads read these)."""
        return self.transformer(self.drop(self.embed_inputs(x, masked)))

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        h = self.features(x)
        return ClassifierOutput(self.head(h.mean(dim=1)), h)


class ClipClassifier:
    """A trained :class:`VideoClassifier` with its class names and (for tokens) its frozen tokenizer.

    Saved as one directory: ``config.json`` + ``model.safetensors``, and ``tokenizer/`` for token inputs.
    ``predict`` takes pixel clips ``[b, c, t, h, w]`` in ``[-1, 1]`` in every case.
    """

    def __init__(self, model: VideoClassifier, tokenizer: VideoTokenizer | None = None,
                 class_names: Sequence[str] = ()) -> None:
        if model.config.inputs == "tokens":
            if tokenizer is None:
                raise ValueError("a token classifier needs its tokenizer")
            if tokenizer.config.bits != model.config.bits:
                raise ValueError(f"classifier expects {model.config.bits}-bit tokens, tokenizer gives {tokenizer.config.bits}")
        self.model, self.tokenizer = model.eval(), (tokenizer.eval() if tokenizer is not None else None)
        self.class_names = tuple(class_names) or tuple(str(k) for k in range(model.config.num_classes))

    @property
    def config(self) -> ClassifierConfig:
        return self.model.config

    def to(self, device: torch.device | str) -> "ClipClassifier":
        self.model.to(device)
        if self.tokenizer is not None:
            self.tokenizer.to(device)
        return self

    @torch.no_grad()
    def inputs(self, video: torch.Tensor) -> torch.Tensor:
        """What the network reads: the tokens of ``video`` (tokens inputs) or ``video`` itself."""
        if self.config.inputs != "tokens":
            return video
        assert self.tokenizer is not None
        return self.tokenizer.encode(video)

    @torch.no_grad()
    def predict(self, video: torch.Tensor) -> torch.Tensor:
        """``video [b, c, t, h, w] -> logits [b, k]``."""
        return self.model(self.inputs(video)).logits

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        save_pretrained(path, CLASSIFIER_FORMAT, self.config.to_dict(), self.model.state_dict(),
                        extra={"class_names": list(self.class_names)})
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path / "tokenizer")
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "ClipClassifier":
        meta, state = load_pretrained(path, CLASSIFIER_FORMAT, map_location)
        config = ClassifierConfig.from_dict(meta["config"])
        model = build_loaded(lambda: VideoClassifier(config), state, path)
        tok = None
        if model.config.inputs == "tokens":
            tok = VideoTokenizer.from_pretrained(Path(path) / "tokenizer", map_location)
        return cls(model, tok, meta.get("class_names", ()))
