"""DESIGN.md invariant: in-range actions come back within half a bin; out-of-range values are clipped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.tokenizers import ActionStats, ActionTokenizer


@pytest.fixture()
def tokenizer() -> ActionTokenizer:
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.uniform(-1, 1, (2000, 3)), rng.choice([-1.0, 1.0], (2000, 1))], 1)
    return ActionTokenizer(ActionStats.from_actions(data), bins=256)


def test_action_round_trip(tokenizer):
    rng = np.random.default_rng(1)
    lo, hi = tokenizer.low, tokenizer.high
    actions = rng.uniform(lo, hi, (8, 4))
    bins = tokenizer.encode(actions)
    assert bins.shape == (8, 4) and bins.min() >= 0 and bins.max() < 256
    back = tokenizer.decode(bins)
    assert back.dtype == np.float32
    assert (np.abs(back - actions) <= tokenizer.bin_width / 2 + 1e-6).all()
    assert tokenizer.clipped_count == 0


def test_action_round_trip_out_of_range_is_clipped_and_counted(tokenizer):
    lo, hi = tokenizer.low, tokenizer.high
    actions = np.stack([lo - 5.0, hi + 5.0, (lo + hi) / 2])
    bins = tokenizer.encode(actions)
    assert tokenizer.clipped_count == 8 and tokenizer.total_count == 12
    assert (bins[0] == 0).all() and (bins[1] == 255).all()  # clipped to the ends, not wrapped
    back = tokenizer.decode(bins)
    assert np.isfinite(back).all()
    assert (back >= lo.astype(np.float32) - 1e-6).all() and (back <= hi.astype(np.float32) + 1e-6).all()
    assert tokenizer.clip_rate() == pytest.approx(8 / 12)


def test_constant_dimension_decodes_to_its_value():
    tok = ActionTokenizer(ActionStats(q01=[0.0, 0.5], q99=[1.0, 0.5]), bins=16)
    back = tok.decode(tok.encode(np.array([[0.3, 0.5], [0.9, 0.7]])))
    assert np.isfinite(back).all() and (back[:, 1] == 0.5).all()


def test_action_stats_json_round_trip(tmp_path, tokenizer):
    path = tmp_path / "action_stats.json"
    tokenizer.stats.save(path)
    json.loads(path.read_text())  # plain JSON
    again = ActionTokenizer(ActionStats.load(path), bins=256)
    x = np.random.default_rng(2).uniform(tokenizer.low, tokenizer.high, (5, 4))
    assert np.array_equal(again.encode(x), tokenizer.encode(x))


def test_bad_actions_and_bins_raise_naming_the_value(tokenizer):
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        tokenizer.encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        tokenizer.encode(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        tokenizer.decode(np.array([[0, 1, 2, 256]]))
    with pytest.raises(ValueError, match="NaN"):
        ActionStats.from_actions(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="q99 must be >= q01"):
        ActionStats(q01=[1.0], q99=[0.0])
