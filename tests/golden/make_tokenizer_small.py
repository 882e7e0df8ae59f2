"""Regenerate ``tokenizer_small.json``: the shipped ``tokenizer-small``'s tokens and decoded
outputs on a small deterministic slice. Run only when the shipped weights change on purpose:

    python tests/golden/make_tokenizer_small.py
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "tokenizer_small.json"


def slice_video(t: int = 9, h: int = 36, w: int = 40) -> np.ndarray:
    """A smooth moving pattern ``uint8 [t, h, w, 3]`` (no randomness: the same on every machine)."""
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    r = 127.5 + 100 * np.sin(0.31 * xx + 0.4 * tt)
    g = 127.5 + 100 * np.cos(0.23 * yy - 0.3 * tt)
    b = 127.5 + 80 * np.sin(0.17 * (xx + yy) + 0.2 * tt)
    return np.stack([r, g, b], axis=-1).round().clip(0, 255).astype(np.uint8)


def weights_digest(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def compute(model_dir: Path) -> dict:
    """Tokens of every causal group, float decode of the first group, and the codec's decoded frames."""
    from magvit2.codec.compress import compress, decompress
    from magvit2.tokenizer import VideoTokenizer
    from magvit2.tokenizer.groups import tokenize_groups

    tok = VideoTokenizer.from_pretrained(model_dir)
    frames = slice_video()
    video = torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None] / 127.5 - 1  # [1, c, t, h, w]
    groups = tokenize_groups(tok, video)
    with torch.no_grad():
        rec = tok.decode(groups[0])  # [1, 3, t, h, w] float
    decoded = decompress(compress(frames, tok), tok).frames
    return {
        "weights_sha256": weights_digest(model_dir),
        "tokens": [g[0].tolist() for g in groups],
        "decode_first_group_sha256": hashlib.sha256(rec.float().contiguous().numpy().tobytes()).hexdigest(),
        "decode_first_group_slice": [round(float(v), 7) for v in rec[0, :, 0, :2, :2].flatten()],
        "decode_first_group_mean": float(rec.double().mean()),
        "codec_frames_sha256": hashlib.sha256(decoded.tobytes()).hexdigest(),
        "codec_frames_sum": int(decoded.astype(np.int64).sum()),
        "codec_frames_shape": list(decoded.shape),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    from magvit2.pretrained import default_model_dir

    GOLDEN.write_text(json.dumps(compute(default_model_dir("tokenizer"))) + "\n")
    print(f"wrote {GOLDEN.name}")
