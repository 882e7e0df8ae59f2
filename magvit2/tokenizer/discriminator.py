"""StyleGAN discriminator with blur pooling, 2D for images and 3D for videos.

MAGVIT-2 (Appendix, tokenizer training) trains its tokenizer against a StyleGAN
discriminator (Karras et al. 2020) whose 2D convolutions are replaced by 3D
ones for video, with blur-pooling downsampling. The network:

- stem: conv 3x3(x3) ``in_channels -> base_channels``, leaky ReLU 0.2;
- one residual block per entry of ``channel_multipliers``, each halving h and w
  (and t where ``temporal_downsample`` says so) with :class:`~magvit2.layers.blur.BlurPool`::

      main: conv 3x3 (c_in -> c_in) -> lrelu -> blur-down -> conv 3x3 (c_in -> c_out) -> lrelu
      skip: blur-down -> conv 1x1 (c_in -> c_out, no bias)
      out = (main + skip) / sqrt(2)

  Downsampling sits between the two convolutions (as in MAGVIT's 3D StyleGAN
  discriminator) so the second conv runs at the lower resolution; StyleGAN2's
  "blur then 3x3 conv at stride 2" has the same cost and differs only in tap
  alignment;
- head: optional minibatch standard deviation channel, conv 3x3(x3), leaky ReLU,
  adaptive average pooling to ``head_frames x head_size x head_size``,
  flatten, linear, leaky ReLU, linear -> one logit per sample.

At the preset resolution the final feature map already has the head size
(128 / 2^5 = 4; 17 frames -> 9 -> 5 -> 3 -> 2 -> 1), so the pooling is the
identity and the head is StyleGAN's flatten + dense; at other sizes the pooling
lets the same weights score any input whose h and w are divisible by
``2 ** len(channel_multipliers)``. No normalisation layers are used, so each
sample's logit depends only on that sample (minibatch-stddev aside) and the R1
penalty is well defined.

Presets (``DiscriminatorConfig.preset(name)``):

- ``tiny`` / ``tiny-image``: 3D / 2D, base 8 channels, multipliers (1, 2); for tests.
- ``image-128``: 2D, base 64 channels, multipliers (2, 4, 4, 4, 4) (StyleGAN's
  widths at 128x128: 128, 256, 256, 256, 256 channels down to 4x4).
- ``video-17x128``: the same widths with 3D convs, halving time in every
  stage: 17x128x128 -> 1x4x4. MAGVIT's large models use base 128 channels;
  64 halves the memory and is the default here.

Shape letters: b batch, c channels, t frames, h height, w width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import nn

from magvit2.config.base import Config, ConfigError
from magvit2.layers.blur import BlurPool

__all__ = ["DiscriminatorConfig", "StyleGANDiscriminator", "minibatch_stddev"]

_SLOPE = 0.2  # StyleGAN's leaky ReLU slope


@dataclass
class DiscriminatorConfig(Config):
    """StyleGAN discriminator settings (see the module docstring for the layout)."""

    in_channels: int = 3
    base_channels: int = 64  #: stem width; block i has base_channels * channel_multipliers[i] channels
    channel_multipliers: tuple[int, ...] = (2, 4, 4, 4, 4)
    dims: int = 3  #: 3 for video (3D convs), 2 for images
    #: per block: also halve time (3D only); empty = never. Length must match channel_multipliers.
    temporal_downsample: tuple[bool, ...] = (True, True, True, True, True)
    blur: bool = True  #: [1,3,3,1] blur pooling; False uses 2x average pooling
    minibatch_std_group: int = 0  #: StyleGAN minibatch-stddev group size; 0 disables it
    head_size: int = 4  #: spatial size the final map is pooled to before the dense head
    head_frames: int = 1  #: temporal size the final map is pooled to (3D only)

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ConfigError(f"discriminator dims must be 2 (images) or 3 (videos), got {self.dims}")
        if not self.channel_multipliers or any(m < 1 for m in self.channel_multipliers):
            raise ConfigError(f"channel_multipliers must be a non-empty tuple of ints >= 1, got {self.channel_multipliers}")
        if self.in_channels < 1 or self.base_channels < 1:
            raise ConfigError(f"in_channels and base_channels must be >= 1, got {self.in_channels}, {self.base_channels}")
        n = len(self.channel_multipliers)
        if self.temporal_downsample and len(self.temporal_downsample) != n:
            raise ConfigError(
                f"temporal_downsample needs {n} entries (one per block) or none, got {len(self.temporal_downsample)}"
            )
        if self.dims == 2 and any(self.temporal_downsample):
            raise ConfigError("temporal_downsample must be empty or all False for a 2D (image) discriminator")
        if self.minibatch_std_group < 0 or self.head_size < 1 or self.head_frames < 1:
            raise ConfigError("minibatch_std_group must be >= 0 and head_size, head_frames >= 1")

    @property
    def spatial_factor(self) -> int:
        """Total spatial downsampling; input h and w must be divisible by it."""
        return 2 ** len(self.channel_multipliers)

    def check_input_size(self, t: int, h: int, w: int) -> None:
        """Raise ValueError unless a ``t x h x w`` input can be scored."""
        f = self.spatial_factor
        if h % f or w % f:
            raise ValueError(
                f"discriminator needs h and w divisible by {f} ({len(self.channel_multipliers)} "
                f"downsampling blocks), got {h}x{w}"
            )
        if self.dims == 2 and t != 1:
            raise ValueError(f"a 2D (image) discriminator takes t == 1, got t={t}; use dims=3 for videos")

    def feature_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """``(t', h', w')`` of the last block's output for a ``t x h x w`` input (``t' = 1`` in 2D)."""
        self.check_input_size(t, h, w)
        for temporal in self.stage_temporal():
            if temporal:
                t = (t + 1) // 2
        return (t if self.dims == 3 else 1, h // self.spatial_factor, w // self.spatial_factor)

    def stage_temporal(self) -> tuple[bool, ...]:
        """Per-block temporal downsampling flags (all False for 2D or when empty)."""
        if self.dims == 2 or not self.temporal_downsample:
            return (False,) * len(self.channel_multipliers)
        return tuple(bool(v) for v in self.temporal_downsample)


@DiscriminatorConfig.register_preset("tiny")
def _tiny() -> DiscriminatorConfig:
    return DiscriminatorConfig(base_channels=8, channel_multipliers=(1, 2), dims=3, temporal_downsample=(True, True))


@DiscriminatorConfig.register_preset("tiny-image")
def _tiny_image() -> DiscriminatorConfig:
    return DiscriminatorConfig(base_channels=8, channel_multipliers=(1, 2), dims=2, temporal_downsample=())


@DiscriminatorConfig.register_preset("image-128")
def _image_128() -> DiscriminatorConfig:
    return DiscriminatorConfig(base_channels=64, channel_multipliers=(2, 4, 4, 4, 4), dims=2, temporal_downsample=())


@DiscriminatorConfig.register_preset("video-17x128")
def _video_17x128() -> DiscriminatorConfig:
    return DiscriminatorConfig(
        base_channels=64, channel_multipliers=(2, 4, 4, 4, 4), dims=3, temporal_downsample=(True,) * 5
    )


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append StyleGAN's minibatch standard-deviation channel: ``[b, c, *s] -> [b, c + 1, *s]``.

    Samples are split into groups of ``g = min(group, b)`` (sample i is in group
    ``i % (b / g)``); the new channel holds, for every sample of a group, the
    std over the group averaged over channels and positions (Karras et al. 2018, Sec. 3).
    """
    b = x.shape[0]
    g = min(group, b)
    if b % g:
        raise ValueError(f"minibatch_stddev: batch size {b} must be divisible by the group size {g}")
    flat = rearrange(x, "(g n) c ... -> g n (c ...)", g=g).float()
    std = (flat.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [n, c * positions]
    stat = reduce(std, "n d -> n", "mean")
    stat = repeat(stat, "n -> (g n) 1", g=g).to(x.dtype)
    stat = stat.reshape(b, 1, *([1] * (x.ndim - 2))).expand(b, 1, *x.shape[2:])
    return torch.cat([x, stat], dim=1)


def _conv(dims: int, c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return conv(c_in, c_out, kernel, padding=kernel // 2, bias=bias)


class _DownBlock(nn.Module):
    """StyleGAN2 residual block with blur-pool downsampling (see module docstring)."""

    def __init__(self, dims: int, c_in: int, c_out: int, temporal: bool, taps: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = _conv(dims, c_in, c_in, 3)
        self.down = BlurPool(dims, temporal=temporal, taps=taps)
        self.conv2 = _conv(dims, c_in, c_out, 3)
        self.skip = _conv(dims, c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), _SLOPE)
        h = F.leaky_relu(self.conv2(self.down(h)), _SLOPE)
        s = self.skip(self.down(x))
        return (h + s) / math.sqrt(2.0)


class StyleGANDiscriminator(nn.Module):
    """StyleGAN discriminator scoring videos (``dims == 3``) or images (``dims == 2``).

    Construct from a config; ``self.cfg`` is kept so checkpoints can store ``cfg.to_dict()``.
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dims
        taps = (1, 3, 3, 1) if cfg.blur else (1, 1)
        self.stem = _conv(d, cfg.in_channels, cfg.base_channels, 3)
        blocks = []
        c = cfg.base_channels
        for mult, temporal in zip(cfg.channel_multipliers, cfg.stage_temporal()):
            c_out = cfg.base_channels * mult
            blocks.append(_DownBlock(d, c, c_out, temporal, taps))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = _conv(d, c + (1 if cfg.minibatch_std_group else 0), c, 3)
        self.head_shape = (cfg.head_size,) * 2 if d == 2 else (cfg.head_frames, cfg.head_size, cfg.head_size)
        self.fc = nn.Linear(c * math.prod(self.head_shape), c)
        self.out = nn.Linear(c, 1)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Variance-preserving (He) init, zero biases.

        Layers followed by a leaky ReLU get gain ``sqrt(2 / (1 + 0.2^2))``; the
        skip 1x1 convs and the output layer get gain 1. PyTorch's default init
        shrinks activations by about sqrt(3) per layer, which leaves a 10+ layer
        discriminator with near-zero logits and gradients at the start.
        """
        linear_out = {id(self.out)} | {id(b.skip) for b in self.blocks}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                if id(m) in linear_out:
                    nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
                else:
                    nn.init.kaiming_normal_(m.weight, a=_SLOPE, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def feature_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """``(t', h', w')`` of the last block's output; see :meth:`DiscriminatorConfig.feature_shape`."""
        return self.cfg.feature_shape(t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[b]`` (real > 0) for ``x``.

        Accepted inputs: ``[b, c, t, h, w]`` (a 2D discriminator needs ``t == 1``)
        and ``[b, c, h, w]`` (a 3D discriminator treats it as ``t == 1``).
        """
        if x.ndim == 4:
            x = rearrange(x, "b c h w -> b c 1 h w")
        if x.ndim != 5:
            raise ValueError(f"discriminator expects [b, c, t, h, w] or [b, c, h, w], got shape {tuple(x.shape)}")
        if x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"discriminator expects {self.cfg.in_channels} input channels, got {x.shape[1]}")
        self.cfg.check_input_size(*x.shape[2:])
        if self.cfg.dims == 2:
            x = rearrange(x, "b c 1 h w -> b c h w")
        h = F.leaky_relu(self.stem(x), _SLOPE)
        for block in self.blocks:
            h = block(h)
        if self.cfg.minibatch_std_group:
            h = minibatch_stddev(h, self.cfg.minibatch_std_group)
        h = F.leaky_relu(self.head_conv(h), _SLOPE)
        if tuple(h.shape[2:]) != self.head_shape:
            pool = F.adaptive_avg_pool2d if self.cfg.dims == 2 else F.adaptive_avg_pool3d
            h = pool(h, self.head_shape)
        h = rearrange(h, "b c ... -> b (c ...)")
        h = F.leaky_relu(self.fc(h), _SLOPE)
        return rearrange(self.out(h), "b 1 -> b")
