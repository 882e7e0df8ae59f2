"""Quantizers behind one interface (:class:`Quantizer`, built from :class:`QuantizerConfig` by
:func:`build_quantizer`): lookup-free quantization (LFQ) with an exact factorized entropy
penalty, finite scalar quantization (FSQ), codebook-usage metrics, and token factorization
into sub-tokens."""
from .base import (
    Quantizer,
    QuantizerOutput,
    build_quantizer,
    quantizer_class,
    quantizer_kinds,
    register_quantizer,
    token_bits,
)
from .config import QuantizerConfig
from .entropy import (
    MAX_EXACT_BITS,
    ReduceHook,
    exact_codebook_entropy,
    grouped_codebook_entropy,
    per_sample_entropy,
)
from .factorize import join_indices, split_bits, split_indices
from .fsq import FSQ, FSQOutput
from .lfq import LFQ, LFQOutput, codes_to_indices, indices_to_codes
from .usage import CodeUsage, code_usage, code_usage_from_codes

__all__ = [
    "Quantizer",
    "QuantizerOutput",
    "QuantizerConfig",
    "build_quantizer",
    "quantizer_class",
    "quantizer_kinds",
    "register_quantizer",
    "token_bits",
    "LFQ",
    "LFQOutput",
    "FSQ",
    "FSQOutput",
    "codes_to_indices",
    "indices_to_codes",
    "CodeUsage",
    "code_usage",
    "code_usage_from_codes",
    "split_bits",
    "split_indices",
    "join_indices",
    "MAX_EXACT_BITS",
    "ReduceHook",
    "per_sample_entropy",
    "exact_codebook_entropy",
    "grouped_codebook_entropy",
]
