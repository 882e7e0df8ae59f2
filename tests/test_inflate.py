from __future__ import annotations

import dataclasses

import pytest
import torch

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.tokenizer.inflate import inflate_tokenizer


def _image_cfg() -> TokenizerConfig:
    video = TokenizerConfig.preset("tiny")
    return dataclasses.replace(video, temporal_kernel=1, temporal_downsample=(False, False))


@torch.no_grad()
def test_inflated_model_matches_image_model_on_static_video(conditioned_tokenizer) -> None:
    image_model = conditioned_tokenizer(_image_cfg())
    video_model = inflate_tokenizer(image_model, TokenizerConfig.preset("tiny")).eval()
    img = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    static = img.expand(-1, -1, 17, -1, -1).contiguous()
    ref_tokens = image_model.encode(img)
    ref_rec = image_model.decode(ref_tokens)
    tokens = video_model.encode(static)
    assert tokens.shape == (2, 5, 8, 8)
    assert torch.equal(tokens[:, :1], ref_tokens)
    rec = video_model.decode(tokens)
    assert torch.allclose(rec[:, :, 0], ref_rec[:, :, 0], atol=1e-5)
    # Every frame of a static video reproduces the image model.
    assert torch.equal(tokens, ref_tokens.expand_as(tokens))
    assert torch.allclose(rec, ref_rec.expand_as(rec), atol=1e-5)


def test_inflation_rejects_mismatched_layouts() -> None:
    image_model = VideoTokenizer(_image_cfg())
    with pytest.raises(ValueError, match="differ in"):
        inflate_tokenizer(image_model, dataclasses.replace(TokenizerConfig.preset("tiny"), bits=10))
    with pytest.raises(ValueError, match="must be an image tokenizer"):
        inflate_tokenizer(VideoTokenizer(TokenizerConfig.preset("tiny")), TokenizerConfig.preset("tiny"))
