"""LFQ: exactness of the factorized entropies against a brute-force softmax over all
2^d codes, bit order, round trips, straight-through gradient, fp32 under autocast,
the cross-process reduce hook, and usage metrics."""
from __future__ import annotations

import pytest
import torch

from magvit2.quantizers import (
    LFQ,
    QuantizerConfig,
    build_quantizer,
    code_usage,
    code_usage_from_codes,
    codes_to_indices,
    indices_to_codes,
    split_bits,
)
from magvit2.quantizers.entropy import SPARSE_FLIP_BITS, _likely_codes, bit_logits, exact_codebook_entropy


# ----------------------------------------------------------------------------- brute force
def all_codes(d: int) -> torch.Tensor:
    """[2^d, d] float64 codes in {-1, 1}; code k has channel i = bit i of k."""
    k = torch.arange(1 << d)
    return (((k[:, None] >> torch.arange(d)) & 1) * 2 - 1).double()


def brute_entropies(flat: torch.Tensor, tau: float, weights: torch.Tensor | None = None):
    """flat [n, d] -> (E_n H(q(.|z_n)), H(E_n q(.|z_n))) by an explicit softmax over 2^d codes."""
    logits = 2.0 * flat @ all_codes(flat.shape[1]).t() / tau  # [n, 2^d]
    logq = torch.log_softmax(logits, dim=-1)
    q = logq.exp()
    w = torch.ones(flat.shape[0], dtype=flat.dtype) if weights is None else weights.to(flat.dtype)
    per_sample = (w * -(q * logq).sum(-1)).sum() / w.sum()
    mean = (w[:, None] * q).sum(0) / w.sum()
    codebook = -(mean * mean.clamp_min(1e-300).log()).sum()  # clamp: codes whose mass underflows to 0
    return per_sample, codebook


def flatten(z: torch.Tensor) -> torch.Tensor:
    return z.movedim(1, -1).reshape(-1, z.shape[1])


CASES = [  # (d, temperature, scale of z): soft and near-one-hot assignments
    (1, 0.01, 0.01),
    (3, 0.1, 0.1),
    (6, 0.01, 0.005),
    (7, 1.0, 0.5),
    (10, 0.01, 0.01),
    (10, 0.01, 1.0),
    (12, 0.1, 0.05),
]


@pytest.mark.parametrize("d,tau,scale", CASES)
@pytest.mark.parametrize("use_mask", [False, True])
def test_exact_entropies_match_brute_force(d, tau, scale, use_mask):
    g = torch.Generator().manual_seed(d * 7 + int(use_mask))
    z = (torch.randn(3, d, 2, 5, generator=g) * scale).requires_grad_()
    mask = torch.rand(3, 2, 5, generator=g) > 0.4 if use_mask else None
    if mask is not None:
        mask[0, 0, 0] = True
    out = LFQ(d, temperature=tau)(z, mask=mask)

    z64 = z.detach().double().requires_grad_()
    w = None if mask is None else mask.reshape(-1)
    ps, cb = brute_entropies(flatten(z64), tau, w)
    assert out.per_sample_entropy.dtype == torch.float32
    torch.testing.assert_close(out.per_sample_entropy.double(), ps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.codebook_entropy.double(), cb, rtol=1e-4, atol=1e-5)

    for ours, ref in ((out.per_sample_entropy, ps), (out.codebook_entropy, cb)):
        (g_ours,) = torch.autograd.grad(ours, z, retain_graph=True)
        (g_ref,) = torch.autograd.grad(ref, z64, retain_graph=True)
        tol = 1e-4 * max(1.0, g_ref.abs().max().item())
        torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-3, atol=tol)
        if mask is not None:
            assert torch.all(g_ours.movedim(1, -1)[~mask] == 0), "masked tokens must get no entropy gradient"


@pytest.mark.parametrize("d", [8, 10, 12])
@pytest.mark.parametrize("use_mask", [False, True])
def test_sparse_and_dense_paths_match_brute_force(d, use_mask):
    """Confident tokens take the sparse likely-pairs path, uncertain ones the dense matmul; both exact."""
    tau = 0.01
    g = torch.Generator().manual_seed(100 + d + int(use_mask))
    flat = torch.randn(40, d, generator=g)
    flat[::4] *= 0.02  # every 4th token uncertain -> not covered by the sparse path
    flat[1, 0] = 0.0  # an exact zero bit
    flat = flat.requires_grad_()
    w = (torch.rand(40, generator=g) > 0.3).float() if use_mask else None
    if w is not None:
        w[0] = 1.0
    ref_z = flat.detach().double().requires_grad_()
    ref = brute_entropies(ref_z, tau, w)[1]
    (g_ref,) = torch.autograd.grad(ref, ref_z)
    logits = bit_logits(flat, tau)
    for method in ("sparse", "dense", "auto"):
        h = exact_codebook_entropy(logits, w, method=method)
        torch.testing.assert_close(h.double(), ref, rtol=1e-5, atol=1e-5)
        (g_ours,) = torch.autograd.grad(h, flat, retain_graph=True)
        torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-3, atol=1e-4 * max(1.0, g_ref.abs().max().item()))
    ga, _ = split_bits(d, 2)
    covered = _likely_codes(logits[:, :ga].detach(), SPARSE_FLIP_BITS)[2] & _likely_codes(logits[:, ga:].detach(), SPARSE_FLIP_BITS)[2]
    if ga <= SPARSE_FLIP_BITS:  # every code of the group is enumerated
        assert bool(covered.all())
    else:
        assert 0 < int(covered.sum()) < 40, "test must exercise both the sparse and the dense part"


def test_auto_method_matches_dense_in_lfq():
    """At d = 16 and 256+ tokens on CPU, "auto" takes the sparse path; both agree with a float64 reference."""
    tau = 0.01
    g = torch.Generator().manual_seed(7)
    z = torch.randn(2, 16, 8, 16, generator=g)
    z[0, :, :2] *= 0.01  # some uncertain tokens go through the dense part
    z64 = z.double().requires_grad_()
    ref = exact_codebook_entropy(bit_logits(flatten(z64), tau), method="dense")  # float64 matmul
    (g_ref,) = torch.autograd.grad(ref, z64)
    scale = g_ref.abs().max().item()
    for method, grad_tol in (("auto", 1e-4), ("dense", 3e-3)):  # fp32 dense loses a little where products underflow
        zz = z.clone().requires_grad_()
        out = LFQ(16, temperature=tau, exact_method=method)(zz)
        torch.testing.assert_close(out.codebook_entropy.double(), ref, rtol=1e-5, atol=1e-5)
        (grad,) = torch.autograd.grad(out.codebook_entropy, zz)
        torch.testing.assert_close(grad.double(), g_ref, rtol=1e-3, atol=grad_tol * scale)


@pytest.mark.parametrize("d,group_bits", [(10, 4), (9, 3), (8, 8), (12, 5)])
def test_grouped_mode_is_sum_of_group_entropies(d, group_bits):
    tau = 0.05
    g = torch.Generator().manual_seed(d + group_bits)
    z = (torch.randn(2, d, 4, 4, generator=g) * 0.05).requires_grad_()
    mask = torch.rand(2, 4, 4, generator=g) > 0.3
    mask[0, 0, 0] = True
    quant = LFQ(d, temperature=tau, entropy_mode="grouped", group_bits=group_bits)
    groups = split_bits(d, -(-d // group_bits))
    assert quant.groups == groups
    out = quant(z, mask=mask)

    z64 = z.detach().double().requires_grad_()
    flat, w = flatten(z64), mask.reshape(-1)
    total, offset = 0.0, 0
    for b in groups:
        total = total + brute_entropies(flat[:, offset : offset + b], tau, w)[1]
        offset += b
    torch.testing.assert_close(out.codebook_entropy.double(), total, rtol=1e-4, atol=1e-5)
    (g_ours,) = torch.autograd.grad(out.codebook_entropy, z)
    (g_ref,) = torch.autograd.grad(total, z64)
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-3, atol=1e-4 * max(1.0, g_ref.abs().max().item()))
    # the per-sample term is exact in both modes
    exact = LFQ(d, temperature=tau)(z.detach(), mask=mask)
    torch.testing.assert_close(out.per_sample_entropy, exact.per_sample_entropy)
    if len(groups) > 1:  # subadditivity: the approximation is an upper bound of the exact entropy
        assert out.codebook_entropy >= exact.codebook_entropy - 1e-5


def test_loss_composition_commitment_and_weight_override():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 8, 3, 3, generator=g)
    mask = torch.rand(2, 3, 3, generator=g) > 0.5
    mask[0, 0, 0] = True
    quant = LFQ(8, entropy_weight=0.3, commitment_weight=0.7, gamma=0.9, temperature=0.2)
    out = quant(z, mask=mask)
    torch.testing.assert_close(out.entropy_loss, out.per_sample_entropy - 0.9 * out.codebook_entropy)
    torch.testing.assert_close(out.loss, 0.3 * out.entropy_loss + 0.7 * out.commitment)
    err = (z - torch.where(z > 0, 1.0, -1.0)).pow(2).mean(1)  # [b, h, w]
    torch.testing.assert_close(out.commitment, err[mask].mean())
    annealed = quant(z, mask=mask, entropy_weight=1.5)
    torch.testing.assert_close(annealed.loss, 1.5 * out.entropy_loss + 0.7 * out.commitment)


# ----------------------------------------------------------------------------- bits and indices
def test_bit_order_hand_written():
    z = torch.tensor(
        [
            [1.0, -1.0, -1.0],  # bit 0 set -> 1
            [-2.0, 0.3, -0.1],  # bit 1 -> 2
            [0.5, 0.5, 0.5],  # 7
            [0.0, 0.0, 0.0],  # zeros map to -1 -> 0
            [0.5, 0.0, 2.0],  # 1 + 4 = 5
            [-0.0, 1e-9, 0.0],  # -0.0 is not > 0 -> 2
        ]
    )  # [b, d] tokens without trailing dims
    out = LFQ(3)(z)
    assert out.indices.tolist() == [1, 2, 7, 0, 5, 2]
    expected = torch.tensor([[1, -1, -1], [-1, 1, -1], [1, 1, 1], [-1, -1, -1], [1, -1, 1], [-1, 1, -1]]).float()
    assert torch.equal(out.quantized, expected)
    assert torch.equal(indices_to_codes(torch.tensor([1, 2, 7, 0, 5]), 3), expected[:5])


@pytest.mark.parametrize("bits", [1, 5, 18, 30])
def test_indices_codes_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    idx = torch.randint(0, 1 << bits, (2, 3, 4, 5), generator=g)
    codes = indices_to_codes(idx, bits)
    assert codes.shape == (2, bits, 3, 4, 5) and set(codes.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(codes_to_indices(codes), idx)
    rand_codes = torch.randint(0, 2, (2, bits, 7), generator=g).float() * 2 - 1
    assert torch.equal(indices_to_codes(codes_to_indices(rand_codes), bits), rand_codes)


def test_forward_codes_match_indices_and_straight_through():
    quant = LFQ(18)
    assert quant.codebook_size == 2**18
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 18, 2, 4, 4, generator=g, requires_grad=True)
    out = quant(z)
    assert out.indices.dtype == torch.long and out.indices.shape == (2, 2, 4, 4)
    assert torch.equal(out.quantized, quant.indices_to_codes(out.indices))
    assert torch.equal(quant.codes_to_indices(out.quantized), out.indices)
    upstream = torch.randn(out.quantized.shape, generator=g)
    (grad,) = torch.autograd.grad((out.quantized * upstream).sum(), z)
    assert torch.equal(grad, upstream), "straight-through gradient must be the identity"


def test_indices_to_codes_rejects_out_of_range():
    with pytest.raises(ValueError, match="indices must lie"):
        indices_to_codes(torch.tensor([0, 8]), 3)
    with pytest.raises(ValueError, match="integer"):
        indices_to_codes(torch.tensor([0.0]), 3)


# ----------------------------------------------------------------------------- precision
def test_fp32_forced_under_bf16_autocast():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 12, 3, 4, generator=g) * 0.05
    quant = LFQ(12, temperature=0.05)
    ref = quant(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quant(z)
    for name, a, b in zip(ref._fields, ref, out):
        assert b.dtype == a.dtype, name
        assert torch.equal(a, b), name
    assert ref.codebook_entropy.dtype == torch.float32 and ref.quantized.dtype == torch.float32
    # bf16 inputs: quantized keeps the input dtype, the losses are fp32 and equal the fp32 path on the same values
    zb = z.bfloat16()
    out_b = quant(zb)
    ref_b = quant(zb.float())
    assert out_b.quantized.dtype == torch.bfloat16 and out_b.loss.dtype == torch.float32
    torch.testing.assert_close(out_b.quantized.float(), ref_b.quantized, rtol=0, atol=0)
    torch.testing.assert_close(out_b.loss, ref_b.loss, rtol=0, atol=0)


# ----------------------------------------------------------------------------- distributed hook
@pytest.mark.parametrize("mode", ["exact", "grouped"])
def test_reduce_hook_gives_global_batch_entropy(mode):
    tau, d = 0.05, 8
    g = torch.Generator().manual_seed(3)
    z1 = (torch.randn(2, d, 3, 3, generator=g) * 0.05).requires_grad_()  # this rank: 18 tokens
    z2 = torch.randn(1, d, 2, 5, generator=g) * 0.05 + 0.02  # other rank: 10 tokens, shifted
    kwargs = dict(temperature=tau, entropy_mode=mode, group_bits=3)

    captured = []
    LFQ(d, reduce_hook=lambda v: captured.append(v.detach()) or v, **kwargs)(z2)
    other = captured[0]
    assert other[-1].item() == 10  # the packed token count

    calls = []

    def average_with_other_rank(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.shape)
        return (v + other) / 2

    out = LFQ(d, reduce_hook=average_with_other_rank, **kwargs)(z1)
    assert calls, "reduce_hook was not applied"

    z1_64 = z1.detach().double().requires_grad_()
    both = torch.cat([flatten(z1_64), flatten(z2.double())])
    if mode == "exact":
        ref = brute_entropies(both, tau)[1]
    else:
        groups, offset, ref = split_bits(d, 3), 0, 0.0
        for b in groups:
            ref = ref + brute_entropies(both[:, offset : offset + b], tau)[1]
            offset += b
    torch.testing.assert_close(out.codebook_entropy.double(), ref, rtol=1e-4, atol=1e-5)
    local = LFQ(d, **kwargs)(z1.detach()).codebook_entropy
    assert abs(local.item() - ref.item()) > 1e-3, "test needs the other rank to change the entropy"
    # gradient of the global entropy w.r.t. this rank's tokens (the hook is linear, so autograd flows through it)
    (g_ours,) = torch.autograd.grad(out.codebook_entropy, z1)
    (g_ref,) = torch.autograd.grad(ref, z1_64)
    # the hook's 1/2 cancels between the averaged sums and the averaged count: same gradient as the global batch
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=1e-3, atol=1e-4 * max(1.0, g_ref.abs().max().item()))


# ----------------------------------------------------------------------------- validation
def test_errors_are_loud():
    with pytest.raises(ValueError, match="grouped"):
        LFQ(25)
    LFQ(32, entropy_mode="grouped", group_bits=8)(torch.randn(1, 32, 4))  # large d works when grouped
    with pytest.raises(ValueError, match="entropy_mode"):
        LFQ(8, entropy_mode="approx")
    with pytest.raises(ValueError, match=r"\[b, 8"):
        LFQ(8)(torch.randn(2, 7, 3))
    with pytest.raises(ValueError, match="no valid tokens"):
        LFQ(8)(torch.randn(2, 8, 3), mask=torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        LFQ(8)(torch.randn(2, 8, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        LFQ(8, temperature=0.0)
    with pytest.raises(ValueError, match="exact_method"):
        LFQ(8, exact_method="fast")


def test_from_config():
    cfg = QuantizerConfig(temperature=0.2, entropy_mode="grouped", group_bits=5)
    quant = build_quantizer(cfg, 10)
    assert isinstance(quant, LFQ) and (quant.bits, quant.temperature, quant.groups) == (10, 0.2, (5, 5))
    assert QuantizerConfig.from_dict(cfg.to_dict()) == cfg
    assert build_quantizer(QuantizerConfig(exact_method="dense"), 12).exact_method == "dense"
    # one home of the defaults: the constructor's defaults are the config's
    default, cfg0 = LFQ(8), QuantizerConfig()
    assert (default.entropy_weight, default.commitment_weight, default.temperature, default.gamma,
            default.entropy_mode, default.group_bits, default.exact_method) == (
        cfg0.entropy_weight, cfg0.commitment_weight, cfg0.temperature, cfg0.gamma, cfg0.entropy_mode,
        cfg0.group_bits, cfg0.exact_method)


# ----------------------------------------------------------------------------- usage metrics
def test_usage_metrics_hand_written():
    u = code_usage(torch.tensor([[0, 1, 2, 3]]), bits=2)
    assert u.bit_p_plus.tolist() == [0.5, 0.5]
    assert u.distinct_codes.item() == 4 and u.num_tokens.item() == 4
    torch.testing.assert_close(u.perplexity, torch.tensor(4.0))
    assert u.balanced_bit_fraction.item() == 1.0

    u = code_usage(torch.tensor([[5, 5, 5, 4]]), bits=3)  # bit0: 3/4, bit1: 0, bit2: 1
    torch.testing.assert_close(u.bit_p_plus, torch.tensor([0.75, 0.0, 1.0]))
    torch.testing.assert_close(u.balanced_bit_fraction, torch.tensor(1 / 3))
    p = torch.tensor([0.75, 0.25])
    torch.testing.assert_close(u.perplexity, (-(p * p.log()).sum()).exp())
    assert u.distinct_codes.item() == 2

    mask = torch.tensor([[True, True, False, False]])
    u = code_usage(torch.tensor([[5, 5, 2, 4]]), bits=3, mask=mask, balanced_range=(0.0, 1.0))
    assert u.distinct_codes.item() == 1 and u.num_tokens.item() == 2
    torch.testing.assert_close(u.perplexity, torch.tensor(1.0))
    assert u.balanced_bit_fraction.item() == 1.0


def test_usage_from_codes_matches_indices():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 6, 3, 5, generator=g)
    out = LFQ(6)(z)
    a, b = code_usage(out.indices, 6), code_usage_from_codes(out.quantized)
    for name, x, y in zip(a._fields, a, b):
        assert torch.equal(x, y), name
    torch.testing.assert_close(a.bit_p_plus, (z > 0).float().mean(dim=(0, 2, 3)))
