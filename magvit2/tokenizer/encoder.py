"""Causal 3D CNN encoder: video ``[b, c, t, h, w]`` -> latent ``[b, d, t', h', w']``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.config.tokenizer import TokenizerConfig
from magvit2.layers import CausalConv3d, Downsample, FrameGroupNorm, ResBlock
from magvit2.layers.resblock import _groups

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Stages of residual blocks, each but the last ending in a strided downsampling.

    Spatial 2x per downsampling; time 2x where ``cfg.temporal_downsample`` says
    so (the paper downsamples time in the last stages: 17 -> 9 -> 5). The latent
    goes through a per-frame GroupNorm without affine parameters before LFQ.

    Shapes: ``[b, c, t, h, w] -> [b, d, t', h', w']`` (d = ``cfg.bits``).
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        kt, g = cfg.temporal_kernel, cfg.num_groups
        chans = [cfg.base_channels * m for m in cfg.channel_multipliers]
        self.conv_in = CausalConv3d(cfg.in_channels, chans[0], (kt, 3, 3))
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = chans[0]
        for i, c_out in enumerate(chans):
            stage = []
            for _ in range(cfg.num_res_blocks):
                stage.append(ResBlock(c, c_out, kt, g))
                c = c_out
            self.blocks.append(nn.Sequential(*stage))
            if i < len(chans) - 1:
                self.downs.append(Downsample(c, c, time=cfg.temporal_downsample[i], temporal_kernel=kt))
        self.mid = nn.Sequential(*[ResBlock(c, c, kt, g) for _ in range(cfg.num_res_blocks)])
        self.norm_out = FrameGroupNorm(_groups(g, c), c, eps=1e-6)
        self.conv_out = CausalConv3d(c, cfg.bits, 1)
        # A single group: each frame's latent is standardised as a whole, keeping signs informative.
        self.norm_latent = FrameGroupNorm(1, cfg.bits, eps=1e-6, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i < len(self.downs):
                x = self.downs[i](x)
        x = self.mid(x)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return self.norm_latent(x)
