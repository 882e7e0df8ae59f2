"""Exact, factorized entropies of the LFQ code distribution.

LFQ (MAGVIT-2, Sec. 3.1) scores every code ``c`` in ``C = {-1, 1}^d`` for a
latent ``z`` with the soft assignment

    q(c | z) = softmax_c( -||z - c||^2 / tau ) = softmax_c( 2 <z, c> / tau )      (a)

(``||c||^2 = d`` and ``||z||^2`` do not depend on ``c``, so they cancel), and
penalises with the entropy penalty of paper Sec. 3.1 (Eq. 4 of arXiv:2310.05737,
``E[H(q(z))] - H[E(q(z))]``, here with a ``gamma`` weight and natural log)

    L_entropy = E_n[ H(q(. | z_n)) ] - gamma * H( E_n[ q(. | z_n) ] ).          (b)

Eq. (a) is a product over bits: the logit ``2 <z, c> / tau = sum_i 2 z_i c_i / tau``
is a sum of per-bit terms, so the ``d`` bits are independent Bernoullis with

    log p(c_i = +1) - log p(c_i = -1) = 4 z_i / tau =: l_i,  p(c_i = +1) = sigmoid(l_i).  (c)

* The per-sample term is therefore a sum of ``d`` binary entropies (exact, O(N d)).
* The codebook term (entropy of the mean) does not factorize. Splitting the bits
  into two groups ``A`` (low bits) and ``B`` (high bits), each sample's joint
  distribution is the outer product ``q_A(a) q_B(b)``, so the exact mean over ``N``
  samples is one matmul ``Q_A^T Q_B / N`` of shape ``[2^|A|, 2^|B|]``: the
  ``N x 2^d`` tensor is never formed (O(N (2^|A| + 2^|B|)) memory). The flops are
  still ``O(N 2^d)`` (one matmul forward, two backward): trivial on a GPU, the
  bottleneck on a CPU. There, for large batches, tokens whose bits are nearly all
  confident (``|l| > 48``, the usual regime at ``tau = 0.01``) instead add only their
  ``8 x 8`` most likely code pairs, dropping < 1e-20 of their mass (``method="sparse"``,
  picked automatically; the rest still go through the matmul).

Numerics: everything runs in fp32 with autocast disabled (the callers enforce it);
per-code log-probabilities are built in log space from ``logsigmoid`` and then
exponentiated (always <= 1, never overflow); ``log`` of the mean is clamped at the
smallest normal fp32 so gradients stay finite where probabilities underflow.
With TF32 matmuls enabled globally on a GPU, the joint-mean matmul loses precision;
keep ``torch.backends.cuda.matmul.allow_tf32 = False`` (PyTorch's default) for exact values.

Distributed batches: ``reduce_hook`` receives a 1-D fp32 tensor ``[sum_n w_n q(.|z_n) (flat), sum_n w_n]``
(the unnormalised mean distribution with the token count packed at the end) and must
return its elementwise average over processes, differentiably (e.g. an all-reduce
whose backward all-reduces the gradient). Dividing the averaged sum by the averaged
count gives the exact global-batch mean even when ranks hold different token counts.
Gradient scale: with ``all_reduce`` (sum) / world_size as the hook, each rank's tokens
receive the gradient of the global entropy; DDP then averages parameter gradients over
ranks, so the codebook term's gradient is ``1 / world_size`` of that of one process on
the global batch (the per-sample term is unaffected). Scale the entropy weight, or use a
hook whose backward does not divide, if that matters.

``weights`` are per-token 0/1 floats (a validity mask) with a positive sum; the
caller checks that (:class:`~magvit2.quantizers.lfq.LFQ` raises on an empty mask).

Shapes: ``n`` tokens, ``d`` bits, ``k`` codes of one group (``2^bits_g``).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from .factorize import split_bits

__all__ = [
    "MAX_EXACT_BITS",
    "ReduceHook",
    "bit_logits",
    "binary_entropy_from_logits",
    "per_sample_entropy",
    "group_probs",
    "exact_codebook_entropy",
    "grouped_codebook_entropy",
    "entropy_of",
    "exact_groups",
]

ReduceHook = Callable[[torch.Tensor], torch.Tensor]

#: largest ``d`` the exact codebook entropy accepts (two groups of 12 bits: a 2^24 joint mean, 64 MiB).
MAX_EXACT_BITS = 24
#: up to this many bits the exact path uses one group (``[n, 2^d]``) instead of two.
SINGLE_GROUP_MAX_BITS = 6

#: ``method="sparse"``: bits enumerated per token and group (``2^3`` likely codes each).
SPARSE_FLIP_BITS = 3
#: a token is covered when its other bits have ``|l| > SPARSE_LOG_MARGIN + log b`` (dropped mass < 1e-20).
SPARSE_LOG_MARGIN = 46.0
# "auto" uses the sparse path on CPU from d >= 15 bits and 256 tokens: its cost per token
# does not grow with 2^d, the matmul's does (measured crossover near d = 15 on 2 cores)
_SPARSE_MIN_BITS, _SPARSE_MIN_TOKENS = 15, 256

_TINY = torch.finfo(torch.float32).tiny
_LOG_TINY = -87.0  # just above log(_TINY) = -87.34


def bit_logits(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[n, d]`` latents -> ``[n, d]`` per-bit logits ``l = 4 z / tau`` (Eq. c)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return z * (4.0 / temperature)


def binary_entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Elementwise entropy (nats) of ``Bernoulli(sigmoid(logits))``, stable for large ``|logits|``.

    ``H = p * softplus(-l) + (1 - p) * softplus(l)`` since ``-log p = softplus(-l)``
    and ``-log(1 - p) = softplus(l)``.
    """
    p = torch.sigmoid(logits)
    return p * F.softplus(-logits) + (1.0 - p) * F.softplus(logits)


def _weighted_mean(x: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over dim 0 of ``x`` [n, ...], with optional ``weights`` [n] (0/1 mask as float)."""
    if weights is None:
        return x.mean(dim=0)
    return torch.einsum("n,n...->...", weights, x) / weights.sum()


def per_sample_entropy(logits: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """First term of Eq. (b): ``E_n H(q(.|z_n))`` as a sum of per-bit binary entropies. ``logits`` [n, d]."""
    return _weighted_mean(binary_entropy_from_logits(logits).sum(dim=-1), weights)


def _code_bits(b: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[2^b, b]`` 0/1 table: row ``k`` holds the bits of code ``k`` (column 0 = least significant bit)."""
    k = torch.arange(1 << b, device=device)
    return ((k[:, None] >> torch.arange(b, device=device)) & 1).to(dtype)


def group_probs(logits: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[n, b]`` bit logits -> ``[n, 2^b]`` probabilities ``w_n q(k | z_n)`` of every code of the group.

    Code ``k`` has bit ``i`` = ``(k >> i) & 1``, so ``log q(k) = sum_i log p(c_i = -1)
    + sum_i bit_i(k) * l_i`` (Eq. c): one small matmul in log space, then ``exp``, times
    the optional token weight. Log-probabilities are clamped at ``log(tiny)`` (-87)
    before ``exp``: a code with mass below 1.6e-38 gets exactly that floor and no
    gradient, which changes no fp32 sum and avoids the slow subnormal path of ``exp``.
    """
    n, b = logits.shape
    if b > 20:
        raise ValueError(f"a group of {b} bits has 2^{b} codes per token; expected at most 20 bits per group")
    bits = _code_bits(b, logits.device, logits.dtype)  # [k, b]
    bias = F.logsigmoid(-logits).sum(dim=-1, keepdim=True)  # [n, 1] = log q(all bits -1)
    log_q = torch.addmm(bias, logits, bits.t())  # [n, k]
    if torch.is_grad_enabled() and logits.requires_grad:
        q = log_q.clamp_min(_LOG_TINY).exp()
        return q if weights is None else q * weights[:, None]  # exact zeros (and zero gradient) for masked tokens
    q = log_q.clamp_min_(_LOG_TINY).exp_()  # no autograd: reuse the buffer
    return q if weights is None else q.mul_(weights[:, None])


class _JointTotal(torch.autograd.Function):
    """``(l_A [n, a], l_B [n, b], w [n] or None) -> sum_n w_n q_A(.|z_n) q_B(.|z_n)^T`` of shape ``[2^a, 2^b]``.

    Same value as ``group_probs(l_A, w).t() @ group_probs(l_B)`` with a hand-written
    backward that skips autograd's elementwise passes over the ``[n, 2^a]`` tensors:
    ``d log q(k) / d l_i = bit_i(k) - sigmoid(l_i)``, so for group A
    ``dL/dl = (Q_A * (Q_B G^T)) @ bits - sigmoid(l) * rowsum(Q_A * (Q_B G^T))`` with ``G = dL/dtotal``.
    """

    @staticmethod
    def forward(ctx, logits_a: torch.Tensor, logits_b: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            q_a = group_probs(logits_a, weights)  # [n, ka]
            q_b = group_probs(logits_b)  # [n, kb]
        ctx.save_for_backward(logits_a, logits_b, q_a, q_b)
        return q_a.t() @ q_b  # [ka, kb]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        logits_a, logits_b, q_a, q_b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = _JointTotal._logit_grad(logits_a, q_a, q_b @ grad.t())
        if ctx.needs_input_grad[1]:
            grad_b = _JointTotal._logit_grad(logits_b, q_b, q_a @ grad)
        return grad_a, grad_b, None

    @staticmethod
    def _logit_grad(logits: torch.Tensor, q: torch.Tensor, grad_q: torch.Tensor) -> torch.Tensor:
        """``[n, b]`` logits, ``[n, k]`` probs and dL/dq -> ``[n, b]`` dL/dlogits (overwrites ``grad_q``)."""
        g_log = grad_q.mul_(q)  # [n, k] dL/dlog q(k)
        bits = _code_bits(logits.shape[1], logits.device, logits.dtype)  # [k, b]
        return g_log @ bits - torch.sigmoid(logits) * g_log.sum(dim=-1, keepdim=True)


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of a probability tensor summing to 1 over all its entries; ``log`` clamped for finite gradients."""
    return -(p * p.clamp_min(_TINY).log()).sum()


def _reduce(sums: Sequence[torch.Tensor], count: torch.Tensor, reduce_hook: Optional[ReduceHook]) -> list[torch.Tensor]:
    """Normalise unnormalised sums by the token count, after an optional cross-process average."""
    if reduce_hook is not None:
        flat = torch.cat([s.reshape(-1) for s in sums] + [count.reshape(1)])
        reduced = reduce_hook(flat)
        if not isinstance(reduced, torch.Tensor) or reduced.shape != flat.shape:
            raise ValueError(f"reduce_hook must return a tensor of shape {tuple(flat.shape)}, got {getattr(reduced, 'shape', type(reduced))}")
        pieces = torch.split(reduced, [s.numel() for s in sums] + [1])
        sums = [p.view_as(s) for p, s in zip(pieces[:-1], sums)]
        count = pieces[-1].reshape(())
    return [s / count for s in sums]


def _count(logits: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    if weights is None:
        return torch.tensor(float(logits.shape[0]), device=logits.device)
    return weights.sum()


def exact_groups(bits: int) -> tuple[int, ...]:
    """Group split used by the exact codebook entropy: one group for small ``d``, else two near-equal groups."""
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    if bits > MAX_EXACT_BITS:
        raise ValueError(
            f"exact codebook entropy supports at most {MAX_EXACT_BITS} bits, got {bits}; "
            'use entropy_mode="grouped" (a cheaper approximation) for larger codebooks'
        )
    return (bits,) if bits <= SINGLE_GROUP_MAX_BITS else split_bits(bits, 2)


def _likely_codes(logits: torch.Tensor, flip_bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``2^m`` most likely codes of each token's group: its mode with every subset of its ``m`` least confident bits flipped.

    ``logits`` [n, b] -> ``codes`` [n, 2^m] int64, ``log_q`` [n, 2^m] (differentiable, Eq. c),
    ``covered`` [n] bool: every other code has ``log q < -SPARSE_LOG_MARGIN`` relative to the mode
    and their total mass is below ``b * exp(-margin - log b) = 1e-20``.
    """
    n, b = logits.shape
    m = min(flip_bits, b)
    arange = torch.arange(b, device=logits.device)
    conf = logits.detach().abs()
    if m < b:
        vals, order = conf.topk(m + 1, dim=-1, largest=False)  # ascending confidence
        flip_idx = order[:, :m]  # [n, m]
        covered = vals[:, m] > SPARSE_LOG_MARGIN + math.log(b)
    else:
        flip_idx = arange.expand(n, b)
        covered = torch.ones(n, dtype=torch.bool, device=logits.device)
    positive = logits > 0  # mode bits; 0 -> bit 0 (the -1 code)
    log_plus, log_minus = F.logsigmoid(logits), F.logsigmoid(-logits)
    mode_lp = torch.where(positive, log_plus, log_minus)  # [n, b] log p(mode bit)
    flip_cost = mode_lp - torch.where(positive, log_minus, log_plus)  # [n, b] = |l|, with the right branch's gradient
    combos = _code_bits(m, logits.device, logits.dtype)  # [2^m, m]
    log_q = mode_lp.sum(dim=-1, keepdim=True) - flip_cost.gather(1, flip_idx) @ combos.t()  # [n, 2^m]
    mode_code = (positive.long() << arange).sum(dim=-1)  # [n]
    flips = (combos.long()[None] << flip_idx[:, None, :]).sum(dim=-1)  # [n, 2^m]
    return mode_code[:, None] ^ flips, log_q, covered


def _sparse_joint_total(
    logits_a: torch.Tensor, logits_b: torch.Tensor, weights: Optional[torch.Tensor], flip_bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint total ``[2^a, 2^b]`` from each token's likely codes only, and the mask of tokens it covers.

    Uncovered tokens contribute nothing here (the caller adds them densely); covered tokens
    drop less than 1e-20 of their mass, far below fp32 resolution of the mean.
    """
    codes_a, log_a, cov_a = _likely_codes(logits_a, flip_bits)
    codes_b, log_b, cov_b = _likely_codes(logits_b, flip_bits)
    covered = cov_a & cov_b
    w = covered.to(logits_a.dtype) if weights is None else weights * covered
    pair = (log_a[:, :, None] + log_b[:, None, :]).clamp_min(_LOG_TINY).exp() * w[:, None, None]  # [n, Ka, Kb]
    index = (codes_a[:, :, None] << logits_b.shape[1]) | codes_b[:, None, :]  # flat [a, b] index, row-major
    kb = 1 << logits_b.shape[1]
    total = pair.new_zeros((1 << logits_a.shape[1]) * kb).index_add(0, index.reshape(-1), pair.reshape(-1))
    return total.view(-1, kb), covered


def exact_codebook_entropy(
    logits: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    reduce_hook: Optional[ReduceHook] = None,
    method: str = "auto",
) -> torch.Tensor:
    """Second term of Eq. (b), exactly: ``H(E_n q(.|z_n))`` over all ``2^d`` codes. ``logits`` [n, d].

    Two groups ``A, B`` (low, high bits): ``mean[a, b] = sum_n w_n q_A(a|z_n) q_B(b|z_n) / sum_n w_n``,
    i.e. ``(w * Q_A)^T Q_B / W``; the ``[n, 2^d]`` tensor is never formed.

    ``method``: ``"dense"`` is the matmul above (``O(n 2^d)`` flops, best on GPUs);
    ``"sparse"`` adds, for each token whose group distributions are confident (all but
    ``SPARSE_FLIP_BITS`` bits per group with ``|l| > 46 + log b``, the usual regime at
    ``tau = 0.01``), only its ``2^3 x 2^3`` likely code pairs, dropping < 1e-20 of its
    mass, and the other tokens densely; ``"auto"`` picks sparse on CPU for large batches
    where most tokens are covered (same values to fp32 rounding, one host sync).
    """
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}")
    groups = exact_groups(logits.shape[-1])
    count = _count(logits, weights)
    if len(groups) == 1:
        total = group_probs(logits, weights).sum(dim=0)  # [k]
    else:
        la, lb = logits[:, : groups[0]], logits[:, groups[0] :]
        use_sparse = method == "sparse" or (
            method == "auto"
            and logits.device.type == "cpu"
            and logits.shape[1] >= _SPARSE_MIN_BITS
            and logits.shape[0] >= _SPARSE_MIN_TOKENS
        )
        if use_sparse:
            total, covered = _sparse_joint_total(la, lb, weights, SPARSE_FLIP_BITS)
            rest = ~covered
            if method == "auto" and rest.float().mean() > 0.5:  # mostly uncertain tokens: dense is cheaper
                use_sparse = False
            elif bool(rest.any()):
                w_rest = None if weights is None else weights[rest]
                total = total + _JointTotal.apply(la[rest], lb[rest], w_rest)
        if not use_sparse:
            # [ka, kb]; joint code = a + b * 2^|A|; token weights fold into group A
            total = _JointTotal.apply(la, lb, weights)
    (mean,) = _reduce([total], count, reduce_hook)
    return entropy_of(mean)


def grouped_codebook_entropy(
    logits: torch.Tensor,
    bits_per_group: Sequence[int],
    weights: Optional[torch.Tensor] = None,
    reduce_hook: Optional[ReduceHook] = None,
) -> torch.Tensor:
    """Approximation of the second term of Eq. (b): ``sum_g H(E_n q_g(.|z_n))`` over bit groups.

    Equals the exact codebook entropy only when the groups' mean distributions are
    independent; in general it is an upper bound (subadditivity of entropy).
    ``bits_per_group`` must sum to ``d``; group 0 holds the lowest bits.
    """
    if sum(bits_per_group) != logits.shape[-1] or any(b < 1 for b in bits_per_group):
        raise ValueError(f"bits_per_group {tuple(bits_per_group)} must be positive and sum to d={logits.shape[-1]}")
    count = _count(logits, weights)
    totals, offset = [], 0
    for b in bits_per_group:
        totals.append(group_probs(logits[:, offset : offset + b], weights).sum(dim=0))  # [k]
        offset += b
    means = _reduce(totals, count, reduce_hook)
    return torch.stack([entropy_of(m) for m in means]).sum()
