"""The MAGVIT-2 video tokenizer."""
from magvit2.config.tokenizer import QuantizerConfig, TokenizerConfig
from magvit2.tokenizer.model import CheckpointError, TokenizerOutput, VideoTokenizer

__all__ = ["VideoTokenizer", "TokenizerConfig", "QuantizerConfig", "TokenizerOutput", "CheckpointError"]
