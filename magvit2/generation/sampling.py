"""MaskGIT iterative decoding (Chang et al. 2022, Sec. 3.2; used by MAGVIT and MAGVIT-2).

The sampler is separate from the network: it takes a ``logits_fn(sub_tokens, masked, cond)``
returning ``[b, n, g, k]`` logits, e.g. :meth:`MaskedTokenModel.logits`.

Algorithm with ``T`` steps, for each sample of the batch:

1. Start with every free position masked; positions in ``known_mask`` (context frames
   for frame prediction) hold ``known_tokens`` and are never changed.
2. At step ``t``, call ``logits_fn`` once (twice with classifier-free guidance, where the
   logits become ``l_u + s_t (l_c - l_u)``, Ho & Salimans 2022) and sample a token for
   EVERY masked position at temperature ``tau_t``.
3. Sub-tokens: the factorized heads are conditionally independent given the input, so
   the model's joint over a position's sub-tokens is the product of the per-group
   softmaxes. Sampling each group independently is therefore an exact draw from that
   joint, and a position's confidence is the product of the probabilities of its
   sampled sub-tokens (a sum of log-probabilities), under the distribution it was
   sampled from (after guidance and temperature).
4. Confidence noise (MaskGIT): ``log conf + choice_temperature * (1 - (t + 1) / T) * Gumbel``.
5. Among the positions that were masked at this step, keep the most confident and
   re-mask the ``m_t`` least confident, ``m_t = floor(gamma((t + 1) / T) * n_free)``
   lowered when needed so that at least one new position is fixed per step
   (:func:`masked_counts`). Fixed, kept and context positions are never re-masked;
   ``gamma(1) = 0``, so the last step fills everything.

Categorical draws use the Gumbel-max trick with noise from ``generator``, so a fixed
generator gives identical samples.

Shape letters: b batch, n positions, g sub-token groups, k vocabulary of one group, s steps.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import torch

from magvit2.generation.masking import mask_schedule, masked_counts
from magvit2.quantizers.factorize import join_indices, split_indices
from magvit2.errors import UserError

__all__ = ["SampleOutput", "LogitsFn", "maskgit_sample", "gumbel_noise", "temperature_at", "guidance_at"]

LogitsFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""``(sub_tokens [b, n, g] with [MASK] ids at masked positions, masked [b, n] bool, cond) -> [b, n, g, k]``."""

TEMPERATURE_SCHEDULES = ("constant", "linear")
GUIDANCE_SCHEDULES = ("constant", "linear")


class SampleOutput(NamedTuple):
    """``tokens [b, n]`` int64; ``sub_tokens [b, n, g]``; ``fixed_at [b, n]``: step at which each
    position was fixed (-1 for known context); ``num_masked [s, b]``: positions still masked after each step."""

    tokens: torch.Tensor
    sub_tokens: torch.Tensor
    fixed_at: torch.Tensor
    num_masked: torch.Tensor


def gumbel_noise(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log u)`` drawn on the generator's device, moved to ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(tuple(shape), generator=generator, device=gen_device).to(device)
    return -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))


def temperature_at(step: int, steps: int, temperature: float, schedule: str = "constant") -> float:
    """Sampling temperature at ``step``: "constant" ``tau``, or "linear" ``tau * (1 - step / steps)``."""
    if schedule == "constant":
        return temperature
    if schedule == "linear":
        return temperature * (1.0 - step / steps)
    raise UserError(f"temperature_schedule must be one of {TEMPERATURE_SCHEDULES}, got {schedule!r}")


def guidance_at(step: int, steps: int, scale: float, schedule: str = "constant") -> float:
    """Guidance scale at ``step``: "constant" ``s``, or "linear" ``s * (step + 1) / steps`` (ramps up, as in Muse)."""
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return scale * (step + 1) / steps
    raise UserError(f"guidance_schedule must be one of {GUIDANCE_SCHEDULES}, got {schedule!r}")


def _check_known(known_tokens: torch.Tensor | None, known_mask: torch.Tensor | None, batch: int, n: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if (known_tokens is None) != (known_mask is None):
        raise ValueError("known_tokens and known_mask must be given together")
    if known_mask is None:
        return torch.zeros(batch, n, dtype=torch.long, device=device), torch.zeros(batch, n, dtype=torch.bool, device=device)
    if known_mask.shape != (batch, n) or known_mask.dtype != torch.bool:
        raise ValueError(f"known_mask must be bool [{batch}, {n}], got {known_mask.dtype} {tuple(known_mask.shape)}")
    if known_tokens.shape != (batch, n):
        raise ValueError(f"known_tokens must be [{batch}, {n}] token ids, got {tuple(known_tokens.shape)}")
    return known_tokens.long().to(device), known_mask.to(device)


@torch.no_grad()
def maskgit_sample(
    logits_fn: LogitsFn,
    batch: int,
    n: int,
    bits_per_group: Sequence[int],
    steps: int = 12,
    *,
    cond: Any = None,
    null_cond: Any = None,
    known_tokens: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    schedule: str = "cosine",
    temperature: float = 1.0,
    temperature_schedule: str = "constant",
    choice_temperature: float = 4.5,
    guidance_scale: float | None = None,
    guidance_schedule: str = "constant",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SampleOutput:
    """Sample ``batch`` token sequences of length ``n`` by MaskGIT iterative decoding (see module doc).

    Args:
        logits_fn: ``(sub_tokens [b, n, g], masked [b, n], cond) -> [b, n, g, k]``, ``k >= 2^max(bits)``.
        bits_per_group: sub-token sizes; [MASK] id of group g is ``2^bits_g``.
        steps: number of decoding steps T.
        cond / null_cond: passed through to ``logits_fn``; ``null_cond`` is the unconditional
            input used when ``guidance_scale`` is set.
        known_tokens / known_mask: ``[b, n]`` token ids and bool mask of fixed context positions.
        schedule: mask schedule gamma ("cosine" | "arccos" | "linear").
        temperature: token sampling temperature (0 = greedy); ``temperature_schedule``
            "constant" | "linear" (see :func:`temperature_at`).
        choice_temperature: scale of the annealed Gumbel noise on confidences (0 = none).
        guidance_scale: None = no guidance; else ``s`` in ``l_u + s (l_c - l_u)``;
            ``guidance_schedule`` "constant" | "linear" (see :func:`guidance_at`).
        generator: random source; a fixed seed gives identical outputs.
        device: device of the outputs (default: the generator's, else CPU).
    """
    bits_per_group = tuple(int(b) for b in bits_per_group)
    sizes = [2 ** b for b in bits_per_group]
    if batch < 1 or n < 1 or steps < 1:
        raise UserError(f"batch, n and steps must be >= 1, got batch={batch} n={n} steps={steps}")
    if guidance_scale is not None and null_cond is None:
        raise ValueError("guidance_scale needs null_cond (the unconditional input of logits_fn)")
    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}")
    mask_schedule(0.0, schedule)  # validates the name
    temperature_at(0, steps, temperature, temperature_schedule)
    if guidance_scale is not None:
        guidance_at(0, steps, guidance_scale, guidance_schedule)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)

    known_tokens, known = _check_known(known_tokens, known_mask, batch, n, device)
    mask_ids = torch.tensor([sizes], device=device)  # [1, g]
    sub = torch.where(known[..., None], split_indices(known_tokens, bits_per_group), mask_ids)  # [b, n, g]
    masked = ~known
    counts = masked_counts(masked.sum(dim=1).cpu(), steps, schedule).to(device)  # [s, b]
    fixed_at = torch.full((batch, n), -1, dtype=torch.long, device=device)

    for t in range(steps):
        if not masked.any():
            break
        logits = logits_fn(sub, masked, cond)
        if logits.dim() != 4 or logits.shape[:3] != (batch, n, len(sizes)) or logits.shape[3] < max(sizes):
            raise ValueError(f"logits_fn must return [{batch}, {n}, {len(sizes)}, >={max(sizes)}], got {tuple(logits.shape)}")
        uncond = logits_fn(sub, masked, null_cond) if guidance_scale is not None else None
        tau = temperature_at(t, steps, temperature, temperature_schedule)
        noise = gumbel_noise((batch, n, len(sizes), max(sizes)), generator, device)
        sampled, logconf = [], torch.zeros(batch, n, device=device)
        for g, k in enumerate(sizes):
            lg = logits[:, :, g, :k].float()
            if uncond is not None:  # classifier-free guidance: l_u + s (l_c - l_u)
                lu = uncond[:, :, g, :k].float()
                s_t = guidance_at(t, steps, guidance_scale, guidance_schedule)
                lg = torch.where(lg == lu, lu, lu + s_t * (lg - lu))  # equal (e.g. both -inf) stays put
            logp = torch.log_softmax(lg / tau if tau > 0 else lg, dim=-1)
            ids = (logp + noise[:, :, g, :k]).argmax(-1) if tau > 0 else logp.argmax(-1)  # Gumbel-max draw
            sampled.append(ids)
            logconf = logconf + logp.gather(-1, ids[..., None])[..., 0]  # log prod_g p_g(sampled_g)
        sampled = torch.stack(sampled, dim=-1)  # [b, n, g]

        # MaskGIT confidence with annealed Gumbel noise; unmasked positions are never re-masked.
        choice = gumbel_noise((batch, n), generator, device)
        conf = logconf + choice_temperature * (1.0 - (t + 1) / steps) * choice
        conf = conf.masked_fill(~masked, float("inf"))
        rank = conf.argsort(dim=1, stable=True).argsort(dim=1)
        remask = rank < counts[t][:, None]  # the m_t least confident (all among the masked positions)
        new = masked & ~remask
        sub = torch.where(new[..., None], sampled, sub)
        fixed_at = fixed_at.masked_fill(new, t)
        masked = remask

    if masked.any():  # only reachable through a broken logits_fn / schedule
        raise RuntimeError("MaskGIT decoding left positions masked after the last step")
    return SampleOutput(join_indices(sub, bits_per_group), sub, fixed_at, counts)
