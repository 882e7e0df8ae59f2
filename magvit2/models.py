"""Loading models by directory, or the shipped ones when none is given: what every command, the demo
and a user's script start from.

>>> from magvit2.models import load_tokenizer, load_codec_models
>>> tok = load_tokenizer()                                   # the shipped tokenizer-small
>>> tok, prior = load_codec_models(prior="uniform")          # a tokenizer and a codec prior

A model directory holds ``config.json`` + ``model.safetensors`` (``save_pretrained``); a generator
directory also holds its tokenizer in ``tokenizer/``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from magvit2.codec.priors import PriorSource, TokenPrior, load_prior
from magvit2.generation.pipeline import VideoGenerator
from magvit2.pretrained import default_model_dir
from magvit2.tokenizer.model import VideoTokenizer

__all__ = ["load_tokenizer", "load_generator", "load_codec_models"]

Device = torch.device | str


def load_tokenizer(model_dir: str | Path | None = None, device: Device = "cpu", kind: str = "tokenizer") -> VideoTokenizer:
    """The tokenizer in ``model_dir`` (default: the shipped model of ``kind``), on ``device``, in eval mode."""
    path = Path(model_dir) if model_dir else default_model_dir(kind)
    return VideoTokenizer.from_pretrained(path).to(device).eval()


def load_generator(model_dir: str | Path | None = None, device: Device = "cpu") -> VideoGenerator:
    """The generator (token LM + its tokenizer) in ``model_dir`` (default: the shipped ``digits-lm``)."""
    path = Path(model_dir) if model_dir else default_model_dir("digits-lm")
    return VideoGenerator.from_pretrained(path).to(device)


def load_codec_models(model_dir: str | Path | None = None, prior: str = "uniform",
                      generator_dir: str | Path | None = None, device: Device = "cpu") -> tuple[VideoTokenizer, TokenPrior]:
    """The tokenizer and the ``prior`` (a kind in :data:`magvit2.codec.PRIORS`) a codec file needs.

    With ``generator_dir`` the generator's own tokenizer is used (and its masked LM is the ``lm`` prior);
    otherwise the tokenizer in ``model_dir`` (default: the shipped one), beside which a ``static``
    prior is stored.
    """
    generator = None
    if generator_dir:
        generator = load_generator(generator_dir, device)
        tok, tok_dir = generator.tokenizer, Path(generator_dir) / "tokenizer"
    else:
        tok_dir = Path(model_dir) if model_dir else default_model_dir("tokenizer")
        tok = load_tokenizer(tok_dir, device)
    return tok, load_prior(prior, PriorSource(tok, tok_dir, generator))
