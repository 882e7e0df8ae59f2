"""Initialise a video tokenizer from an image tokenizer by inflation.

Each 2D kernel (an image model has temporal kernel 1) goes into the *last*
temporal tap of the causal 3D kernel and the other taps are zero. With the
causal zero padding this makes every inflated convolution compute, per frame,
exactly what the image convolution computes, so on a static video the
inflated model reproduces the image model frame by frame. Depth-to-space time
upsamplers get the image weights copied into each temporal phase.
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat

from magvit2.tokenizer.config import TokenizerConfig
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.errors import UserError

__all__ = ["inflate_state_dict", "inflate_tokenizer"]


def _compatible(image: TokenizerConfig, video: TokenizerConfig) -> None:
    keys = ("in_channels", "base_channels", "channel_multipliers", "num_res_blocks", "num_groups", "bits",
            "adaptive_norm", "latent_norm", "resblock_bias", "encoder_in_bias")
    diff = [k for k in keys if getattr(image, k) != getattr(video, k)]
    if diff:
        raise UserError(f"image and video tokenizer configs differ in {diff}; inflation needs the same layout")
    if image.temporal_kernel != 1 or any(image.temporal_downsample):
        raise UserError("the source must be an image tokenizer (temporal_kernel 1, no temporal downsampling)")


@torch.no_grad()
def inflate_state_dict(image_state: dict[str, torch.Tensor], video: VideoTokenizer) -> dict[str, torch.Tensor]:
    """Map an image tokenizer's state dict onto ``video``'s parameter shapes."""
    target = video.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing = sorted(set(target) - set(image_state))
    if missing:
        raise ValueError(f"image state dict lacks {len(missing)} entries the video model needs, e.g. {missing[:3]}")
    for name, dst in target.items():
        src = image_state[name]
        if src.shape == dst.shape:
            out[name] = src.clone()
            continue
        if src.ndim == 5 and dst.ndim == 5 and src.shape[2] == 1 and src.shape[1] == dst.shape[1]:
            rt = dst.shape[0] // src.shape[0]
            if rt * src.shape[0] != dst.shape[0]:
                raise ValueError(f"cannot inflate {name}: image shape {tuple(src.shape)} vs video shape {tuple(dst.shape)}")
            w = torch.zeros_like(dst)
            if rt > 1:  # depth-to-space time upsampler: channels are (c pt ph pw)
                src = rearrange(src, "(c ph pw) i kt kh kw -> c ph pw i kt kh kw", ph=2, pw=2)
                src = repeat(src, "c ph pw i kt kh kw -> (c pt ph pw) i kt kh kw", pt=rt)
            w[:, :, -1:] = src
            out[name] = w
            continue
        if src.ndim == 1 and dst.ndim == 1 and dst.shape[0] % src.shape[0] == 0:  # upsampler bias
            rt = dst.shape[0] // src.shape[0]
            out[name] = repeat(rearrange(src, "(c ph pw) -> c ph pw", ph=2, pw=2),
                               "c ph pw -> (c pt ph pw)", pt=rt).clone()
            continue
        raise ValueError(f"cannot inflate {name}: image shape {tuple(src.shape)} vs video shape {tuple(dst.shape)}")
    return out


def inflate_tokenizer(image_model: VideoTokenizer, video_config: TokenizerConfig) -> VideoTokenizer:
    """A new video tokenizer initialised from ``image_model``."""
    _compatible(image_model.config, video_config)
    video = VideoTokenizer(video_config)
    video.load_state_dict(inflate_state_dict(image_model.state_dict(), video))
    return video
