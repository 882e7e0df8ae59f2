"""Import Open-MAGVIT2's released tokenizers (TencentARC, Apache-2.0), exactly.

>>> tok = from_open_magvit2("imagenet_256_L.ckpt", ema=True)   # a file you downloaded yourself
>>> tok.save_pretrained("open-magvit2-256")                     # then: magvit2 ... --model open-magvit2-256

Their tokenizer is a 2D CNN with lookup-free quantization. It is hosted by
:class:`~magvit2.tokenizer.model.VideoTokenizer` with ``temporal_kernel=1`` and the
variant fields of :class:`~magvit2.tokenizer.config.TokenizerConfig` that describe it
(:func:`open_magvit2_config`):

- ``adaptive_norm="global-stats-linear"``: their decoder's blocks use plain GroupNorm and
  one adaptive GroupNorm per stage maps the quantized latent's per-channel mean and std
  through two Linear layers;
- ``latent_norm=False``: no normalisation between the encoder and LFQ;
- ``resblock_bias=False``, ``encoder_in_bias=False``: their residual-block convolutions
  (and 1x1 skips) and the encoder's input convolution have no bias.

Two further differences need no variant because converting the weights absorbs them:
their 2D kernels ``[o, i, kh, kw]`` become the only (last) temporal tap of our causal 3D
kernels ``[o, i, 1, kh, kw]``, and their depth-to-space reads the upsampler's channels as
``(pt ph pw c)`` where ours reads ``(c pt ph pw)``, so the upsampler's output channels are
permuted once here. Their LFQ and ours agree already: ``index = sum_i 2^i [z_i > 0]``,
channel 0 the least significant bit, 0 quantized to -1.

Their video tokenizer (SEED-Voken's ``improved_video_model``, causal 3D convolutions with
the same module tree) is recognised by its 3D kernels and needs two more variants:
``norm_scope="clip"`` (its GroupNorms and the adaptive norm's latent statistics cover the
whole clip, so it is not causal) and ``first_frame_phase="first"`` (its time upsamplers
keep the first temporal phase of the first latent frame). Time is downsampled where their
channel multiplier is not 1, as in their code.

The key map is explicit and strict: every key the model needs must be present with the
right shape, and every key in the chosen namespace must be used; otherwise a one-line
:class:`CheckpointError` names the first offending key. Discriminator and perceptual-loss
weights (``loss.*``) are not imported. Shape letters: o out channels, i in channels,
kt kh kw kernel size, c channels, pt ph pw depth-to-space phases.
"""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange

from magvit2.tokenizer.config import TokenizerConfig
from magvit2.tokenizer.model import CheckpointError, VideoTokenizer

__all__ = ["LAYOUTS", "open_magvit2_config", "load_checkpoint_state", "from_open_magvit2",
           "convert_state_dict", "KeyMapping", "key_map"]

#: Open-MAGVIT2's encoder layouts by name: 128 (8x down, ImageNet 128) and 256 (16x down; ImageNet 256,
#: the text-to-image "Pretrain" tokenizers).
LAYOUTS: dict[str, tuple[int, ...]] = {"128": (1, 2, 2, 4), "256": (1, 1, 2, 2, 4)}
EMA_PREFIX = "model_ema."
#: top-level names of a Lightning checkpoint's state dict that are not the tokenizer and are skipped
SKIPPED_PREFIXES = ("loss.",)
SKIPPED_EMA = ("model_ema.decay", "model_ema.num_updates", "model_ema.loss")


def open_magvit2_config(channel_multipliers: tuple[int, ...] = LAYOUTS["256"], base_channels: int = 128,
                        num_res_blocks: int = 4, bits: int = 18, video: bool = False) -> TokenizerConfig:
    """The :class:`TokenizerConfig` of an Open-MAGVIT2 tokenizer (released ones: base 128, 4 blocks).

    ``video=True``: their video tokenizer (3x3x3 causal kernels; time halves at every stage whose
    channel multiplier is not 1; whole-clip norms; 17-frame clips).
    """
    mults = tuple(channel_multipliers)
    common = dict(in_channels=3, base_channels=base_channels, channel_multipliers=mults, num_res_blocks=num_res_blocks,
                  num_groups=32, bits=bits, adaptive_norm="global-stats-linear", latent_norm=False,
                  resblock_bias=False, encoder_in_bias=False)
    if video:
        return TokenizerConfig(**common, temporal_kernel=3, temporal_downsample=tuple(m != 1 for m in mults[:-1]),
                               norm_scope="clip", first_frame_phase="first", group_frames=17)
    return TokenizerConfig(**common, temporal_kernel=1, temporal_downsample=(False,) * (len(mults) - 1))


# ----- reading a checkpoint ------------------------------------------------------------------------------
def load_checkpoint_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside an Open-MAGVIT2 ``.ckpt`` (or a saved state dict, or a ``.safetensors`` file).

    ``.ckpt`` files are pickles; they are read with ``torch.load(weights_only=True)``, whose
    unpickler builds only tensors and plain containers and refuses every other Python object,
    so reading a file runs none of its code. A file that needs more is refused with a one-line error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises several types
            raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(e)})") from e
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} holds Python objects that torch.load(weights_only=True) refuses "
                              f"({_first_line(e)}); extract its 'state_dict' where you trust the file") from e
    except Exception as e:  # noqa: BLE001 - truncated or foreign files raise RuntimeError, EOFError, ...
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {_first_line(e)})") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds neither a Lightning checkpoint with a 'state_dict' nor a state dict of tensors")
    return dict(obj)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----- the key map ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyMapping:
    """One tensor: their key, our key, how the tensor is rewritten (see :data:`TRANSFORMS`), and the
    upsampler's temporal factor ``rt`` for the depth-to-space kinds."""

    theirs: str
    ours: str
    kind: str = "copy"
    rt: int = 1


def _conv(w: torch.Tensor, rt: int = 1) -> torch.Tensor:
    """2D kernel ``[o, i, kh, kw]`` -> causal 3D kernel with one temporal tap ``[o, i, 1, kh, kw]``; 3D as is."""
    return rearrange(w, "o i kh kw -> o i 1 kh kw") if w.ndim == 4 else w


def _d2s_weight(w: torch.Tensor, rt: int = 1) -> torch.Tensor:
    """Upsampler kernel: output channels from their ``(pt ph pw c)`` order to our ``(c pt ph pw)`` order."""
    return rearrange(_conv(w), "(pt ph pw c) i kt kh kw -> (c pt ph pw) i kt kh kw", pt=rt, ph=2, pw=2)


def _d2s_bias(b: torch.Tensor, rt: int = 1) -> torch.Tensor:
    return rearrange(b, "(pt ph pw c) -> (c pt ph pw)", pt=rt, ph=2, pw=2)


TRANSFORMS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "copy": lambda t, rt=1: t, "conv": _conv, "d2s_weight": _d2s_weight, "d2s_bias": _d2s_bias}


def _conv_keys(theirs: str, ours: str, video: bool, bias: bool = True, kind: str = "conv",
               rt: int = 1) -> list[KeyMapping]:
    theirs = f"{theirs}.conv_1" if video else theirs  # their video model wraps every Conv3d as .conv_1
    maps = [KeyMapping(f"{theirs}.weight", f"{ours}.conv.weight", kind, rt)]
    if bias:
        maps.append(KeyMapping(f"{theirs}.bias", f"{ours}.conv.bias", "d2s_bias" if kind == "d2s_weight" else "copy", rt))
    return maps


def _resblock(theirs: str, ours: str, c_in: int, c_out: int, video: bool) -> list[KeyMapping]:
    maps = [KeyMapping(f"{theirs}.{n}.{p}", f"{ours}.{n}.{p}") for n in ("norm1", "norm2") for p in ("weight", "bias")]
    maps += [m for n in ("conv1", "conv2") for m in _conv_keys(f"{theirs}.{n}", f"{ours}.{n}", video, bias=False)]
    if c_in != c_out:
        maps += _conv_keys(f"{theirs}.nin_shortcut", f"{ours}.skip", video, bias=False)
    return maps


def key_map(cfg: TokenizerConfig, video: bool = False) -> list[KeyMapping]:
    """Every tensor of an Open-MAGVIT2 tokenizer with ``cfg``'s layout, in their module order."""
    chans = [cfg.base_channels * m for m in cfg.channel_multipliers]
    n, r = len(chans), cfg.num_res_blocks
    maps = _conv_keys("encoder.conv_in", "encoder.conv_in", video, bias=False)
    c = chans[0]
    for i, c_out in enumerate(chans):  # encoder: their down[i] is our blocks[i] + downs[i]
        for j in range(r):
            maps += _resblock(f"encoder.down.{i}.block.{j}", f"encoder.blocks.{i}.{j}", c, c_out, video)
            c = c_out
        if i < n - 1:
            maps += _conv_keys(f"encoder.down.{i}.downsample", f"encoder.downs.{i}.conv", video)
    for j in range(r):
        maps += _resblock(f"encoder.mid_block.{j}", f"encoder.mid.{j}", c, c, video)
    maps += [KeyMapping(f"encoder.norm_out.{p}", f"encoder.norm_out.{p}") for p in ("weight", "bias")]
    maps += _conv_keys("encoder.conv_out", "encoder.conv_out", video)
    maps += _conv_keys("decoder.conv_in", "decoder.conv_in", video)
    for j in range(r):
        maps += _resblock(f"decoder.mid_block.{j}", f"decoder.mid.{j}", c, c, video)
    for k, level in enumerate(reversed(range(n))):  # decoder: their up[level] / adaptive[level] is our stage k
        maps += [KeyMapping(f"decoder.adaptive.{level}.{a}.{p}", f"decoder.stage_norms.{k}.{b}.{p}")
                 for a, b in (("gamma", "to_scale"), ("beta", "to_bias")) for p in ("weight", "bias")]
        for j in range(r):
            maps += _resblock(f"decoder.up.{level}.block.{j}", f"decoder.blocks.{k}.{j}", c, chans[level], video)
            c = chans[level]
        if level > 0:
            rt = 2 if cfg.temporal_downsample[level - 1] else 1
            maps += _conv_keys(f"decoder.up.{level}.upsample.conv1", f"decoder.ups.{k}.conv", video,
                               kind="d2s_weight", rt=rt)
    maps += [KeyMapping(f"decoder.norm_out.{p}", f"decoder.norm_out.{p}") for p in ("weight", "bias")]
    maps += _conv_keys("decoder.conv_out", "decoder.conv_out", video)
    return maps


# ----- choosing EMA or raw weights, inferring the layout -------------------------------------------------
def _ema_name(key: str) -> str:
    """Lightning's EMA stores ``encoder.conv_in.weight`` as buffer ``model_ema.encoderconv_inweight``."""
    return EMA_PREFIX + key.replace(".", "")


def _chosen(state: Mapping[str, torch.Tensor], ema: bool) -> dict[str, torch.Tensor]:
    """The tensors of the chosen weights, keyed by their raw names where known (EMA names stay dot-free)."""
    if ema:
        found = {k: v for k, v in state.items() if k.startswith(EMA_PREFIX) and not k.startswith(SKIPPED_EMA)}
        if not found:
            raise CheckpointError("the checkpoint has no EMA weights (model_ema.*); convert its raw weights with ema=False (--no-ema)")
        return found
    unknown = [k for k in state if not k.startswith(("encoder.", "decoder.", "quantize.", EMA_PREFIX) + SKIPPED_PREFIXES)]
    if unknown:
        raise CheckpointError(f"unexpected key {unknown[0]!r}: not part of an Open-MAGVIT2 tokenizer checkpoint")
    return {k: v for k, v in state.items() if k.startswith(("encoder.", "decoder.", "quantize."))}


def _lookup(chosen: Mapping[str, torch.Tensor], key: str, ema: bool) -> torch.Tensor:
    name = _ema_name(key) if ema else key
    if name not in chosen:
        raise CheckpointError(f"missing key {name!r}: the checkpoint is not an Open-MAGVIT2 tokenizer with this layout")
    return chosen[name]


def _is_video(chosen: Mapping[str, torch.Tensor], ema: bool) -> bool:
    """Their video model wraps each Conv3d as ``.conv_1``; the image model's convs are plain Conv2d."""
    return _ema_name("encoder.conv_in.conv_1.weight") in chosen if ema else "encoder.conv_in.conv_1.weight" in chosen


def _infer_config(chosen: Mapping[str, torch.Tensor], ema: bool, layout: str | None, video: bool) -> TokenizerConfig:
    conv = ".conv_1" if video else ""
    base = _lookup(chosen, f"encoder.conv_in{conv}.weight", ema).shape[0]
    bits = _lookup(chosen, f"encoder.conv_out{conv}.weight", ema).shape[0]
    down = re.compile(r"encoderdown(\d+)block(\d+)" if ema else r"encoder\.down\.(\d+)\.block\.(\d+)\.")
    found = [tuple(int(g) for g in m.groups()) for k in chosen if (m := down.search(k))]
    levels = 1 + max((i for i, _ in found), default=0)
    blocks = 1 + max((j for _, j in found), default=0)
    if layout is not None:
        if layout not in LAYOUTS:
            raise CheckpointError(f"unknown Open-MAGVIT2 layout {layout!r}; expected one of {sorted(LAYOUTS)}")
        mults = LAYOUTS[layout]
    else:
        mults = tuple(_lookup(chosen, f"encoder.down.{i}.block.0.conv1{conv}.weight", ema).shape[0] // base
                      for i in range(levels))
    try:
        return open_magvit2_config(mults, base_channels=base, num_res_blocks=blocks, bits=bits, video=video)
    except ValueError as e:  # shapes that no Open-MAGVIT2 tokenizer has (e.g. 0 or 100 latent channels)
        raise CheckpointError(f"the checkpoint's shapes give no valid tokenizer ({_first_line(e)})") from e


# ----- conversion ----------------------------------------------------------------------------------------
def convert_state_dict(state: Mapping[str, torch.Tensor], *, ema: bool, layout: str | None = None
                       ) -> tuple[TokenizerConfig, dict[str, torch.Tensor]]:
    """Map an Open-MAGVIT2 state dict onto ours: ``(config, our state dict)`` in fp32.

    ``ema`` picks the EMA weights (``model_ema.*``) or the raw ones; ``layout`` ("128" or
    "256") forces the encoder layout, otherwise it is read from the tensors' shapes.
    """
    chosen = _chosen(state, ema)
    video = _is_video(chosen, ema)
    cfg = _infer_config(chosen, ema, layout, video)
    target = VideoTokenizer(cfg).state_dict()
    maps = key_map(cfg, video)
    if {m.ours for m in maps} != set(target):  # the map and the model must describe the same tensors
        raise RuntimeError(f"Open-MAGVIT2 key map out of date: {sorted({m.ours for m in maps} ^ set(target))[:3]}")
    out: dict[str, torch.Tensor] = {}
    for m in maps:
        src = _lookup(chosen, m.theirs, ema)
        name = _ema_name(m.theirs) if ema else m.theirs
        if not src.dtype.is_floating_point:
            raise CheckpointError(f"key {name!r} holds {src.dtype} values; expected floating-point weights")
        dst = target[m.ours]
        try:
            value = TRANSFORMS[m.kind](src, m.rt)
        except Exception:  # noqa: BLE001 - einops raises its own error type on a shape it cannot split
            value = None
        if value is None or value.shape != dst.shape:
            raise CheckpointError(f"shape mismatch at key {name!r}: checkpoint {tuple(src.shape)}, "
                                  f"layout {cfg.channel_multipliers} needs {_expected_shape(m.kind, dst.shape, video)}")
        out[m.ours] = value.to(torch.float32).contiguous()
    used = {_ema_name(m.theirs) if ema else m.theirs for m in maps}
    extra = [k for k in chosen if k not in used]
    if extra:
        raise CheckpointError(f"unexpected key {extra[0]!r}: not used by an Open-MAGVIT2 tokenizer with layout "
                              f"{cfg.channel_multipliers}")
    return cfg, out


def _expected_shape(kind: str, ours: torch.Size, video: bool) -> tuple[int, ...]:
    """Our tensor shape written in their convention (2D kernels for the image model)."""
    return tuple(ours[:2]) + tuple(ours[3:]) if kind in ("conv", "d2s_weight") and not video else tuple(ours)


def from_open_magvit2(source: str | Path | Mapping[str, torch.Tensor], *, ema: bool,
                      layout: str | None = None) -> VideoTokenizer:
    """A :class:`VideoTokenizer` equal to an Open-MAGVIT2 tokenizer (a checkpoint path or its state dict).

    ``ema=True`` takes the EMA weights their evaluation uses; ``ema=False`` the raw training weights.
    """
    state = load_checkpoint_state(source) if isinstance(source, (str, Path)) else source
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    cfg, converted = convert_state_dict(state, ema=ema, layout=layout)
    model = VideoTokenizer(cfg)
    model.load_state_dict(converted)
    return model.eval()
