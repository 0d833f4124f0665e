"""The speech proxy benchmark: what a policy must hear is parsed right, and a smoke run gives finite figures."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("speech_proxy")


def test_keys_are_the_colours_in_order_and_the_drawers_direction(bench):
    assert bench.keys_of("stack the cyan cube on the blue cube") == (("cyan", "blue"), "")
    assert bench.keys_of("put the blue cube on the cyan cube") == (("blue", "cyan"), "")
    assert bench.keys_of("pull out the drawer") == ((), "open")
    assert bench.keys_of("push the drawer shut") == ((), "close")
    assert bench.keys_of("slide the drawer closed") == ((), "close")
    names = bench.colour_names()
    labels = bench.key_labels(["stack the cyan cube on the blue cube", "open the drawer"]).tolist()
    assert labels == [[1 + names.index("cyan"), 1 + names.index("blue"), 0], [0, 0, 1]]
    right = bench.scores([(("red",), ""), (("blue", "red"), "")], [(("red",), ""), (("blue", "cyan"), "")])
    assert right == {"keys_right": 0.5, "first_colour_right": 1.0}


@pytest.mark.slow
def test_quick_run_writes_finite_figures_for_both_sides(bench, tmp_path):
    summary = bench.main(["--quick", "--out", str(tmp_path / "speech.json")])
    written = json.loads((tmp_path / "speech.json").read_text())
    assert written["table"] == summary["table"]
    for side in ("reference", "model"):
        marks = written[side]["marks"]
        assert [m["minutes"] for m in marks] == written["arguments"]["minutes"]
        for m in marks:
            assert m["steps"] > 0
            assert 0.0 <= m["keys_right"] <= 1.0 and 0.0 <= m["first_colour_right"] <= 1.0
    for m in written["model"]["marks"]:
        assert 0.0 <= m["exact_transcripts"] <= 1.0 and m["distinct_transcripts"] >= 1
    # The demo's model, read from its config: the settings under test are the ones the demo trains.
    assert written["model"]["config"]["overrides"]["pointer_readout"] is True
    assert written["data"]["distinct_train_sentences"] > 1
