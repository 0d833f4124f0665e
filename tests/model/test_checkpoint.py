"""save_pretrained / from_pretrained round trip: safetensors + plain files, never a pickle."""

from __future__ import annotations

import json

import pytest
import torch

from model.checkpoint import load_pretrained
from model.generation import generate
from model.modeling import UnifiedIO
from model.packing import collate


def test_save_load_round_trip(tmp_path, tiny_model, processor, examples, tiny_config):
    tiny_model.save_pretrained(tmp_path, processor)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "vocabulary.json",
        "action_stats.json",
        "text_tokenizer.json",
    } <= names
    assert not [n for n in names if n.endswith((".pt", ".pth", ".bin", ".pkl", ".ckpt"))]
    for n in names - {"model.safetensors"}:
        if n.endswith(".json"):
            json.loads((tmp_path / n).read_text())

    model, proc = load_pretrained(tmp_path)
    model.eval()
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k
    batch = collate([proc.encode_inputs(e, "action") for e in examples[:2]], tiny_config, packed=False)
    assert torch.equal(
        generate(model, batch, "action", num_tokens=8), generate(tiny_model, batch, "action", num_tokens=8)
    )
    assert proc.decode_text(proc.text.encode("pick up <loc_3>")) == "pick up <loc_3>"
    assert proc.action_tokenizer.stats.q99 == processor.action_tokenizer.stats.q99
    assert UnifiedIO.from_pretrained(tmp_path).config == tiny_config


def test_loading_a_mismatched_checkpoint_fails_clearly(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["text_vocab_size"] = 2048
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="vocabulary does not match"):
        UnifiedIO.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        UnifiedIO.from_pretrained(tmp_path / "nowhere")


def test_vqgan_tokenizers_travel_with_the_checkpoint(tmp_path, tiny_model, processor):
    from model.vqgan import ImageVQGAN, VQGANConfig

    torch.manual_seed(0)
    processor.image_tokenizer = ImageVQGAN(VQGANConfig.preset("test")).eval()
    tiny_model.save_pretrained(tmp_path, processor)
    _, proc = load_pretrained(tmp_path)
    assert isinstance(proc.image_tokenizer, ImageVQGAN) and proc.audio_tokenizer is None
    for a, b in zip(
        processor.image_tokenizer.state_dict().values(), proc.image_tokenizer.state_dict().values()
    ):
        assert torch.equal(a, b)
