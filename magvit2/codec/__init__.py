"""Token video codec: tokenizer tokens, entropy-coded under a prior, in a checked container.

``compress(frames, tokenizer) -> bytes`` and ``decompress(bytes, tokenizer) -> DecodedVideo``;
see :mod:`magvit2.codec.compress` for the group/padding rules, :mod:`magvit2.codec.container`
for the file layout and :mod:`magvit2.codec.priors` for the prior registry (uniform, static, LM, context).
"""
from magvit2.codec.compress import (
    CodecConfig,
    CompressStats,
    DecodedVideo,
    EncodedVideo,
    FILE_EXTENSION,
    Geometry,
    VideoCodec,
    compress,
    compress_file,
    decompress,
    decompress_file,
    decompress_to_file,
    read_header,
    resolve_prior,
    tokenizer_geometry,
)
from magvit2.codec.context import CONTEXT_PRIOR_FILENAME, ContextPrior, fit_context_prior
from magvit2.codec.container import CodecError, DecodeLimits, Header, fingerprint
from magvit2.codec.io import write_frames
from magvit2.codec.priors import (
    PRIORS,
    STATIC_PRIOR_FILENAME,
    LMPrior,
    PriorSource,
    StaticPrior,
    TokenPrior,
    UniformPrior,
    default_split,
    fit_static_prior,
    load_prior,
    prior_for_header,
    prior_kinds,
    register_prior,
)

__all__ = [
    "FILE_EXTENSION", "CodecConfig", "CompressStats", "DecodedVideo", "EncodedVideo", "Geometry", "VideoCodec",
    "compress", "compress_file", "decompress", "decompress_file", "decompress_to_file", "read_header", "resolve_prior",
    "tokenizer_geometry", "CodecError", "DecodeLimits", "Header", "fingerprint", "write_frames",
    "STATIC_PRIOR_FILENAME", "LMPrior", "StaticPrior", "TokenPrior", "UniformPrior", "default_split",
    "fit_static_prior", "CONTEXT_PRIOR_FILENAME", "ContextPrior", "fit_context_prior", "PRIORS", "PriorSource", "load_prior", "prior_for_header", "prior_kinds", "register_prior",
]
