"""magvit2: MAGVIT-2 tokenizer (causal 3D CNN + lookup-free quantization), token language models and codec."""
__version__ = "0.1.0"
