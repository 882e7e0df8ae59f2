"""Building blocks, each written once."""
from magvit2.layers.conv import CausalConv3d
from magvit2.layers.norm import AdaptiveGroupNorm, FrameGroupNorm, StatsAdaptiveGroupNorm, causal_time_index
from magvit2.layers.resample import DepthToSpaceUpsample, Downsample
from magvit2.layers.resblock import ResBlock

__all__ = ["CausalConv3d", "FrameGroupNorm", "AdaptiveGroupNorm", "StatsAdaptiveGroupNorm", "causal_time_index",
           "Downsample", "DepthToSpaceUpsample", "ResBlock"]
