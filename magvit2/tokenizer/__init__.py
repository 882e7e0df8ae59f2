"""The MAGVIT-2 video tokenizer."""
from magvit2.tokenizer.config import QuantizerConfig, TokenizerConfig
from magvit2.tokenizer.model import CheckpointError, TokenizerOutput, VideoTokenizer

__all__ = ["VideoTokenizer", "TokenizerConfig", "QuantizerConfig", "TokenizerOutput", "CheckpointError"]
