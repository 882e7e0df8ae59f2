"""Causal 3D CNN decoder: quantized latent ``[b, d, t', h', w']`` -> video ``[b, c, t, h, w]``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.config.tokenizer import TokenizerConfig
from magvit2.layers import AdaptiveGroupNorm, CausalConv3d, DepthToSpaceUpsample, ResBlock
from magvit2.layers.resblock import _groups

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Mirror of the encoder with depth-to-space upsampling and adaptive GroupNorm.

    Every norm is an :class:`AdaptiveGroupNorm` whose scale and bias are computed
    from the quantized latent at that resolution (per frame, causally). Time is
    upsampled by depth-to-space with the leading frame dropped: 5 -> 9 -> 17.

    Shapes: ``[b, d, t', h', w'] -> [b, c, t, h, w]``.
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        kt, g, d = cfg.temporal_kernel, cfg.num_groups, cfg.bits
        chans = [cfg.base_channels * m for m in cfg.channel_multipliers]
        c = chans[-1]
        self.conv_in = CausalConv3d(d, c, (kt, 3, 3))
        self.mid = nn.ModuleList([ResBlock(c, c, kt, g, cond_channels=d) for _ in range(cfg.num_res_blocks)])
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(len(chans))):
            stage = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.append(ResBlock(c, chans[i], kt, g, cond_channels=d))
                c = chans[i]
            self.blocks.append(stage)
            if i > 0:
                self.ups.append(DepthToSpaceUpsample(c, c, time=cfg.temporal_downsample[i - 1], temporal_kernel=kt))
        self.norm_out = AdaptiveGroupNorm(_groups(g, c), c, d)
        self.conv_out = CausalConv3d(c, cfg.in_channels, (kt, 3, 3))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(q)
        for block in self.mid:
            x = block(x, q)
        for i, stage in enumerate(self.blocks):
            for block in stage:
                x = block(x, q)
            if i < len(self.ups):
                x = self.ups[i](x)
        return self.conv_out(F.silu(self.norm_out(x, q)))
