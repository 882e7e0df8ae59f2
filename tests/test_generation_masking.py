"""Mask schedules, decoding counts and training masks of magvit2.generation.masking."""
import math

import pytest
import torch

from magvit2.generation.masking import (
    flatten_grid,
    frame_context_mask,
    mask_schedule,
    masked_counts,
    random_mask,
    unflatten_grid,
)

SCHEDULES = ["cosine", "arccos", "linear"]


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_endpoints_and_monotone(name):
    assert mask_schedule(0.0, name).item() == 1.0
    assert mask_schedule(1.0, name).item() == 0.0
    r = torch.linspace(0, 1, 1001)
    g = mask_schedule(r, name)
    assert (g[1:] <= g[:-1]).all() and (g >= 0).all() and (g <= 1).all()
    assert (g[1:-1] < 1).all() and (g[1:-1] > 0).all()  # strictly inside on the open interval


def test_schedule_formulas():
    r = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    torch.testing.assert_close(mask_schedule(r, "cosine"), torch.cos(math.pi / 2 * r))
    torch.testing.assert_close(mask_schedule(r, "arccos"), torch.acos(r) * 2 / math.pi)
    torch.testing.assert_close(mask_schedule(r, "linear"), 1 - r)
    with pytest.raises(ValueError, match="mask schedule"):
        mask_schedule(0.5, "quadratic")


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("n_free,steps", [(32, 8), (1280, 12), (5, 8), (1, 3), (0, 4)])
def test_masked_counts(name, n_free, steps):
    counts = masked_counts(n_free, steps, name).tolist()
    assert len(counts) == steps and counts[-1] == 0
    prev = n_free
    for t, c in enumerate(counts):
        target = math.floor(mask_schedule((t + 1) / steps, name).item() * n_free)
        assert c == min(target, max(prev - 1, 0))  # the schedule, lowered to fix >= 1 per step
        assert c < prev or prev == 0
        prev = c


def test_masked_counts_batched_matches_scalar():
    n = torch.tensor([0, 7, 32, 100])
    batched = masked_counts(n, 10, "cosine")
    assert batched.shape == (10, 4)
    for i, v in enumerate(n.tolist()):
        assert batched[:, i].tolist() == masked_counts(v, 10, "cosine").tolist()


def test_random_mask_never_masks_context_and_counts():
    g = torch.Generator().manual_seed(0)
    known = frame_context_mask((3, 4, 4), 1, 64)
    draw = random_mask(known, "cosine", g)
    assert not (draw.masked & known).any()
    assert draw.masked.sum(1).tolist() == draw.num_masked.tolist()
    assert (draw.num_masked >= 1).all() and (draw.num_masked <= 32).all()
    torch.testing.assert_close(draw.ratio, draw.num_masked.double() / 32)


@pytest.mark.parametrize("name,expected", [("cosine", 2 / math.pi), ("arccos", 2 / math.pi), ("linear", 0.5)])
def test_random_mask_ratio_distribution(name, expected):
    # E[gamma(r)] for r ~ U(0, 1); ceil adds at most 1 / n_free
    g = torch.Generator().manual_seed(1)
    draw = random_mask(torch.zeros(4000, 100, dtype=torch.bool), name, g)
    assert abs(draw.ratio.mean().item() - expected - 0.005) < 0.02


def test_random_mask_positions_uniform():
    g = torch.Generator().manual_seed(2)
    draw = random_mask(torch.zeros(6000, 8, dtype=torch.bool), "linear", g)
    freq = draw.masked.float().mean(0)  # every position equally likely: ~E[ceil(8 (1 - r))] / 8
    assert (freq - freq.mean()).abs().max() < 0.03


def test_random_mask_deterministic():
    known = torch.zeros(4, 16, dtype=torch.bool)
    a = random_mask(known, "cosine", torch.Generator().manual_seed(3)).masked
    b = random_mask(known, "cosine", torch.Generator().manual_seed(3)).masked
    assert torch.equal(a, b)


def test_frame_context_mask_and_grid_round_trip():
    known = frame_context_mask((5, 2, 3), 2, 2)
    assert known.shape == (2, 30) and known[:, :12].all() and not known[:, 12:].any()
    with pytest.raises(ValueError, match="context_frames"):
        frame_context_mask((5, 2, 3), 6, 1)
    tokens = torch.arange(2 * 5 * 2 * 3).reshape(2, 5, 2, 3)
    flat = flatten_grid(tokens)
    assert flat[0, :6].tolist() == tokens[0, 0].flatten().tolist()  # raster: t slowest, w fastest
    assert torch.equal(unflatten_grid(flat, (5, 2, 3)), tokens)
    with pytest.raises(ValueError):
        unflatten_grid(flat, (5, 2, 2))
