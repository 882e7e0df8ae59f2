"""The one quantizer config: which quantizer (``kind``) and its settings, with the defaults.

:class:`magvit2.tokenizer.TokenizerConfig` holds one of these as ``quantizer``;
:func:`magvit2.quantizers.build_quantizer` turns it into a module. A new quantizer
adds its class under ``magvit2/quantizers`` (registered with
:func:`~magvit2.quantizers.register_quantizer`) and, if it needs them, its fields here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from magvit2.config.base import Config

__all__ = ["QuantizerConfig"]


@dataclass
class QuantizerConfig(Config):
    """Quantizer settings. ``kind`` picks the class; fields a kind does not use are ignored by it."""

    kind: str = "lfq"  #: "lfq" (lookup-free, MAGVIT-2) or "fsq" (finite scalar quantization)
    # ----- LFQ (see magvit2.quantizers.LFQ) -----
    entropy_weight: float = 0.1  #: weight of the entropy penalty (annealed by the trainer)
    commitment_weight: float = 0.25  #: weight of MSE(z, sg(q))
    temperature: float = 0.01  #: tau in q(c|z) = softmax(2 z.c / tau)
    gamma: float = 1.0  #: weight of the codebook-entropy term inside the penalty
    entropy_mode: str = "exact"  #: "exact" joint codebook entropy or "grouped" approximation
    group_bits: int = 9  #: bits per group in "grouped" mode
    exact_method: str = "auto"  #: "dense", "sparse" or "auto": how "exact" mode forms the joint mean
    # ----- FSQ (see magvit2.quantizers.FSQ) -----
    levels: tuple[int, ...] = ()  #: quantization levels per latent channel, e.g. (8, 5, 5, 5)

    #: fields added since the first shipped models, at their old-behaviour values (see Config.identity)
    added_fields: ClassVar[dict[str, Any]] = {"kind": "lfq", "exact_method": "auto", "levels": ()}
