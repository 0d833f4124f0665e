"""The pointing proxy benchmark: a smoke run gives finite figures; its reference can point; its decoding is exact."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("pointing_proxy")


@pytest.fixture(scope="module")
def quick(bench, tmp_path_factory):
    d = tmp_path_factory.mktemp("pointing_proxy")
    summary = bench.main(["--quick", "--cache", str(d / "cache"), "--out", str(d / "proxy.json")])
    return bench, d, summary


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_quick_run_writes_finite_figures_for_both_models(quick):
    import json

    _, d, summary = quick
    written = json.loads((d / "proxy.json").read_text())
    assert written["table"] == summary["table"]
    assert finite(written["mean_location_baseline"]["mean_px"])
    for side in ("reference", "model"):
        result = written[side]
        assert finite(result["loss_floor"]) and result["loss_floor"] > 0
        assert [m["minutes"] for m in result["marks"]] == written["arguments"]["minutes"]
        for m in result["marks"]:
            assert m["steps"] > 0 and finite(m["train_loss"])
            assert finite(m["mean_px"]) and 0.0 <= m["within_3px"] <= 1.0
    model = written["model"]
    assert model["location_bins"] == 64 and model["config"]["overrides"]["image_conv_stem"] is True
    for m in model["marks"]:
        assert m["decoded"] == written["data"]["test_examples"]  # location-forced: every point decodes
        assert 0 <= m["generate"]["decoded"] <= m["generate"]["of"]
    assert all(finite(r["model_over_reference"]) for r in written["ratio"])
    assert written["data"]["train_examples"] > 0 and written["data"]["test_examples"] > 0


def test_frames_are_cached_by_their_arguments(quick):
    bench, d, _ = quick
    pool, cached = bench.frames(96, 0, 64, d / "cache")
    assert cached and pool["images"].shape == (96, 64, 64, 3) and len(pool["annotations"]) == 96
    assert sorted(set(pool["tasks"])) == sorted(["reach", "push", "pick_place", "stack", "drawer", "button"])


def test_an_unknown_override_fails_naming_the_key(bench):
    with pytest.raises(SystemExit, match="no_such_switch"):
        bench.main(["--quick", "--override", "no_such_switch=true"])
    assert bench.parse_overrides(["location_bins=128", "image_conv_stem=false"]) == {
        "location_bins": 128,
        "image_conv_stem": False,
    }


def test_reference_cnn_points_at_the_named_square(load_benchmark):
    """FiLM + soft-argmax: two coloured squares, the words say which; it learns to point in 200 small steps."""
    ref = load_benchmark("bc_reference")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, size = 512, 32
    images = np.zeros((n, size, size, 3), np.uint8)
    points, texts = np.zeros((n, 2), np.float32), []
    for i in range(n):
        xy = rng.integers(3, size - 3, size=(2, 2))
        images[i, xy[0, 1] - 2 : xy[0, 1] + 2, xy[0, 0] - 2 : xy[0, 0] + 2, 0] = 255  # red
        images[i, xy[1, 1] - 2 : xy[1, 1] + 2, xy[1, 0] - 2 : xy[1, 0] + 2, 2] = 255  # blue
        k = int(rng.integers(2))
        points[i] = xy[k]
        texts.append(f"Point to the {['red', 'blue'][k]} cube.")
    words = ref.InstructionWords(texts)
    net = ref.FiLMSoftArgmaxCNN(words.dim, keypoints=1)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    t, p = words.batch(texts), torch.from_numpy(points)
    for _ in range(200):
        i = torch.randint(n - 64, (32,))
        loss = torch.nn.functional.mse_loss(net(x[i], t[i])[:, 0] / size, p[i] / size)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = (net(x[-64:], t[-64:])[:, 0] - p[-64:]).norm(dim=-1).mean()
    baseline = (p[-64:] - p[:-64].mean(0)).norm(dim=-1).mean()
    assert err < 0.5 * baseline, (float(err), float(baseline))


def test_instruction_words_keep_the_objects_in_order(load_benchmark):
    ref = load_benchmark("bc_reference")
    words = ref.InstructionWords(
        ["stack the red cube on the blue cube", "open the drawer", "close the drawer"]
    )
    a, b = words("stack the red cube on the blue cube"), words("stack the blue cube on the red cube")
    # 2 mentions x (colour, shape) + the other words (stack, the, on)
    assert a.sum() == b.sum() == 4 + 3 and not np.array_equal(a, b)
    assert not np.array_equal(words("open the drawer"), words("close the drawer"))
    assert np.array_equal(words("reach the red mat"), words("reach the red pad"))  # synonyms: one shape


def test_forced_decoding_matches_constrained_generation(quick):
    """Two forwards (y, then x given y) pick what greedy generate would over the location bins."""
    bench, d, _ = quick
    from model.tokenizers.locations import LocationTokenizer

    pool, _ = bench.frames(24, bench.HELD_OUT_SEED, 64, d / "cache")
    examples = bench.pointing_examples(pool, LocationTokenizer(64))[:8]
    fields = [("override", list), ("model_preset", str), ("seed", int), ("write", str)]
    args = dataclasses.make_dataclass("A", fields)([], "tiny", 0, "text")
    model, processor, _ = bench.build_model(examples, args)
    model.eval()
    forced = bench.forced_points(model, processor, examples)
    from model.packing import collate
    from model.vocabulary import EOS_ID

    first = processor.vocab.segments["location"].start - EOS_ID
    batch = collate([processor.encode_inputs(e, "text") for e in examples], model.config, packed=False)
    _, logits = model.generate(batch, "text", max_new_tokens=1, return_logits=True)
    y = logits[:, 0, first : first + 64].argmax(-1).numpy()
    assert np.allclose(forced[:, 1], [processor.locations.dequantize(int(v), 64) for v in y])


def test_quick_run_can_write_the_point_as_an_action(bench, tmp_path):
    """--write action: the same frames and prompts, the point as a camera-frame action decoded by generate."""
    summary = bench.main(
        ["--quick", "--only", "model", "--write", "action", "--override", "action_bins=64",
         "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "proxy.json")]
    )  # fmt: skip
    model = summary["model"]
    assert model["written_as"] == "action" and model["action_bins"] == 64 and model["loss_floor"] is None
    assert model["config"]["overrides"]["action_chunk_size"] == 1
    for m in model["marks"]:
        assert finite(m["mean_px"]) and m["decoded"] == summary["data"]["test_examples"]
    assert "action" in summary["table"]
