"""Token priors: the probability models the entropy coder codes sub-tokens with.

A token of ``d`` bits is coded as ``g`` sub-tokens (``split_indices``), each a
symbol of a ``2**bits_g`` alphabet. Priors live in one registry (:data:`PRIORS`: kind -> class,
header code, loader); a new prior is one :class:`TokenPrior` subclass plus one
:func:`register_prior` line. Four are built in:

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
- :class:`~magvit2.codec.context.ContextPrior`: every token bit under a fitted table
  ``p(bit | the same bit at neighbouring positions)``, stored beside the model.

Shapes: ``n`` token positions of one group (raster order t, h, w), ``g`` sub-tokens per token,
``k`` alphabet size of a sub-token (``2**bits_g``).
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np
import torch

from magvit2.codec.container import LM_ORDERS, PRIOR_KINDS, CodecError, Header, state_dict_digest
from magvit2.codec.entropy import MAX_ALPHABET_BITS, RangeReader, RangeWriter, counts_from_logits, counts_from_weights
from magvit2.files import atomic_write
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
    "PRIORS",
    "PriorEntry",
    "PriorSource",
    "load_prior",
    "prior_for_header",
    "prior_kinds",
    "register_prior",
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
    def encode(self, sub: np.ndarray, grid: Sequence[int] | None = None) -> bytes:
        """``sub [n, g]`` sub-tokens of one group (``grid``: its token grid ``(t, h, w)``) -> payload bytes."""

    @abstractmethod
    def decode(self, data: bytes, n: int, grid: Sequence[int] | None = None) -> np.ndarray:
        """Payload bytes -> ``[n, g]`` int64 sub-tokens (exact inverse of :meth:`encode`)."""

    def header_fields(self) -> dict[str, Any]:
        """The :class:`~magvit2.codec.container.Header` fields this prior sets besides its kind and split."""
        return {}

    def for_header(self, header: Header) -> "TokenPrior":
        """This prior configured as a file's header says (e.g. the LM prior's decoding schedule)."""
        return self

    @classmethod
    def from_header(cls, header: Header) -> Optional["TokenPrior"]:
        """The prior rebuilt from a header alone, or None when it needs a model (``prior_obj``)."""
        return None


class _ContextFreePrior(TokenPrior):
    """Codes column ``j`` of all positions with one fixed distribution ``counts[j]``."""

    @abstractmethod
    def counts(self) -> list[np.ndarray]:
        """One int64 ``[2**bits_j]`` count vector per sub-token, each summing to ``2**PRECISION``."""

    def encode(self, sub: np.ndarray, grid: Sequence[int] | None = None) -> bytes:
        sub = _check_sub(sub, self.bits_per_group)
        w = RangeWriter()
        for j, c in enumerate(self.counts()):
            w.encode_iid(sub[:, j], c)
        return w.finish()

    def decode(self, data: bytes, n: int, grid: Sequence[int] | None = None) -> np.ndarray:
        r = RangeReader(data)
        cols = [r.decode_iid(n, c) for c in self.counts()]
        r.finish()  # the payload must be exactly the coding of these symbols
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)


@dataclass
class UniformPrior(_ContextFreePrior):
    """Every sub-token uniform: ``d`` bits per token."""

    bits_per_group: tuple[int, ...]

    def __post_init__(self) -> None:
        self.bits_per_group = _check_split(self.bits_per_group)

    def digest(self) -> bytes:
        return hashlib.sha256(f"magvit2-prior|uniform|{self.bits_per_group}".encode()).digest()

    @classmethod
    def from_header(cls, header: Header) -> "UniformPrior":
        return cls(header.bits_per_group)

    def counts(self) -> list[np.ndarray]:
        return [counts_from_weights(np.ones(2**b, dtype=np.int64)) for b in self.bits_per_group]


@dataclass
class StaticPrior(_ContextFreePrior):
    """Per-sub-token frequency tables ``freqs[j] [2**bits_j]`` (non-negative integers)."""

    bits_per_group: tuple[int, ...]
    freqs: list[np.ndarray] = field(repr=False)

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
        tensors = {f"freqs_{j}": f for j, f in enumerate(self.freqs)}
        meta = {"kind": "static", "bits_per_group": ",".join(map(str, self.bits_per_group))}
        save_tables(path, STATIC_PRIOR_FILENAME, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> "StaticPrior":
        """Read a file written by :meth:`save` (a directory means ``dir/static_prior.safetensors``)."""
        meta, tensors = load_tables(path, STATIC_PRIOR_FILENAME, "static", lambda m: "bits_per_group" in m)
        split = tuple(int(b) for b in meta["bits_per_group"].split(","))
        return cls(split, [tensors[f"freqs_{j}"] for j in range(len(split))])


def save_tables(path: str | Path, filename: str, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    """A fitted prior's integer tables as one safetensors file (atomically); a directory means ``dir/filename``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        path = path / filename
    with atomic_write(path) as tmp:
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, str(tmp), metadata=meta)


def load_tables(path: str | Path, filename: str, kind: str,
                valid: Callable[[dict[str, str]], bool]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Read :func:`save_tables`' file: (metadata, tensors). FileNotFoundError when absent; CodecError unless its
    metadata names ``kind`` and passes ``valid``."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise FileNotFoundError(f"{kind} prior not found: {path} (expected a safetensors file)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("kind") != kind or not valid(meta):
            raise CodecError(f"{path}: not a {kind} prior file this version reads (metadata {meta})")
        tensors = {k: f.get_tensor(k).numpy() for k in f.keys()}
    return meta, tensors


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

    def header_fields(self) -> dict[str, Any]:
        return {"lm_chunks": self.num_chunks, "lm_order": self.order}

    def for_header(self, header: Header) -> "LMPrior":
        return self.with_schedule(header.lm_chunks, header.lm_order)

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

    def encode(self, sub: np.ndarray, grid: Sequence[int] | None = None) -> bytes:
        sub = _check_sub(sub, self.bits_per_group)
        n = sub.shape[0]
        known = np.zeros(n, dtype=bool)
        w = RangeWriter()
        for pos in self.chunks(n):
            for j, c in enumerate(self._counts(sub, known, pos)):
                w.encode(sub[pos, j], c)
            known[pos] = True
        return w.finish()

    def decode(self, data: bytes, n: int, grid: Sequence[int] | None = None) -> np.ndarray:
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


# ----- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorSource:
    """What a prior's loader may build from: the codec's tokenizer, the directory it came from (a static
    prior is stored beside it), a generator (its masked LM is the ``lm`` prior) and the sub-token width."""

    tokenizer: Any
    model_dir: Optional[Path] = None
    generator: Any = None
    max_subtoken_bits: int = 9


@dataclass(frozen=True)
class PriorEntry:
    """One registered prior: its kind, its code in the file header, its class and its loader."""

    kind: str
    code: int
    cls: type
    load: Callable[[PriorSource], TokenPrior]
    needs: str  #: what the loader needs, for error messages ("nothing", "a model directory", ...)


#: kind -> entry; filled by :func:`register_prior` (the header's prior codes come from here)
PRIORS: dict[str, PriorEntry] = {}


def register_prior(kind: str, code: int, load: Callable[[PriorSource], TokenPrior], needs: str = "nothing"):
    """Class decorator: register a :class:`TokenPrior` under ``kind``, stored as ``code`` in file headers.

    Codes are permanent (files carry them): the next free code is ``len(prior_kinds())``.
    """

    def deco(cls: type) -> type:
        if kind in PRIORS or code != len(PRIOR_KINDS):
            raise ValueError(f"prior {kind!r} with code {code}: kinds must be new and codes consecutive "
                             f"(registered: {prior_kinds()})")
        cls.kind = kind
        PRIORS[kind] = PriorEntry(kind, code, cls, load, needs)
        PRIOR_KINDS.append(kind)
        return cls

    return deco


def prior_kinds() -> tuple[str, ...]:
    """Registered prior kinds in header-code order."""
    return tuple(PRIOR_KINDS)


def _entry(kind: str) -> PriorEntry:
    if kind not in PRIORS:
        raise CodecError(f"unknown prior {kind!r}; expected one of {prior_kinds()}")
    return PRIORS[kind]


def load_prior(kind: str, source: PriorSource) -> TokenPrior:
    """The ``kind`` prior for ``source.tokenizer``, built by its registered loader."""
    return _entry(kind).load(source)


def prior_for_header(header: Header, prior_obj: TokenPrior | None = None) -> TokenPrior:
    """The prior that decodes a file: rebuilt from the header when the kind allows it, else ``prior_obj``
    (which must be of the file's kind and split), configured as the header says. CodecError otherwise."""
    entry = _entry(header.prior_kind)
    prior = entry.cls.from_header(header)
    if prior is None:
        if prior_obj is None:
            raise CodecError(f"the {header.prior_kind!r} prior needs prior_obj (a {entry.cls.__name__}; "
                             f"its loader needs {entry.needs})")
        if prior_obj.kind != header.prior_kind:
            raise CodecError(f"prior kind mismatch: the file needs {header.prior_kind!r}, got a {prior_obj.kind!r} prior")
        if tuple(prior_obj.bits_per_group) != tuple(header.bits_per_group):
            raise CodecError(f"prior splits tokens as {prior_obj.bits_per_group}, the file {tuple(header.bits_per_group)}")
        prior = prior_obj
    return prior.for_header(header)


def _load_uniform(src: PriorSource) -> UniformPrior:
    return UniformPrior(default_split(src.tokenizer.config.token_bits, src.max_subtoken_bits))


def file_beside_model(src: PriorSource, filename: str, kind: str, cls: type, fit: str) -> Path:
    """A fitted prior's file in the tokenizer's directory: CodecError without a directory,
    FileNotFoundError (naming ``fit``, the function that fits one) when the file is absent."""
    if src.model_dir is None:
        raise CodecError(f"the {kind} prior is stored beside its tokenizer: pass the model directory "
                         f"(or prior_obj={cls.__name__}.load(DIR))")
    path = Path(src.model_dir) / filename
    if not path.is_file():
        raise FileNotFoundError(f"no {filename} in {src.model_dir}; fit one with magvit2.codec.{fit}")
    return path


def _load_static(src: PriorSource) -> StaticPrior:
    return StaticPrior.load(file_beside_model(src, STATIC_PRIOR_FILENAME, "static", StaticPrior, "fit_static_prior"))


def _load_lm(src: PriorSource) -> "LMPrior":
    from magvit2.codec.lm import lm_prior

    if src.generator is None:
        raise CodecError("the lm prior needs a generator directory (a masked token model and its tokenizer), "
                         "or prior_obj=lm_prior(model)")
    if src.generator.kind != "mlm":
        raise CodecError("the lm prior needs a masked token model; this generator is autoregressive")
    return lm_prior(src.generator.lm)


register_prior("uniform", 0, _load_uniform)(UniformPrior)
register_prior("static", 1, _load_static, needs="the tokenizer's directory")(StaticPrior)
register_prior("lm", 2, _load_lm, needs="a generator directory")(LMPrior)

import magvit2.codec.context  # noqa: E402,F401  (registers the "context" prior, code 3)
