"""Copy a saved tokenizer with another trained clip length (``group_frames``), to start a longer-clip run from it.

Usage: ``python recipes/retarget_frames.py SRC_DIR DST_DIR FRAMES``. The weights are unchanged: a causal
tokenizer has the same parameters for any clip length; only the length it is meant to code in changes.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from magvit2.tokenizer import VideoTokenizer  # noqa: E402


def main() -> None:
    src, dst, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tok = VideoTokenizer.from_pretrained(src)
    out = VideoTokenizer(dataclasses.replace(tok.config, group_frames=frames))
    out.load_state_dict(tok.state_dict())
    print(out.save_pretrained(dst))


if __name__ == "__main__":
    main()
