"""Typed tokenizer config and its presets (beside the model; :mod:`magvit2.config` holds only the mechanism).

Presets (``TokenizerConfig.preset(name)``):

- ``tiny``: what the tests use; 17x32x32 -> 5x8x8 tokens, 2^8 vocabulary.
- ``small``: a CPU-trainable video+image tokenizer: 4x spatial, 4x temporal, 2^12. The shipped default
  was trained in this layout, then grown to 2^16 (``bits=16``, :mod:`magvit2.tokenizer.grow`).
- ``digits``: the moving-digits tokenizer: 9x32x32 -> 3x8x8 tokens, 2^10.
- ``image-128``: the paper's 128x128 image tokenizer: base 128 channels,
  multipliers (1, 2, 2, 4), 18 bits, 2D kernels (temporal kernel 1).
- ``image-256``: 256x256 images, one more spatial stage -> 16x16 tokens.
- ``video-17x128``: the paper's UCF-101 / K600 tokenizer: 17x128x128 -> 5x16x16, 2^18.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from magvit2.config.base import Config, ConfigError
from magvit2.quantizers import QuantizerConfig, quantizer_class, token_bits
from magvit2.errors import UserError

__all__ = ["QuantizerConfig", "TokenizerConfig", "ADAPTIVE_NORMS", "NORM_SCOPES", "FIRST_FRAME_PHASES"]

#: values of ``TokenizerConfig.adaptive_norm``
ADAPTIVE_NORMS = ("per-block-conv", "global-stats-linear")
#: values of ``TokenizerConfig.norm_scope``
NORM_SCOPES = ("frame", "clip")
#: values of ``TokenizerConfig.first_frame_phase``
FIRST_FRAME_PHASES = ("last", "first")


@dataclass
class TokenizerConfig(Config):
    """Causal 3D CNN tokenizer with LFQ.

    The encoder has ``len(channel_multipliers)`` stages; every stage but the
    last ends in a 2x spatial downsampling, so the spatial factor is
    ``2 ** (len(channel_multipliers) - 1)``. ``temporal_downsample[i]`` says
    whether that downsampling also halves time (causally: ``t -> (t-1)//2 + 1``).
    """

    in_channels: int = 3
    base_channels: int = 128
    channel_multipliers: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 4  #: residual blocks per stage (and at the bottleneck)
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    temporal_kernel: int = 3  #: 1 gives a pure image model (2D kernels)
    num_groups: int = 32  #: GroupNorm groups
    #: latent channels d; for LFQ also the bits per token (vocabulary 2^bits). Other quantizers
    #: define their own vocabulary (``codebook_size``, ``token_bits``).
    bits: int = 18
    #: frames per causal group when a long video is tokenized group by group (reconstruct, codec,
    #: evaluation). Use the clip length the model was trained on: causal padding makes a model trained
    #: on short clips unreliable on later frames of longer ones.
    group_frames: int = 17
    # Architecture variants. The defaults are this project's own design; Open-MAGVIT2's released
    # tokenizers set the other values (see magvit2.tokenizer.convert), so one model class hosts both.
    #: decoder conditioning on the quantized latent: "per-block-conv" puts an AdaptiveGroupNorm (1x1 conv
    #: of the latent, per position) in every decoder norm; "global-stats-linear" keeps the decoder's
    #: blocks and output norm plain and puts one StatsAdaptiveGroupNorm (Linear maps of each latent
    #: frame's per-channel mean and std) before every decoder stage, as Open-MAGVIT2 does.
    adaptive_norm: str = "per-block-conv"
    latent_norm: bool = True  #: standardise each latent frame (one-group GroupNorm) before LFQ
    resblock_bias: bool = True  #: bias in the residual blocks' convolutions (and 1x1 skips)
    encoder_in_bias: bool = True  #: bias in the encoder's input convolution
    #: what GroupNorm statistics (and "global-stats-linear" latent statistics) are taken over: "frame"
    #: (each frame alone: causal, an image is the first frame of a video) or "clip" (the whole clip, as
    #: Open-MAGVIT2's video tokenizer does: NOT causal, so use clips of ``group_frames`` frames, no streaming)
    norm_scope: str = "frame"
    #: which temporal phase of the first latent frame a depth-to-space time upsampler keeps: "last"
    #: (ours) or "first" (Open-MAGVIT2's video tokenizer); later latent frames keep every phase
    first_frame_phase: str = "last"
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    #: fields added since the first shipped models, at their old-behaviour values (see Config.identity)
    added_fields: ClassVar[dict[str, Any]] = {
        "adaptive_norm": "per-block-conv", "latent_norm": True, "resblock_bias": True, "encoder_in_bias": True,
        "norm_scope": "frame", "first_frame_phase": "last",
    }

    def __post_init__(self) -> None:
        n_down = len(self.channel_multipliers) - 1
        if len(self.temporal_downsample) != n_down:
            raise ValueError(
                f"temporal_downsample needs {n_down} entries (one per downsampling), got {len(self.temporal_downsample)}"
            )
        if self.temporal_kernel < 1 or (any(self.temporal_downsample) and self.temporal_kernel < 2):
            raise ConfigError("temporal_kernel must be >= 1, and >= 2 when time is downsampled")
        if not 1 <= self.bits <= 62:
            raise ConfigError(f"bits must be in [1, 62], got {self.bits}")
        if self.group_frames < 1 or (self.group_frames - 1) % self.temporal_factor:
            raise ConfigError(f"group_frames must be 1 + {self.temporal_factor}k, got {self.group_frames}")
        self.codebook_size  # the quantizer's own check of its settings against the latent channels
        if self.adaptive_norm not in ADAPTIVE_NORMS:
            raise ConfigError(f"adaptive_norm must be one of {ADAPTIVE_NORMS}, got {self.adaptive_norm!r}")
        if self.norm_scope not in NORM_SCOPES:
            raise ConfigError(f"norm_scope must be one of {NORM_SCOPES}, got {self.norm_scope!r}")
        if self.norm_scope == "clip" and self.adaptive_norm != "global-stats-linear":
            raise ConfigError('norm_scope "clip" needs adaptive_norm "global-stats-linear"')
        if self.first_frame_phase not in FIRST_FRAME_PHASES:
            raise ConfigError(f"first_frame_phase must be one of {FIRST_FRAME_PHASES}, got {self.first_frame_phase!r}")

    @property
    def causal(self) -> bool:
        """Whether no frame's tokens or reconstruction depend on later frames (streaming needs it)."""
        return self.norm_scope == "frame"

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(x) for x in self.temporal_downsample)

    @property
    def codebook_size(self) -> int:
        """Number of distinct tokens of the configured quantizer (``2**bits`` for LFQ)."""
        return quantizer_class(self.quantizer.kind).codebook_size_of(self.quantizer, self.bits)

    @property
    def token_bits(self) -> int:
        """Bits that hold one token index (what the codec and the language models work in; ``bits`` for LFQ)."""
        return token_bits(self.codebook_size)

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """Token grid ``(t', h', w')`` for a ``t x h x w`` input (after the frame check)."""
        self.check_frames(t)
        f = self.spatial_factor
        if h % f or w % f:
            raise UserError(f"height and width must be multiples of {f}, got {h}x{w}")
        return (1 + (t - 1) // self.temporal_factor, h // f, w // f)

    def check_frames(self, t: int) -> None:
        k = self.temporal_factor
        if t < 1 or (t - 1) % k:
            raise UserError(f"frame count must be 1 (an image) or 1 + {k}k (e.g. {1 + k}, {1 + 2 * k}, {1 + 4 * k}), got {t}")


@TokenizerConfig.register_preset("tiny")
def _tiny() -> TokenizerConfig:
    return TokenizerConfig(base_channels=16, channel_multipliers=(1, 2, 2), num_res_blocks=1,
                           temporal_downsample=(True, True), num_groups=8, bits=8)


@TokenizerConfig.register_preset("small")
def _small() -> TokenizerConfig:
    return TokenizerConfig(base_channels=16, channel_multipliers=(1, 2, 4), num_res_blocks=1,
                           temporal_downsample=(True, True), num_groups=8, bits=12, group_frames=17)


@TokenizerConfig.register_preset("digits")
def _digits() -> TokenizerConfig:
    # gamma 0.1: a weak codebook-entropy pull. Most of a digits frame is black; with gamma 1 the
    # penalty spreads that background over hundreds of codes, which a token model then has to learn.
    return TokenizerConfig(base_channels=16, channel_multipliers=(1, 2, 4), num_res_blocks=1,
                           temporal_downsample=(True, True), num_groups=8, bits=10, group_frames=9,
                           quantizer=QuantizerConfig(gamma=0.1))


@TokenizerConfig.register_preset("image-128")
def _image_128() -> TokenizerConfig:
    return TokenizerConfig(base_channels=128, channel_multipliers=(1, 2, 2, 4), num_res_blocks=4,
                           temporal_downsample=(False, False, False), temporal_kernel=1, bits=18)


@TokenizerConfig.register_preset("image-256")
def _image_256() -> TokenizerConfig:
    return TokenizerConfig(base_channels=128, channel_multipliers=(1, 1, 2, 2, 4), num_res_blocks=4,
                           temporal_downsample=(False, False, False, False), temporal_kernel=1, bits=18)


@TokenizerConfig.register_preset("video-17x128")
def _video_17x128() -> TokenizerConfig:
    return TokenizerConfig(base_channels=128, channel_multipliers=(1, 2, 2, 4), num_res_blocks=4,
                           temporal_downsample=(False, True, True), temporal_kernel=3, bits=18)
