"""Causal 3D CNN encoder: video ``[b, c, t, h, w]`` -> latent ``[b, d, t', h', w']``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.tokenizer.config import TokenizerConfig
from magvit2.errors import UserError
from magvit2.layers import CausalConv3d, Downsample, FrameGroupNorm, ResBlock
from magvit2.layers.conv import StreamState
from magvit2.layers.resblock import _groups

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Stages of residual blocks, each but the last ending in a strided downsampling.

    Spatial 2x per downsampling; time 2x where ``cfg.temporal_downsample`` says
    so (the paper downsamples time in the last stages: 17 -> 9 -> 5). The latent
    goes through a per-frame GroupNorm without affine parameters before LFQ
    (unless ``cfg.latent_norm`` is off).

    Shapes: ``[b, c, t, h, w] -> [b, d, t', h', w']`` (d = ``cfg.bits``).

    Streaming: ``forward(chunk, state)`` with one :class:`StreamState` per stream takes
    chunks of any length (>= 0 frames) and returns the latent frames that the chunk
    completes (latent ``j`` is completed by input frame ``j * temporal_factor``); the
    concatenated outputs equal the whole clip's latent.
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        kt, g = cfg.temporal_kernel, cfg.num_groups
        per_frame = cfg.norm_scope == "frame"
        self.clip_norms = not per_frame  # norm_scope "clip": not causal, so no streaming
        chans = [cfg.base_channels * m for m in cfg.channel_multipliers]
        self.conv_in = CausalConv3d(cfg.in_channels, chans[0], (kt, 3, 3), bias=cfg.encoder_in_bias)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = chans[0]
        for i, c_out in enumerate(chans):
            stage = []
            for _ in range(cfg.num_res_blocks):
                stage.append(ResBlock(c, c_out, kt, g, bias=cfg.resblock_bias, per_frame_norm=per_frame))
                c = c_out
            self.blocks.append(nn.ModuleList(stage))
            if i < len(chans) - 1:
                self.downs.append(Downsample(c, c, time=cfg.temporal_downsample[i], temporal_kernel=kt))
        self.mid = nn.ModuleList([ResBlock(c, c, kt, g, bias=cfg.resblock_bias, per_frame_norm=per_frame)
                                  for _ in range(cfg.num_res_blocks)])
        self.norm_out = FrameGroupNorm(_groups(g, c), c, eps=1e-6, per_frame=per_frame)
        self.conv_out = CausalConv3d(c, cfg.bits, 1)
        # A single group: each frame's latent is standardised as a whole, keeping signs informative.
        self.norm_latent: nn.Module = (FrameGroupNorm(1, cfg.bits, eps=1e-6, affine=False) if cfg.latent_norm
                                       else nn.Identity())

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if state is not None and self.clip_norms:
            raise UserError('a tokenizer with norm_scope "clip" normalises over whole clips and cannot run on a stream')
        x = self.conv_in(x, state)
        for i, stage in enumerate(self.blocks):
            for block in stage:
                x = block(x, state=state)
            if i < len(self.downs):
                x = self.downs[i](x, state)
                if x.shape[2] == 0:  # a short chunk that completes no frame here: nothing further to run
                    f = 2 ** (len(self.downs) - 1 - i)
                    return x.new_zeros(x.shape[0], self.conv_out.conv.out_channels, 0, x.shape[3] // f, x.shape[4] // f)
        for block in self.mid:
            x = block(x, state=state)
        x = self.conv_out(F.silu(self.norm_out(x)), state)
        return self.norm_latent(x)
