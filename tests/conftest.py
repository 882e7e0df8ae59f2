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
