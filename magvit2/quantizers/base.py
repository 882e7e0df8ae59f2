"""What a quantizer is to the rest of the package: the :class:`Quantizer` interface and its registry.

A quantizer maps a continuous latent ``[b, d, ...]`` to codes of the same shape and to
integer token indices ``[b, ...]`` in ``[0, codebook_size)``, and back from indices to codes.
The tokenizer, trainer, codec and language models use only this interface:

* ``forward(z, mask, entropy_weight)`` -> a named output with ``quantized`` (straight-through
  codes), ``indices``, ``loss`` (the quantizer's own auxiliary loss, already weighted) and
  ``metrics`` (name -> 0-d tensor, logged by the trainer as they are);
* ``latent_to_indices`` (inference), ``indices_to_codes`` (its inverse on codes);
* ``codebook_size`` and ``token_bits`` (bits that hold one index; the codec and the language
  models work in these), and the sub-token factorization ``split_tokens`` / ``join_tokens``.

New quantizers subclass :class:`Quantizer`, register with :func:`register_quantizer` and take
their settings from :class:`~magvit2.quantizers.config.QuantizerConfig`.

Shapes: ``b`` batch, ``d`` latent channels, ``...`` trailing token dims, ``g`` sub-tokens.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Mapping, Optional, Protocol, TypeVar, Union, runtime_checkable

import torch
from torch import nn

from magvit2.config.base import ConfigError
from magvit2.quantizers.config import QuantizerConfig
from magvit2.quantizers.entropy import ReduceHook
from magvit2.quantizers.factorize import join_indices, split_bits, split_indices

__all__ = ["Quantizer", "QuantizerOutput", "register_quantizer", "quantizer_class", "build_quantizer", "token_bits",
           "quantizer_kinds"]


@runtime_checkable
class QuantizerOutput(Protocol):
    """What every quantizer's forward returns (each quantizer has its own NamedTuple with these names)."""

    @property
    def quantized(self) -> torch.Tensor: ...  # [b, d, ...] codes, straight-through gradient, dtype of z

    @property
    def indices(self) -> torch.Tensor: ...  # [b, ...] int64 in [0, codebook_size)

    @property
    def loss(self) -> torch.Tensor: ...  # fp32 0-d auxiliary loss, weighted (0 if the quantizer has none)

    @property
    def metrics(self) -> Mapping[str, torch.Tensor]: ...  # name -> fp32 0-d tensor, for logging


class Quantizer(nn.Module, ABC):
    """Base class of the quantizers. ``dim`` is the number of latent channels ``d``.

    ``reduce_hook`` (optional) is a differentiable cross-process average that a quantizer with
    batch statistics (LFQ's codebook entropy) applies so that they cover the global batch; it is
    set from outside (the trainer) and quantizers without batch statistics ignore it.
    """

    kind: ClassVar[str] = ""

    def __init__(self, dim: int, reduce_hook: Optional[ReduceHook] = None) -> None:
        super().__init__()
        if reduce_hook is not None and not callable(reduce_hook):
            raise ValueError(f"reduce_hook must be callable or None, got {type(reduce_hook).__name__}")
        self.dim = int(dim)
        self.reduce_hook = reduce_hook

    # ----- construction from the one config --------------------------------------
    @classmethod
    @abstractmethod
    def from_config(cls, cfg: QuantizerConfig, dim: int, reduce_hook: Optional[ReduceHook] = None) -> "Quantizer":
        """Build from the quantizer config and the latent channel count ``dim``."""

    @classmethod
    @abstractmethod
    def codebook_size_of(cls, cfg: QuantizerConfig, dim: int) -> int:
        """Codebook size for ``cfg`` at ``dim`` channels, without building the module (raises ConfigError if invalid)."""

    # ----- the interface -----------------------------------------------------------
    @abstractmethod
    def forward(self, z: torch.Tensor, mask: Optional[torch.Tensor] = None,
                entropy_weight: Optional[Union[float, torch.Tensor]] = None) -> QuantizerOutput:
        """Quantize ``z`` [b, d, ...]; ``mask`` [b, ...] marks valid tokens; ``entropy_weight`` overrides the
        weight of an entropy term (annealing; quantizers without one ignore it)."""

    @abstractmethod
    def latent_to_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latent ``[b, d, ...]`` -> int64 indices ``[b, ...]`` (what ``forward`` would give, no grad)."""

    @abstractmethod
    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Indices ``[b, ...]`` -> codes ``[b, d, ...]`` equal to ``forward(z).quantized`` for those indices."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of distinct tokens; indices lie in ``[0, codebook_size)``."""

    @property
    def token_bits(self) -> int:
        """Bits that hold one index: ``ceil(log2(codebook_size))``."""
        return token_bits(self.codebook_size)

    # ----- sub-token factorization ---------------------------------------------------
    def split_tokens(self, indices: torch.Tensor, groups: int) -> torch.Tensor:
        """``[...]`` indices -> ``[..., g]`` sub-tokens of near-equal bit widths (group 0 = lowest bits)."""
        return split_indices(indices, split_bits(self.token_bits, groups))

    def join_tokens(self, sub: torch.Tensor) -> torch.Tensor:
        """``[..., g]`` sub-tokens -> ``[...]`` indices; exact inverse of :meth:`split_tokens`."""
        return join_indices(sub, split_bits(self.token_bits, sub.shape[-1]))


def token_bits(codebook_size: int) -> int:
    """Bits that hold an index in ``[0, codebook_size)`` (at least 1)."""
    return max(1, (int(codebook_size) - 1).bit_length())


_REGISTRY: dict[str, type[Quantizer]] = {}
Q = TypeVar("Q", bound=type[Quantizer])


def register_quantizer(kind: str) -> Callable[[Q], Q]:
    """Class decorator: ``QuantizerConfig(kind=kind)`` builds this class."""

    def deco(cls: Q) -> Q:
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise ValueError(f"quantizer kind {kind!r} is already registered to {_REGISTRY[kind].__name__}")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def quantizer_kinds() -> list[str]:
    return sorted(_REGISTRY)


def quantizer_class(kind: str) -> type[Quantizer]:
    """The registered class for ``kind``; ConfigError naming the known kinds otherwise."""
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown quantizer kind {kind!r}; expected one of {quantizer_kinds()}")
    return _REGISTRY[kind]


def build_quantizer(cfg: QuantizerConfig, dim: int, reduce_hook: Optional[ReduceHook] = None) -> Quantizer:
    """The one factory: the quantizer ``cfg.kind`` over ``dim`` latent channels."""
    return quantizer_class(cfg.kind).from_config(cfg, dim, reduce_hook)
