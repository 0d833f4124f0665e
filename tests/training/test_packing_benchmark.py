"""The packing benchmark's logic on small data: same useful tokens both ways, fewer slots when packed."""

from __future__ import annotations

import json

import pytest


def test_layouts_hold_the_same_examples(rollouts, make_config, load_benchmark):
    from training.datamodule import UIO2DataModule
    from training.trainer import fresh_model

    bench = load_benchmark("packing")
    cfg = make_config("/unused", "trainer.batch_size=12", "model.text_corpus_examples=100")
    model, processor = fresh_model(cfg, rollouts, None)
    stream = UIO2DataModule(cfg, processor, rollouts).stream()
    encoded = [stream.encode(i) for i in stream.indices(0)]
    packed, padded = bench.layouts(encoded, processor.config).values()
    for key in ("examples", "enc_tokens", "dec_tokens"):
        assert packed["stats"][key] == padded["stats"][key]
    assert padded["stats"]["rows"] == 12 > packed["stats"]["rows"]
    assert packed["stats"]["utilisation"] > padded["stats"]["utilisation"]
    # Both layouts give every example the same loss (packing isolation), so their throughputs compare.
    _, info_packed = model(packed)
    _, info_padded = model(padded)
    assert float(abs(info_packed["per_example_loss"] - info_padded["per_example_loss"]).max()) < 1e-4


@pytest.mark.slow
def test_benchmark_writes_its_result(tmp_path, load_benchmark):
    bench = load_benchmark("packing")
    out = tmp_path / "packing.json"
    small = (
        "model.overrides={d_model: 64, n_heads: 2, head_dim: 32, mlp_dim: 128, encoder_layers: 1, decoder_layers: 1,"
        " text_vocab_size: 512, image_size: 32, vit_dim: 48, vit_layers: 3, vit_heads: 2, vit_mlp_dim: 96,"
        " ast_dim: 48, ast_layers: 3, ast_heads: 2, ast_mlp_dim: 96, audio_frames: 64, max_encoder_len: 192,"
        " max_decoder_len: 96, max_text_target_len: 32, audio_target_tokens: 32, image_target_tokens: 16}"
    )
    code = bench.main(
        [
            "--steps",
            "1",
            "--batch",
            "8",
            "--precision",
            "fp32",
            "--out",
            str(out),
            "data.envs=[uio2/Reach-v0]",
            "data.episodes_per_env=1",
            "data.image_size=32",
            small,
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["packed"]["useful_tokens"] == result["padded"]["useful_tokens"] > 0
    assert result["packed"]["rows_per_batch"] < result["padded"]["rows_per_batch"] == 8
    assert result["speedup"] == pytest.approx(
        result["packed"]["useful_tokens_per_s"] / result["padded"]["useful_tokens_per_s"]
    )
