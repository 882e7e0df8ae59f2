"""A structured fuzzer for ``.mv2c`` files: the codec must refuse every bad file with a :class:`CodecError`.

CRC-32 stops accidents, not people: anyone can recompute it. This fuzzer knows
the format. It takes valid files (:func:`seed_corpus`), parses their stored
header fields (:func:`~magvit2.codec.container.parse_raw_header`), applies one
to three structured mutations - a header field set to a boundary, a random, a
nearby or a scaled value (the "forged width" of a real attack), the sub-token
split, the group table (frames, entries added, dropped or duplicated), or the
payloads (bit flips, truncation, extension, garbage, swaps) - then recomputes
the group sizes, every CRC and usually the frame total, so the mutant reaches
the decoder, and decodes it fully (tokens and pixels).

Every outcome is one of: refused with :class:`CodecError` (expected), decoded
(a mutation that kept the file valid, e.g. another frame rate; checked to have
the size its header states), or a crash: any other exception, or an input over
the time guard. :func:`run_fuzz` returns the counts; tests/test_codec_fuzz.py
runs a seeded few-second campaign in CI, benchmarks/codec_fuzz.py long ones.
"""
from __future__ import annotations

import re
import resource
import signal
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import numpy as np
import torch

from magvit2.codec.compress import CodecConfig, VideoCodec
from magvit2.codec.container import CodecError, DecodeLimits, GroupEntry, RawHeader, parse_raw_header, pack_raw_header
from magvit2.codec.context import fit_context_prior
from magvit2.codec.priors import LMPrior, TokenPrior, fit_static_prior

__all__ = ["FuzzTarget", "FuzzReport", "seed_corpus", "mutate", "run_fuzz"]

#: stored width in bits of each integer header field the fuzzer edits
_FIELD_BITS = {
    "version": 8, "width": 32, "height": 32, "num_frames": 32, "fps_num": 32, "fps_den": 32,
    "spatial_factor": 8, "temporal_factor": 8, "token_bits": 8, "prior_kind": 8, "lm_chunks": 16, "lm_order": 8,
}


@dataclass(frozen=True)
class FuzzTarget:
    """A valid file to mutate and what decodes it: ``prior`` for files coded with a static or LM prior."""

    name: str
    data: bytes
    prior: TokenPrior | None = None


@dataclass
class FuzzReport:
    """Outcome counts of a campaign; ``crashes`` lists ``(target, input index, error)`` for reproduction."""

    inputs: int = 0
    refused: int = 0
    decoded: int = 0
    crashes: list[tuple[str, int, str]] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    max_seconds: float = 0.0
    seconds: float = 0.0
    rss_growth_mb: float = 0.0

    def summary(self) -> str:
        top = ", ".join(f"{k} {v}" for k, v in self.reasons.most_common(6))
        return (f"{self.inputs} inputs: {self.refused} refused (CodecError), {self.decoded} decoded, "
                f"{len(self.crashes)} crashes; slowest input {self.max_seconds:.2f} s, peak RSS growth "
                f"{self.rss_growth_mb:.0f} MB, {self.seconds:.1f} s in all. Refusals: {top}")


class _Neighbour(torch.nn.Module):
    """Toy deterministic LM prior: sub-token logits favour the previous position's (known) sub-token."""

    def __init__(self, bits_per_group: tuple[int, ...]) -> None:
        super().__init__()
        self.k = 2 ** max(bits_per_group)
        self.strength = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, tokens: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        prev = torch.roll(tokens * known[..., None], 1, dims=1)  # [1, n, g]
        return self.strength * torch.nn.functional.one_hot(prev, self.k).float()


def _frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = [(127 + 120 * np.sin(0.3 * xx + 0.2 * yy + 0.7 * i + np.arange(3)[:, None, None])).transpose(1, 2, 0)
           for i in range(t)]
    return np.clip(np.stack(out) + rng.integers(-12, 12, (t, h, w, 3)), 0, 255).astype(np.uint8)


def seed_corpus(tokenizer: Any) -> list[FuzzTarget]:
    """Small valid files of ``tokenizer``: uniform prior (two groups, a size that needs padding), static, LM, context.

    Small on purpose: a campaign spends its time decoding the mutants that stay valid.
    """
    group = 1 + 1 * tokenizer.config.temporal_factor
    config = CodecConfig(group_frames=group)
    uniform = VideoCodec(tokenizer, config=config)
    frames = _frames(group + 2, 10, 14, seed=0)
    enc = uniform.encode(frames, fps=25)
    tokens = torch.cat([x.reshape(-1) for x in enc.tokens])
    static = fit_static_prior(tokens, uniform.prior.bits_per_group)
    split = tuple(uniform.prior.bits_per_group)
    lm = LMPrior(_Neighbour(split), split, num_chunks=3, order="strided")
    static_file = VideoCodec(tokenizer, static, config).encode(_frames(group, 8, 8, 1), fps=30).data
    lm_file = VideoCodec(tokenizer, lm, config).encode(_frames(group, 16, 16, 2), fps=30).data
    context = fit_context_prior(torch.stack(enc.tokens[:1]), tokenizer.config.token_bits)
    context_file = VideoCodec(tokenizer, context, config).encode(_frames(group + 1, 12, 10, 3), fps=30).data
    return [FuzzTarget("uniform", enc.data), FuzzTarget("static", static_file, static), FuzzTarget("lm", lm_file, lm),
            FuzzTarget("context", context_file, context)]


# ----- mutations -------------------------------------------------------------------------------


def _value(rng: np.random.Generator, old: int, bits: int) -> int:
    top = 2**bits - 1
    kind = rng.integers(0, 6)
    if kind == 0:
        return int(rng.choice([0, 1, 2, top, top - 1, 2 ** (bits - 1)]))
    if kind == 1:
        return int(rng.integers(0, top, endpoint=True))
    if kind == 2:
        return min(max(old + int(rng.integers(-3, 4)), 0), top)
    if kind == 3:  # scaled: the forged-width attack
        return min(old * int(rng.choice([2, 4, 8, 64, 1024])), top)
    if kind == 4:
        return old // int(rng.choice([2, 4, 8]))
    return old ^ (1 << int(rng.integers(0, bits)))


def _mutate_field(raw: RawHeader, payloads: list[bytes], rng: np.random.Generator) -> tuple[RawHeader, list[bytes]]:
    name = str(rng.choice(list(_FIELD_BITS)))
    return replace(raw, **{name: _value(rng, getattr(raw, name), _FIELD_BITS[name])}), payloads


def _mutate_split(raw: RawHeader, payloads: list[bytes], rng: np.random.Generator) -> tuple[RawHeader, list[bytes]]:
    if rng.random() < 0.5:  # a plausible split of the same bits, or of other bits
        bits = raw.token_bits if rng.random() < 0.7 else int(rng.integers(1, 40))
        cuts = np.sort(rng.choice(np.arange(1, max(bits, 2)), size=min(int(rng.integers(0, 4)), max(bits - 1, 0)),
                                  replace=False))
        split = tuple(int(x) for x in np.diff(np.concatenate([[0], cuts, [bits]])))
    else:
        split = tuple(int(x) for x in rng.integers(0, 256, size=int(rng.integers(0, 5))))
    return replace(raw, bits_per_group=split), payloads


def _mutate_groups(raw: RawHeader, payloads: list[bytes], rng: np.random.Generator) -> tuple[RawHeader, list[bytes]]:
    groups, payloads = list(raw.groups), list(payloads)
    i = int(rng.integers(0, len(groups))) if groups else 0
    op = rng.integers(0, 4)
    if op == 0 and groups:
        groups[i] = replace(groups[i], frames=_value(rng, groups[i].frames, 16))
    elif op == 1 and groups:
        del groups[i], payloads[i]
    elif op == 2 and groups:
        groups.insert(i, groups[i])
        payloads.insert(i, payloads[i])
    else:
        groups.insert(i, GroupEntry(int(rng.integers(1, 40)), 0, 0))
        payloads.insert(i, rng.integers(0, 256, size=4 * int(rng.integers(0, 20)), dtype=np.uint8).tobytes())
    return replace(raw, groups=tuple(groups)), payloads


def _mutate_payload(raw: RawHeader, payloads: list[bytes], rng: np.random.Generator) -> tuple[RawHeader, list[bytes]]:
    if not payloads:
        return raw, payloads
    payloads = list(payloads)
    i = int(rng.integers(0, len(payloads)))
    p = bytearray(payloads[i])
    op = rng.integers(0, 7)
    if op == 0 and p:  # flip a bit
        j = int(rng.integers(0, 8 * len(p)))
        p[j // 8] ^= 1 << (j % 8)
    elif op == 1 and p:  # set a byte
        p[int(rng.integers(0, len(p)))] = int(rng.integers(0, 256))
    elif op == 2:  # truncate (usually to whole words)
        n = int(rng.integers(0, len(p) + 1))
        p = p[: n - n % 4 if rng.random() < 0.7 else n]
    elif op == 3:  # extend
        p += rng.integers(0, 256, size=4 * int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
    elif op == 4:  # garbage of the same length
        p = bytearray(rng.integers(0, 256, size=len(p), dtype=np.uint8).tobytes())
    elif op == 5 and len(payloads) > 1:  # another group's payload
        p = bytearray(payloads[int(rng.integers(0, len(payloads)))])
    else:  # zero a word
        if len(p) >= 4:
            j = 4 * int(rng.integers(0, len(p) // 4))
            p[j : j + 4] = bytes(4)
    payloads[i] = bytes(p)
    return raw, payloads


_MUTATIONS: tuple[Callable[..., tuple[RawHeader, list[bytes]]], ...] = (
    _mutate_field, _mutate_field, _mutate_split, _mutate_groups, _mutate_payload, _mutate_payload,
)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """A structured mutant of the valid file ``data``: 1-3 mutations, then sizes and CRCs recomputed."""
    raw, pos = parse_raw_header(data)
    payloads = []
    for g in raw.groups:
        payloads.append(data[pos : pos + g.num_bytes])
        pos += g.num_bytes
    for _ in range(int(rng.integers(1, 4))):
        raw, payloads = _MUTATIONS[int(rng.integers(0, len(_MUTATIONS)))](raw, payloads, rng)
    if rng.random() < 0.95:  # sizes and CRCs that match the payloads: the mutant passes every CRC
        raw = replace(raw, groups=tuple(GroupEntry(g.frames, len(p), zlib.crc32(p))
                                        for g, p in zip(raw.groups, payloads)))
    if rng.random() < 0.8:  # a frame total that matches the group table
        raw = replace(raw, num_frames=min(sum(g.frames for g in raw.groups), 2**32 - 1))
    try:
        return pack_raw_header(raw) + b"".join(payloads)
    except ValueError:  # a field past its stored width (a sum of frames, a long split): keep the original
        return data


# ----- running -----------------------------------------------------------------------------------


class FuzzTimeout(Exception):
    """An input took longer than the per-input guard (a hang, for the fuzzer)."""


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if not seconds:
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise FuzzTimeout(f"input took over {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_fuzz(tokenizer: Any, targets: list[FuzzTarget], num_inputs: int, seed: int = 0,
             limits: DecodeLimits | None = None, input_timeout: float | None = None,
             progress: Callable[[int, FuzzReport], None] | None = None, first: int = 0) -> FuzzReport:
    """Decode mutants ``first .. first + num_inputs - 1`` (round robin over ``targets``); input ``i`` is
    reproducible from ``(seed, i)``, so disjoint ranges split a campaign over processes.

    ``limits`` bound what a mutant may ask for (default :class:`DecodeLimits`); ``input_timeout``
    seconds per input turns a hang into a recorded crash (SIGALRM: main thread only).
    """
    # What decompress(data, tokenizer, target.prior, limits) does, with each codec built once (building
    # one hashes the tokenizer's weights, which would dominate the campaign).
    codecs = [VideoCodec(tokenizer, t.prior if t.prior is not None else "uniform") for t in targets]
    report, rss0, start = FuzzReport(), _peak_rss_mb(), time.perf_counter()
    for i in range(first, first + num_inputs):
        target, codec = targets[i % len(targets)], codecs[i % len(targets)]
        data = mutate(target.data, np.random.default_rng([seed, i]))
        t0 = time.perf_counter()
        try:
            with _deadline(input_timeout):
                out = codec.decode(data, limits)
            h = out.header
            if out.frames.shape != (h.num_frames, h.height, h.width, 3):
                raise AssertionError(f"decoded {out.frames.shape} for a {h.num_frames}x{h.height}x{h.width} header")
            report.decoded += 1
        except CodecError as e:
            report.refused += 1
            report.reasons[re.sub(r"\d[\d,]*", "N", str(e).split(" (")[0].split(":")[0])[:60]] += 1
        except Exception as e:  # noqa: BLE001 - anything else is what the fuzzer looks for
            report.crashes.append((target.name, i, f"{type(e).__name__}: {e}"[:300]))
        report.inputs += 1
        report.max_seconds = max(report.max_seconds, time.perf_counter() - t0)
        report.seconds = time.perf_counter() - start
        report.rss_growth_mb = _peak_rss_mb() - rss0
        if progress is not None:
            progress(i, report)
    return report
