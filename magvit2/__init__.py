"""magvit2: MAGVIT-2 tokenizer (causal 3D CNN + lookup-free quantization), token language models and codec."""
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.quantizers import FSQ, LFQ, LFQOutput, Quantizer, QuantizerConfig
from magvit2.tokenizer import TokenizerOutput, VideoTokenizer

__version__ = "0.1.0"
__all__ = ["LFQ", "LFQOutput", "FSQ", "Quantizer", "QuantizerConfig", "VideoTokenizer", "TokenizerConfig",
           "TokenizerOutput", "__version__"]
