"""Deterministic probability quantization and range coding with ``constriction``.

An entropy coder only round-trips when the encoder and the decoder use
bit-identical probabilities. Floating-point softmaxes are not reproducible
across machines (SIMD ``exp`` implementations differ in the last bit), so the
codec never hands model floats to the coder directly:

1. logits are rounded to a fixed-point grid (``LOGIT_STEP`` = 1/64 nat) and
   turned into integer weights with an exact ``exp`` table built once from
   :mod:`decimal` (correctly rounded on every platform);
2. integer weights (or frequency counts) become integer *counts* that sum to
   exactly ``2**precision``, every symbol getting at least one count, using
   int64 arithmetic only;
3. the coder receives ``counts / 2**precision`` as float64 - exact binary
   fractions - so ``constriction`` sees the same inputs on both sides and its
   own (deterministic) fixed-point conversion agrees too.

Exact consumption. ``constriction``'s range decoder cannot tell when it runs
out of input: past the end it reads zeros and keeps producing symbols. So a
:class:`RangeReader` checks two things itself. Before each call it refuses to
decode more symbols than the remaining bytes could hold (a symbol costs at
least ``-log2(max count / 2**precision)`` bits, and a stream is never shorter
than its symbols' information content minus the coder's 64-bit state), which
stops a forged header from making it decode a large grid out of a small
payload. And :meth:`RangeReader.finish` re-encodes everything it decoded with
the same distributions and requires the result to equal the payload, byte
for byte: the encoder is deterministic, so a payload is accepted exactly when
it is the encoding of its symbols - no leftover bytes beyond the coder's own
flush, no reads past the end, no garbage that merely decodes to something.

Shapes: ``n`` symbols, ``k`` alphabet size.
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np

from magvit2.errors import UserError

__all__ = [
    "CodecError",
    "PRECISION",
    "MAX_ALPHABET_BITS",
    "LOGIT_STEP_INV",
    "counts_from_weights",
    "counts_from_logits",
    "uniform_counts",
    "ideal_bits",
    "RangeWriter",
    "RangeReader",
]

PRECISION = 20  #: counts of one distribution sum to 2**PRECISION
LOGIT_STEP_INV = 64  #: logits are rounded to multiples of 1/LOGIT_STEP_INV nat
_EXP_BITS = 30  #: exp table entries are round(2**30 * exp(-i / 64))
_TABLE_LEN = 64 * 24  #: exp(-24) * 2**30 < 0.5: entries past this are 0 anyway
MAX_ALPHABET_BITS = PRECISION - 4  #: leave >= 15/16 of the mass to the model
_STATE_BITS = 64  #: a range coder's state: a stream may be this much shorter than its information content


class CodecError(UserError):
    """A compressed file is truncated, corrupted, forged, foreign, or needs a different model."""


@lru_cache(maxsize=1)
def _exp_table() -> np.ndarray:
    """``table[i] = round(2**30 * exp(-i / 64))`` as int64, computed with exact decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 40
        scale = Decimal(2**_EXP_BITS)
        vals = [int((scale * (Decimal(-i) / LOGIT_STEP_INV).exp()).to_integral_value()) for i in range(_TABLE_LEN)]
    return np.asarray(vals, dtype=np.int64)


def _check_alphabet(k: int, precision: int) -> None:
    if k < 1 or k > 2 ** (precision - 4):
        raise ValueError(f"alphabet size must be in [1, 2**{precision - 4}] for {precision}-bit counts, got {k}")


def _fit_int64(w: np.ndarray, max_bits: int) -> np.ndarray:
    """Right-shift rows whose sum reaches ``2**max_bits`` so ``w * 2**precision`` cannot overflow int64."""
    w = w.copy()
    flat = w.reshape(-1, w.shape[-1])
    k_bits = w.shape[-1].bit_length()
    big = (flat.max(axis=-1) >= 2 ** (max_bits - k_bits)) | (flat.sum(axis=-1, dtype=np.uint64) >= np.uint64(2**max_bits))
    big = np.nonzero(big)[0]
    for r in big:  # rare: exact Python ints decide the shift
        total = sum(int(x) for x in flat[r])
        flat[r] >>= max(total.bit_length() - max_bits + 1, 0)
    return w


def counts_from_weights(weights: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Non-negative integer weights ``[..., k]`` -> int64 counts ``[..., k]`` summing to ``2**precision``.

    ``count_i = 1 + floor(w_i * (2**precision - k) / sum(w))``; the few counts
    lost to flooring go to the first largest weight. Pure int64 arithmetic, so
    the result is identical on every machine. An all-zero row becomes uniform.
    """
    w = np.asarray(weights)
    if w.dtype.kind not in "iu":
        raise ValueError(f"weights must be an integer array, got dtype {w.dtype}")
    w = w.astype(np.int64)
    if w.ndim < 1:
        raise ValueError("weights need at least one dimension (the alphabet)")
    if (w < 0).any():
        raise ValueError("weights must be non-negative")
    k = w.shape[-1]
    _check_alphabet(k, precision)
    w = _fit_int64(w, 62 - precision)
    total = w.sum(axis=-1, keepdims=True)
    w = np.where(total == 0, 1, w)  # an all-zero row means "no information": uniform
    total = w.sum(axis=-1, keepdims=True)
    free = 2**precision - k
    counts = 1 + (w * free) // total
    remainder = 2**precision - counts.sum(axis=-1)  # in [0, k)
    top = np.argmax(w, axis=-1)  # first index of the largest weight: deterministic tie-break
    np.put_along_axis(counts, top[..., None], np.take_along_axis(counts, top[..., None], -1) + remainder[..., None], -1)
    return counts


def counts_from_logits(logits: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Float logits ``[..., k]`` -> int64 counts summing to ``2**precision`` (softmax, made exact).

    The logits are rounded to multiples of ``1/LOGIT_STEP_INV`` nat; below the
    row maximum by more than 24 nats a symbol only keeps its minimum count.
    Rounding costs at most ``(1/128)^2``-order nats of cross-entropy per symbol.
    """
    x = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("logits must be finite")
    q = np.rint(x * LOGIT_STEP_INV).astype(np.int64)
    d = np.minimum(q.max(axis=-1, keepdims=True) - q, _TABLE_LEN - 1)
    return counts_from_weights(_exp_table()[d], precision)


def uniform_counts(k: int, precision: int = PRECISION) -> np.ndarray:
    """``[k]`` counts of the uniform distribution (exact when ``k`` is a power of two)."""
    return counts_from_weights(np.ones(k, dtype=np.int64), precision)


def ideal_bits(symbols: np.ndarray, counts: np.ndarray, precision: int = PRECISION) -> float:
    """Ideal code length ``-sum log2 p(x)`` of ``symbols [n]`` under ``counts [n, k]`` or ``[k]``."""
    symbols = np.asarray(symbols, dtype=np.int64)
    c = np.asarray(counts, dtype=np.int64)
    picked = c[symbols] if c.ndim == 1 else np.take_along_axis(c, symbols[:, None], -1)[:, 0]
    return float(symbols.size * precision - np.log2(picked.astype(np.float64)).sum())


def _probabilities(counts: np.ndarray, precision: int) -> np.ndarray:
    # counts / 2**precision is an exact float64 (counts < 2**53): the coder sees exact binary fractions.
    return np.ascontiguousarray(counts, dtype=np.float64) / float(2**precision)


def _symbols(symbols: np.ndarray, k: int) -> np.ndarray:
    s = np.asarray(symbols)
    if s.dtype.kind not in "iu":
        raise ValueError(f"symbols must be integers, got dtype {s.dtype}")
    s = s.astype(np.int64).reshape(-1)
    if s.size and (s.min() < 0 or s.max() >= k):
        raise ValueError(f"symbols must lie in [0, {k}), got range [{s.min()}, {s.max()}]")
    return s.astype(np.int32)


class RangeWriter:
    """Appends symbols to one range-coded stream; :meth:`finish` gives the bytes.

    Use :meth:`encode_iid` (one distribution ``[k]`` for all symbols) or
    :meth:`encode` (one distribution per symbol, ``[n, k]``). A :class:`RangeReader`
    must make the same calls in the same order with the same counts.
    """

    def __init__(self, precision: int = PRECISION) -> None:
        import constriction

        self._cs = constriction
        self.precision = precision
        self._enc = constriction.stream.queue.RangeEncoder()

    def encode_iid(self, symbols: np.ndarray, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 1:
            raise ValueError(f"encode_iid needs counts of shape [k], got {counts.shape}")
        s = _symbols(symbols, counts.shape[0])
        if s.size:
            model = self._cs.stream.model.Categorical(_probabilities(counts, self.precision), perfect=False)
            self._enc.encode(s, model)

    def encode(self, symbols: np.ndarray, counts: np.ndarray) -> None:
        counts = np.asarray(counts, dtype=np.int64)
        s = _symbols(symbols, counts.shape[-1])
        if counts.ndim != 2 or counts.shape[0] != s.size:
            raise ValueError(f"encode needs counts [n={s.size}, k], got {counts.shape}")
        if s.size:
            family = self._cs.stream.model.Categorical(perfect=False)
            self._enc.encode(s, family, _probabilities(counts, self.precision))

    def finish(self) -> bytes:
        words = self._enc.get_compressed()
        return np.asarray(words, dtype="<u4").tobytes()


class RangeReader:
    """Decodes a stream written by :class:`RangeWriter`, call for call, and checks it was used up exactly.

    Raises :class:`CodecError` when a call asks for more symbols than the
    remaining payload can hold, and :meth:`finish` (call it after the last
    symbol) raises it unless the payload is exactly the encoding of the decoded
    symbols (see the module docstring).
    """

    def __init__(self, data: bytes, precision: int = PRECISION) -> None:
        import constriction

        if len(data) % 4:
            raise CodecError(f"range-coded payload must be a whole number of 32-bit words, got {len(data)} bytes")
        self._cs = constriction
        self.precision = precision
        self._words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._dec = constriction.stream.queue.RangeDecoder(self._words)
        self._shadow = constriction.stream.queue.RangeEncoder()  # re-encodes what was decoded
        self._budget = 32.0 * self._words.size + _STATE_BITS  # information the payload can carry, in bits
        self._num_symbols = 0

    def _charge(self, n: int, cheapest_bits: float) -> None:
        """Account ``n`` more symbols costing at least ``cheapest_bits``; refuse before decoding if they cannot fit."""
        self._budget -= cheapest_bits * (1 - 1e-6)
        if self._budget < 0:
            raise CodecError(f"payload of {4 * self._words.size} bytes is too short for the {self._num_symbols + n} "
                             f"symbols the header implies (forged or damaged geometry)")
        self._num_symbols += n

    def _decode(self, model: object, n: int, probabilities: np.ndarray | None = None) -> np.ndarray:
        try:
            if probabilities is None:  # one model for all n symbols
                s = np.asarray(self._dec.decode(model, n), dtype=np.int32)
                self._shadow.encode(s, model)
            else:  # a family with one row of probabilities per symbol
                s = np.asarray(self._dec.decode(model, probabilities), dtype=np.int32)
                self._shadow.encode(s, model, probabilities)
        except (ValueError, RuntimeError, AssertionError) as e:  # how constriction reports invalid streams
            raise CodecError(f"payload does not decode ({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from e
        return s.astype(np.int64)

    def decode_iid(self, n: int, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        self._charge(n, n * (self.precision - float(np.log2(counts.max()))))
        model = self._cs.stream.model.Categorical(_probabilities(counts, self.precision), perfect=False)
        return self._decode(model, n)

    def decode(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2:
            raise ValueError(f"decode needs counts [n, k], got {counts.shape}")
        n = counts.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        self._charge(n, float((self.precision - np.log2(counts.max(axis=-1).astype(np.float64))).sum()))
        family = self._cs.stream.model.Categorical(perfect=False)
        return self._decode(family, n, _probabilities(counts, self.precision))

    def finish(self) -> None:
        """Raise :class:`CodecError` unless the payload is exactly the encoding of the symbols decoded so far."""
        again = np.asarray(self._shadow.get_compressed(), dtype=np.uint32)
        if not np.array_equal(again, self._words):
            raise CodecError(f"payload of {4 * self._words.size} bytes is not the coding of its {self._num_symbols} "
                             f"symbols ({4 * again.size} bytes): damaged or forged data, or the wrong model")
