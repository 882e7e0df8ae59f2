"""The shipped ``tokenizer-small`` gives the same tokens and decoded outputs as when the golden
values were recorded (``tests/golden/make_tokenizer_small.py``): refactors must not change behaviour."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from magvit2.pretrained import default_model_dir

HERE = Path(__file__).resolve().parent / "golden"
#: tokenizer-small v1, which wrote golden/tokenizer_small_uniform_v1.mv2c
V1_WEIGHTS_SHA256 = "80b93572fbb91e94c6d86db0b6106dd0b0ecaa3438d26218dc3c325c69d2c9f5"


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_tokenizer_small", HERE / "make_tokenizer_small.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_tokenizer_small_matches_its_golden_values() -> None:
    mod = _golden_module()
    want = json.loads(mod.GOLDEN.read_text())
    model_dir = default_model_dir("tokenizer")
    if mod.weights_digest(model_dir) != want["weights_sha256"]:
        pytest.fail("the shipped tokenizer-small weights changed; if on purpose, regenerate the golden values "
                    "with `python tests/golden/make_tokenizer_small.py` and say so in the commit")
    got = mod.compute(model_dir)
    assert got["tokens"] == want["tokens"]  # bit-identical tokens, every causal group
    assert got["codec_frames_shape"] == want["codec_frames_shape"]
    assert got["codec_frames_sha256"] == want["codec_frames_sha256"]  # decoded uint8 frames, bit-identical
    assert got["decode_first_group_slice"] == pytest.approx(want["decode_first_group_slice"], abs=1e-5)
    assert got["decode_first_group_mean"] == pytest.approx(want["decode_first_group_mean"], abs=1e-6)


def test_a_file_written_before_the_refactor_still_decodes() -> None:
    """``tokenizer_small_uniform_v1.mv2c`` was compressed by the code before the seams refactor (random
    5x32x32 frames, uniform prior). Config fields added since must not change the tokenizer's fingerprint."""
    import hashlib

    from magvit2.codec import decompress
    from magvit2.tokenizer import VideoTokenizer

    mod = _golden_module()
    model_dir = default_model_dir("tokenizer")
    if mod.weights_digest(model_dir) != V1_WEIGHTS_SHA256:  # the weights that wrote the file
        pytest.skip("the shipped tokenizer-small was retrained: files coded with the old one no longer decode (by design)")
    decoded = decompress((HERE / "tokenizer_small_uniform_v1.mv2c").read_bytes(), VideoTokenizer.from_pretrained(model_dir))
    assert decoded.frames.shape == (5, 32, 32, 3)
    assert hashlib.sha256(decoded.frames.tobytes()).hexdigest() == (
        "16d7024c92fe4d05dc6cdd40dddcdb2280200a24b0357bd197b915d41a9bf4d5")
