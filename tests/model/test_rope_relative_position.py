"""DESIGN.md invariant: 1D and 2D RoPE attention scores depend on relative position only."""

from __future__ import annotations

import torch

from model.layers import apply_rope, rope_angles


def _score(q, k, pq, pk, is_2d, head_dim=32):
    pos = torch.tensor([pq, pk])[None]  # (1, 2, 2)
    flag = torch.full((1, 2), is_2d)
    ang = rope_angles(pos, flag, head_dim)
    x = torch.stack([q, k])[None, None]  # (1, 1, 2, hd)
    r = apply_rope(x, ang)[0, 0]
    return float(r[0] @ r[1])


def test_rope_relative_position_1d():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)
    base = _score(q, k, (5, 0), (2, 0), False)
    for shift in (1, 7, 100):
        assert abs(_score(q, k, (5 + shift, 0), (2 + shift, 0), False) - base) < 1e-3
    assert abs(_score(q, k, (6, 0), (2, 0), False) - base) > 1e-3  # a different offset changes the score


def test_rope_relative_position_2d():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)
    base = _score(q, k, (3, 4), (1, 2), True)
    for dr, dc in ((1, 0), (0, 5), (7, 3)):
        assert abs(_score(q, k, (3 + dr, 4 + dc), (1 + dr, 2 + dc), True) - base) < 1e-3
    # Rows and columns are separate axes: swapping the offset's components changes the score.
    assert abs(_score(q, k, (4, 5), (3, 2), True) - _score(q, k, (5, 4), (2, 3), True)) > 1e-3
    assert abs(_score(q, k, (3, 4), (2, 1), True) - base) > 1e-3


def test_2d_rope_rotates_half_the_head_by_row_and_half_by_column():
    ang = rope_angles(torch.tensor([[[2, 9]]]), torch.tensor([[True]]), 32)[0, 0]
    rows, cols = ang[:8], ang[8:]
    assert torch.allclose(rows / rows[0], cols / cols[0])  # the same frequencies on both halves
    assert torch.isclose(rows[0], torch.tensor(2.0)) and torch.isclose(cols[0], torch.tensor(9.0))
