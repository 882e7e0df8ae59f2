"""Token priors: the probability models the entropy coder codes sub-tokens with.

A token of ``d`` bits is coded as ``g`` sub-tokens (``split_indices``), each a
symbol of a ``2**bits_g`` alphabet. Three priors:

- :class:`UniformPrior`: every sub-token uniform, exactly ``d`` bits per token
  (plus a few bytes of coder flush per group) - the baseline.
- :class:`StaticPrior`: one frequency table per sub-token position, fit on
  token arrays with Laplace smoothing (:func:`fit_static_prior`), stored as
  safetensors beside the model.
- :class:`LMPrior`: a language model over the partially known token grid.
  Positions are decoded in a fixed schedule of chunks; each chunk's
  probabilities come from ``logits_fn(tokens, known)`` evaluated on the tokens
  of earlier chunks only (unknown tokens are zeroed, so the model sees
  identical inputs in the encoder and the decoder).

Shapes: ``n`` token positions of one group (raster order t, h, w), ``g`` sub-tokens per token,
``k`` alphabet size of a sub-token (``2**bits_g``).
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch

from magvit2.codec.container import LM_ORDERS, CodecError, state_dict_digest
from magvit2.codec.entropy import MAX_ALPHABET_BITS, RangeReader, RangeWriter, counts_from_logits, counts_from_weights
from magvit2.quantizers.factorize import split_bits, split_indices

__all__ = [
    "TokenPrior",
    "UniformPrior",
    "StaticPrior",
    "LMPrior",
    "LogitsFn",
    "default_split",
    "fit_static_prior",
    "STATIC_PRIOR_FILENAME",
    "prior_from_kind",
]

STATIC_PRIOR_FILENAME = "static_prior.safetensors"
MAX_SUBTOKEN_BITS = MAX_ALPHABET_BITS

#: ``logits_fn(tokens [1, n, g] long, known [1, n] bool) -> [1, n, g, 2**max(bits)] float``
LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_split(bits: int, max_bits: int = 9) -> tuple[int, ...]:
    """Fewest near-equal sub-tokens of at most ``max_bits`` bits each (18 -> (9, 9), 10 -> (5, 5))."""
    if bits < 1 or max_bits < 1:
        raise ValueError(f"bits and max_bits must be >= 1, got {bits}, {max_bits}")
    return split_bits(bits, -(-bits // max_bits))


def _check_split(bits_per_group: Sequence[int]) -> tuple[int, ...]:
    split = tuple(int(b) for b in bits_per_group)
    if not split or any(b < 1 or b > MAX_SUBTOKEN_BITS for b in split):
        raise ValueError(f"sub-token bits must each be in [1, {MAX_SUBTOKEN_BITS}], got {split}")
    return split


def _check_sub(sub: np.ndarray, split: tuple[int, ...]) -> np.ndarray:
    sub = np.asarray(sub)
    if sub.ndim != 2 or sub.shape[1] != len(split):
        raise ValueError(f"sub-tokens must have shape [n, {len(split)}], got {sub.shape}")
    return sub.astype(np.int64)


class TokenPrior(ABC):
    """A probability model over sub-tokens that can code one group's tokens."""

    kind: ClassVar[str]
    bits_per_group: tuple[int, ...]

    @abstractmethod
    def digest(self) -> bytes:
        """sha256 identifying this prior (kind, split and parameters); goes into the file fingerprint."""

    @abstractmethod
    def encode(self, sub: np.ndarray) -> bytes:
        """``sub [n, g]`` sub-tokens of one group -> payload bytes."""

    @abstractmethod
    def decode(self, data: bytes, n: int) -> np.ndarray:
        """Payload bytes -> ``[n, g]`` int64 sub-tokens (exact inverse of :meth:`encode`)."""


class _ContextFreePrior(TokenPrior):
    """Codes column ``j`` of all positions with one fixed distribution ``counts[j]``."""

    @abstractmethod
    def counts(self) -> list[np.ndarray]:
        """One int64 ``[2**bits_j]`` count vector per sub-token, each summing to ``2**PRECISION``."""

    def encode(self, sub: np.ndarray) -> bytes:
        sub = _check_sub(sub, self.bits_per_group)
        w = RangeWriter()
        for j, c in enumerate(self.counts()):
            w.encode_iid(sub[:, j], c)
        return w.finish()

    def decode(self, data: bytes, n: int) -> np.ndarray:
        r = RangeReader(data)
        cols = [r.decode_iid(n, c) for c in self.counts()]
        r.finish()  # the payload must be exactly the coding of these symbols
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)


@dataclass
class UniformPrior(_ContextFreePrior):
    """Every sub-token uniform: ``d`` bits per token."""

    bits_per_group: tuple[int, ...]
    kind: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        self.bits_per_group = _check_split(self.bits_per_group)

    def digest(self) -> bytes:
        return hashlib.sha256(f"magvit2-prior|uniform|{self.bits_per_group}".encode()).digest()

    def counts(self) -> list[np.ndarray]:
        return [counts_from_weights(np.ones(2**b, dtype=np.int64)) for b in self.bits_per_group]


@dataclass
class StaticPrior(_ContextFreePrior):
    """Per-sub-token frequency tables ``freqs[j] [2**bits_j]`` (non-negative integers)."""

    bits_per_group: tuple[int, ...]
    freqs: list[np.ndarray] = field(repr=False)
    kind: ClassVar[str] = "static"

    def __post_init__(self) -> None:
        self.bits_per_group = _check_split(self.bits_per_group)
        if len(self.freqs) != len(self.bits_per_group):
            raise ValueError(f"need {len(self.bits_per_group)} frequency tables, got {len(self.freqs)}")
        freqs = []
        for b, f in zip(self.bits_per_group, self.freqs):
            f = np.asarray(f)
            if f.shape != (2**b,) or f.dtype.kind not in "iu" or (f < 0).any():
                raise ValueError(f"frequency table must be non-negative integers of shape ({2 ** b},), got {f.dtype} {f.shape}")
            freqs.append(f.astype(np.int64))
        self.freqs = freqs
        self._counts = [counts_from_weights(f) for f in self.freqs]

    def digest(self) -> bytes:
        h = hashlib.sha256(f"magvit2-prior|static|{self.bits_per_group}|".encode())
        for f in self.freqs:
            h.update(f.astype("<i8").tobytes())
        return h.digest()

    def counts(self) -> list[np.ndarray]:
        return self._counts

    def bits_per_token(self) -> float:
        """Cross-entropy of the table with itself (its own entropy), in bits per token."""
        total = 0.0
        for c in self._counts:
            p = c / c.sum()
            total -= float((p * np.log2(p)).sum())
        return total

    def save(self, path: str | Path) -> None:
        """Write a safetensors file (``freqs_0 .. freqs_{g-1}`` int64; split in the metadata).

        A directory means ``dir/static_prior.safetensors`` (beside a ``save_pretrained`` model).
        """
        from safetensors.torch import save_file

        path = Path(path)
        if path.is_dir():
            path = path / STATIC_PRIOR_FILENAME
        tensors = {f"freqs_{j}": torch.from_numpy(f.copy()) for j, f in enumerate(self.freqs)}
        meta = {"kind": "static", "bits_per_group": ",".join(map(str, self.bits_per_group))}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "StaticPrior":
        """Read a file written by :meth:`save` (a directory means ``dir/static_prior.safetensors``)."""
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / STATIC_PRIOR_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"static prior not found: {path} (expected a safetensors file)")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("kind") != "static" or "bits_per_group" not in meta:
                raise ValueError(f"{path}: not a static prior file (metadata {meta})")
            split = tuple(int(b) for b in meta["bits_per_group"].split(","))
            freqs = [f.get_tensor(f"freqs_{j}").numpy() for j in range(len(split))]
        return cls(split, freqs)


def fit_static_prior(indices: torch.Tensor | np.ndarray, bits_per_group: Sequence[int], alpha: int = 1) -> StaticPrior:
    """Count sub-token frequencies in ``indices`` (any shape of token ids) plus ``alpha`` (Laplace smoothing)."""
    split = _check_split(bits_per_group)
    if alpha < 0 or int(alpha) != alpha:
        raise ValueError(f"alpha must be a non-negative integer, got {alpha}")
    idx = torch.as_tensor(np.asarray(indices) if isinstance(indices, np.ndarray) else indices).long().reshape(-1)
    if idx.numel() and (idx.min() < 0 or idx.max() >= 2 ** sum(split)):
        raise ValueError(f"token ids must lie in [0, 2**{sum(split)}), got [{int(idx.min())}, {int(idx.max())}]")
    sub = split_indices(idx, split).numpy()
    freqs = [np.bincount(sub[:, j], minlength=2**b).astype(np.int64) + int(alpha) for j, b in enumerate(split)]
    return StaticPrior(split, freqs)


@dataclass
class LMPrior(TokenPrior):
    """Sub-token probabilities from a language model over the partially decoded grid.

    ``logits_fn(tokens [1, n, g], known [1, n]) -> [1, n, g, K]`` with ``K >= 2**bits_j``
    (only the first ``2**bits_j`` logits of sub-token ``j`` are used). It must be
    deterministic: the decoder recomputes the same logits from the same inputs.
    Positions are split into ``num_chunks`` chunks (``order="raster"``: contiguous
    runs; ``"strided"``: position ``i`` in chunk ``i % num_chunks``), decoded one
    after another. ``identity`` names the model in the fingerprint when
    ``logits_fn`` is not an ``nn.Module`` (a module is fingerprinted by its weights).
    """

    logits_fn: LogitsFn
    bits_per_group: tuple[int, ...]
    num_chunks: int = 8
    order: str = "strided"
    identity: str | None = None
    kind: ClassVar[str] = "lm"

    def __post_init__(self) -> None:
        self.bits_per_group = _check_split(self.bits_per_group)
        if not 1 <= self.num_chunks < 2**16:
            raise ValueError(f"num_chunks must be in [1, 65535], got {self.num_chunks}")
        if self.order not in LM_ORDERS:
            raise ValueError(f"order must be one of {LM_ORDERS}, got {self.order!r}")
        if not isinstance(self.logits_fn, torch.nn.Module) and self.identity is None:
            raise ValueError("LMPrior needs identity= (a name for the fingerprint) when logits_fn is not an nn.Module")

    def with_schedule(self, num_chunks: int, order: str) -> "LMPrior":
        """The same model with another chunk schedule (the decoder takes it from the file header)."""
        return replace(self, num_chunks=num_chunks, order=order)

    def digest(self) -> bytes:
        prefix = f"magvit2-prior|lm|{self.bits_per_group}|{self.identity}|".encode()
        fn = self.logits_fn
        if isinstance(fn, torch.nn.Module):
            prefix += f"{type(fn).__module__}.{type(fn).__qualname__}|".encode()
            return state_dict_digest(fn.state_dict(), prefix)
        return hashlib.sha256(prefix).digest()

    def chunks(self, n: int) -> list[np.ndarray]:
        """The decoding schedule: a list of position arrays covering ``range(n)`` once."""
        c = min(self.num_chunks, max(n, 1))
        if self.order == "raster":
            return [a for a in np.array_split(np.arange(n), c)]
        return [np.arange(i, n, c) for i in range(c)]

    def _counts(self, sub: np.ndarray, known: np.ndarray, pos: np.ndarray) -> list[np.ndarray]:
        fn = self.logits_fn
        device = torch.device("cpu")
        if isinstance(fn, torch.nn.Module):
            p = next(iter(fn.parameters()), None)
            device = p.device if p is not None else device
        tokens = torch.from_numpy(np.where(known[:, None], sub, 0)).to(device)[None]
        mask = torch.from_numpy(known.copy()).to(device)[None]
        with torch.inference_mode():
            logits = fn(tokens, mask)
        n, g = sub.shape
        if logits.ndim != 4 or tuple(logits.shape[:3]) != (1, n, g):
            raise ValueError(f"logits_fn must return [1, {n}, {g}, K], got {tuple(logits.shape)}")
        picked = logits[0, torch.from_numpy(pos).to(logits.device)].to("cpu", torch.float64).numpy()
        out = []
        for j, b in enumerate(self.bits_per_group):
            if picked.shape[-1] < 2**b:
                raise ValueError(f"logits_fn gives {picked.shape[-1]} logits, sub-token {j} needs {2 ** b}")
            out.append(counts_from_logits(picked[:, j, : 2**b]))
        return out

    def encode(self, sub: np.ndarray) -> bytes:
        sub = _check_sub(sub, self.bits_per_group)
        n = sub.shape[0]
        known = np.zeros(n, dtype=bool)
        w = RangeWriter()
        for pos in self.chunks(n):
            for j, c in enumerate(self._counts(sub, known, pos)):
                w.encode(sub[pos, j], c)
            known[pos] = True
        return w.finish()

    def decode(self, data: bytes, n: int) -> np.ndarray:
        g = len(self.bits_per_group)
        sub = np.zeros((n, g), dtype=np.int64)
        known = np.zeros(n, dtype=bool)
        r = RangeReader(data)
        for pos in self.chunks(n):
            for j, c in enumerate(self._counts(sub, known, pos)):
                sub[pos, j] = r.decode(c)
            known[pos] = True
        r.finish()  # the payload must be exactly the coding of these symbols
        return sub


def prior_from_kind(kind: str, bits_per_group: Sequence[int], prior_obj: TokenPrior | None) -> TokenPrior:
    """Resolve a prior name (and optional object) to a :class:`TokenPrior`; raise :class:`CodecError` if unusable."""
    if prior_obj is not None:
        if prior_obj.kind != kind:
            raise CodecError(f"prior kind mismatch: file/request needs {kind!r}, got a {prior_obj.kind!r} prior")
        if tuple(prior_obj.bits_per_group) != tuple(bits_per_group):
            raise CodecError(f"prior splits tokens as {prior_obj.bits_per_group}, expected {tuple(bits_per_group)}")
        return prior_obj
    if kind == "uniform":
        return UniformPrior(tuple(bits_per_group))
    raise CodecError(f"the {kind!r} prior needs prior_obj (a {'StaticPrior' if kind == 'static' else 'LMPrior'})")
