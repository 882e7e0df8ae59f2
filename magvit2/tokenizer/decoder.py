"""Causal 3D CNN decoder: quantized latent ``[b, d, t', h', w']`` -> video ``[b, c, t, h, w]``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from magvit2.tokenizer.config import TokenizerConfig
from magvit2.errors import UserError
from magvit2.layers import (AdaptiveGroupNorm, CausalConv3d, DepthToSpaceUpsample, FrameGroupNorm, ResBlock,
                            StatsAdaptiveGroupNorm)
from magvit2.layers.conv import StreamState
from magvit2.layers.resample import upsampled_time_index
from magvit2.layers.resblock import _groups

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Mirror of the encoder with depth-to-space upsampling and adaptive GroupNorm.

    Every norm is an :class:`AdaptiveGroupNorm` whose scale and bias are computed
    from the quantized latent at that resolution (per frame, causally). With
    ``cfg.adaptive_norm == "global-stats-linear"`` the blocks and the output norm
    are plain and one :class:`StatsAdaptiveGroupNorm` precedes every stage
    (Open-MAGVIT2's decoder). Time is upsampled by depth-to-space with the
    leading frame dropped: 5 -> 9 -> 17.

    Shapes: ``[b, d, t', h', w'] -> [b, c, t, h, w]``.

    Streaming: ``forward(chunk, state)`` with one :class:`StreamState` per stream takes
    latent chunks of >= 1 frame; the first gives ``1 + r (t' - 1)`` frames, every later
    one ``r t'`` (r = ``cfg.temporal_factor``), and their concatenation equals the
    decoding of the whole latent.
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        kt, g, d, bias = cfg.temporal_kernel, cfg.num_groups, cfg.bits, cfg.resblock_bias
        per_block, per_frame = cfg.adaptive_norm == "per-block-conv", cfg.norm_scope == "frame"
        cond = d if per_block else None
        chans = [cfg.base_channels * m for m in cfg.channel_multipliers]
        c = chans[-1]
        self.conv_in = CausalConv3d(d, c, (kt, 3, 3))
        self.mid = nn.ModuleList([ResBlock(c, c, kt, g, cond_channels=cond, bias=bias, per_frame_norm=per_frame)
                                  for _ in range(cfg.num_res_blocks)])
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        #: "global-stats-linear": one latent-statistics norm before every stage (empty otherwise)
        self.stage_norms = nn.ModuleList()
        for i in reversed(range(len(chans))):
            if not per_block:
                self.stage_norms.append(StatsAdaptiveGroupNorm(_groups(g, c), c, d, per_frame=per_frame))
            stage = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.append(ResBlock(c, chans[i], kt, g, cond_channels=cond, bias=bias, per_frame_norm=per_frame))
                c = chans[i]
            self.blocks.append(stage)
            if i > 0:
                self.ups.append(DepthToSpaceUpsample(c, c, time=cfg.temporal_downsample[i - 1], temporal_kernel=kt,
                                                     keep_first_phase=cfg.first_frame_phase == "first"))
        self.norm_out: nn.Module = (AdaptiveGroupNorm(_groups(g, c), c, d) if per_block
                                    else FrameGroupNorm(_groups(g, c), c, eps=1e-6, per_frame=per_frame))
        self.conv_out = CausalConv3d(c, cfg.in_channels, (kt, 3, 3))
        self.clip_norms = not per_frame

    def forward(self, q: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if state is not None and self.clip_norms:
            raise UserError('a tokenizer with norm_scope "clip" normalises over whole clips and cannot run on a stream')
        if q.shape[2] == 0:
            raise ValueError("the decoder needs at least one latent frame per chunk")
        first = state is None or state.advance(self, q.shape[2]) == 0
        x = self.conv_in(q, state)
        cond, r = q, 1  # cond: the latent frame behind each frame of x, so norms never guess chunk boundaries
        for block in self.mid:
            x = block(x, cond, state)
        for i, stage in enumerate(self.blocks):
            if len(self.stage_norms):
                x = self.stage_norms[i](x, q if self.clip_norms else cond)  # clip statistics: of the latent itself
            for block in stage:
                x = block(x, cond, state)
            if i < len(self.ups):
                x = self.ups[i](x, state)
                if self.ups[i].rt > 1:
                    r *= self.ups[i].rt
                    cond = q.index_select(2, upsampled_time_index(q.shape[2], r, first, device=q.device))
        x = self.norm_out(x, cond) if isinstance(self.norm_out, AdaptiveGroupNorm) else self.norm_out(x)
        return self.conv_out(F.silu(x), state)
