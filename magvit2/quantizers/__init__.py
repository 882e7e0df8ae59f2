"""Quantizers: lookup-free quantization (LFQ) with an exact factorized entropy penalty,
codebook-usage metrics, and token factorization into sub-tokens."""
from .entropy import (
    MAX_EXACT_BITS,
    ReduceHook,
    exact_codebook_entropy,
    grouped_codebook_entropy,
    per_sample_entropy,
)
from .factorize import join_indices, split_bits, split_indices
from .lfq import LFQ, LFQConfig, LFQOutput, codes_to_indices, indices_to_codes
from .usage import CodeUsage, code_usage, code_usage_from_codes

__all__ = [
    "LFQ",
    "LFQConfig",
    "LFQOutput",
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
