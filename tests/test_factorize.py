"""Token factorization: split/join round trips and agreement with the LFQ bit order."""
from __future__ import annotations

import pytest
import torch

from magvit2.quantizers import indices_to_codes, join_indices, split_bits, split_indices

SPLITS = [(9, 9), (10, 8), (8, 10), (1, 17), (18,), (5, 6, 7), (3, 3, 3, 3, 3, 3), (2, 1)]


@pytest.mark.parametrize("bits,groups,expected", [(18, 2, (9, 9)), (18, 1, (18,)), (10, 3, (4, 3, 3)), (5, 5, (1,) * 5)])
def test_split_bits(bits, groups, expected):
    assert split_bits(bits, groups) == expected
    assert sum(split_bits(bits, groups)) == bits


@pytest.mark.parametrize("bits_per_group", SPLITS)
def test_split_join_round_trip(bits_per_group):
    bits = sum(bits_per_group)
    g = torch.Generator().manual_seed(bits * 31 + len(bits_per_group))
    idx = torch.randint(0, 1 << bits, (2, 3, 4, 5), generator=g)
    sub = split_indices(idx, bits_per_group)
    assert sub.shape == (2, 3, 4, 5, len(bits_per_group))
    for k, b in enumerate(bits_per_group):
        assert int(sub[..., k].min()) >= 0 and int(sub[..., k].max()) < (1 << b)
    assert torch.equal(join_indices(sub, bits_per_group), idx)
    # and the other direction: any sub-tokens in range join to a unique index that splits back
    sub2 = torch.stack([torch.randint(0, 1 << b, (6,), generator=g) for b in bits_per_group], dim=-1)
    assert torch.equal(split_indices(join_indices(sub2, bits_per_group), bits_per_group), sub2)


@pytest.mark.parametrize("bits_per_group", SPLITS)
def test_sub_token_bits_are_the_matching_code_channels(bits_per_group):
    """Sub-token g decoded on its own equals channels offset_g .. offset_g + b_g - 1 of the full code."""
    bits = sum(bits_per_group)
    g = torch.Generator().manual_seed(bits + 100 * len(bits_per_group))
    idx = torch.randint(0, 1 << bits, (3, 2, 4), generator=g)
    codes = indices_to_codes(idx, bits)  # [b, d, h, w]
    sub = split_indices(idx, bits_per_group)
    offset = 0
    for k, b in enumerate(bits_per_group):
        assert torch.equal(indices_to_codes(sub[..., k], b), codes[:, offset : offset + b])
        offset += b


def test_hand_written_18_bit_split():
    idx = torch.tensor([(3 << 9) | 5, 511, 1 << 9, (1 << 18) - 1])
    sub = split_indices(idx, (9, 9))
    assert sub.tolist() == [[5, 3], [511, 0], [0, 1], [511, 511]]


def test_join_rejects_wrong_group_count():
    with pytest.raises(ValueError, match="sub-tokens"):
        join_indices(torch.zeros(4, 3, dtype=torch.long), (9, 9))
    with pytest.raises(ValueError, match="groups"):
        split_bits(4, 5)
