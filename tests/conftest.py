"""Suite-wide settings: one intra-op thread.

The test models are tiny; on a 2-core machine a single thread is faster than two (and leaves
the other core to the 2-process torchrun test and to whatever else runs).
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def conditioned_tokenizer():
    """Build a tokenizer (default: the ``tiny`` preset) with seed 0 and random non-zero adaptive norms, so the
    decoder's conditioning path is exercised (a fresh model's conditioning starts at zero)."""
    from magvit2 import TokenizerConfig, VideoTokenizer

    def build(config: TokenizerConfig | None = None) -> VideoTokenizer:
        torch.manual_seed(0)
        model = VideoTokenizer(config or TokenizerConfig.preset("tiny")).eval()
        with torch.no_grad():
            for m in model.modules():
                if hasattr(m, "to_scale_bias"):
                    m.to_scale_bias.weight.normal_(0, 0.1)
        return model

    return build
