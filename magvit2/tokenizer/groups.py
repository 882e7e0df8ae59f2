"""Cutting long videos into causal groups the tokenizer accepts, and back.

A video of any length ``T`` is cut into groups of ``group_frames`` frames
(``1 + k * temporal_factor``, e.g. 17); the last group is shorter and is padded
by repeating its last frame up to the next valid length, then trimmed after
decoding. Height and width are padded by edge replication to multiples of the
spatial factor and cropped back. Each group is tokenized independently, so a
group's first frame is coded on its own like an image.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["Group", "plan_groups", "valid_length", "pad_video", "reconstruct_video", "tokenize_groups"]


class Group(NamedTuple):
    start: int  #: first frame index in the video
    length: int  #: real frames in the group
    padded: int  #: frames fed to the tokenizer (valid length >= length)


def valid_length(n: int, factor: int) -> int:
    """Smallest tokenizer length ``1 + factor * k >= n``."""
    return 1 + factor * -(-(n - 1) // factor)


def plan_groups(num_frames: int, group_frames: int, temporal_factor: int) -> list[Group]:
    """Groups covering ``num_frames`` frames; every padded length is 1 + k * factor."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if group_frames < 1 or (group_frames - 1) % temporal_factor:
        raise ValueError(f"group_frames must be 1 + {temporal_factor}k, got {group_frames}")
    groups, start = [], 0
    while start < num_frames:
        n = min(group_frames, num_frames - start)
        groups.append(Group(start, n, valid_length(n, temporal_factor)))
        start += n
    return groups


def pad_video(video: torch.Tensor, frames: int, multiple: int) -> torch.Tensor:
    """``[b, c, t, h, w]`` -> ``[b, c, frames, H, W]`` with H, W multiples of ``multiple`` (edge replication)."""
    b, c, t, h, w = video.shape
    if frames > t:
        video = torch.cat([video, video[:, :, -1:].expand(b, c, frames - t, h, w)], dim=2)
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        video = F.pad(video, (0, pw, 0, ph, 0, 0), mode="replicate")
    return video


@torch.no_grad()
def tokenize_groups(tokenizer, video: torch.Tensor, group_frames: int | None = None) -> list[torch.Tensor]:
    """Token grids ``[b, t', h', w']``, one per group of ``video`` ``[b, c, t, h, w]``
    (``group_frames`` defaults to the tokenizer's ``config.group_frames``)."""
    cfg = tokenizer.config
    group_frames = group_frames or cfg.group_frames
    out = []
    for g in plan_groups(video.shape[2], group_frames, cfg.temporal_factor):
        clip = pad_video(video[:, :, g.start : g.start + g.length], g.padded, cfg.spatial_factor)
        out.append(tokenizer.encode(clip))
    return out


@torch.no_grad()
def reconstruct_video(tokenizer, video: torch.Tensor, group_frames: int | None = None) -> torch.Tensor:
    """Encode and decode a video of any length and size, group by group: ``[b, c, t, h, w]`` -> same shape."""
    group_frames = group_frames or tokenizer.config.group_frames
    h, w = video.shape[-2:]
    parts = []
    groups = plan_groups(video.shape[2], group_frames, tokenizer.config.temporal_factor)
    for g, tokens in zip(groups, tokenize_groups(tokenizer, video, group_frames)):
        parts.append(tokenizer.decode(tokens)[:, :, : g.length, :h, :w])
    return torch.cat(parts, dim=2).clamp(-1, 1)
