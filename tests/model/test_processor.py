"""Processor and collate: token accounting, patch subsampling, the VQ-GAN hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.example import Example
from model.packing import collate
from model.processor import encoder_length
from model.vqgan import ImageVQGAN, VQGANConfig


def test_encoded_example_layout(processor, examples, tiny_config):
    e = processor.encode(examples[1])
    assert e.text_ids[0] == processor.vocab.prefix_id("action", "S")
    assert e.image.shape == (3, 64, 64) and e.image_history.shape == (2, 3, 64, 64)
    assert e.audio.shape == (128, 256) and e.state.shape == (tiny_config.max_state_dim,)
    start, end = processor.vocab.output_range("action")
    assert len(e.target_ids) == 16 and ((e.target_ids >= start) & (e.target_ids < end)).all()
    n = len(e.text_ids) + 16 + 2 * tiny_config.image_history_latents + 128 + 1
    assert encoder_length(e, tiny_config) == n


def test_collate_counts_tokens_and_utilisation(processor, examples, tiny_config):
    encoded = [processor.encode(e) for e in examples]
    batch = collate(encoded, tiny_config)
    st = batch["stats"]
    assert st["enc_tokens"] == int((batch["enc_segment"] > 0).sum())
    assert st["dec_tokens"] == int((batch["dec_segment"] > 0).sum())
    assert 0 < st["utilisation"] <= 1
    assert batch["enc_ids"].shape[1] <= tiny_config.max_encoder_len


def test_patch_subsampling_in_training_mode(processor, examples, tiny_config):
    processor.config = tiny_config.__class__(**{**tiny_config.to_dict(), "image_patch_keep": 0.5})
    processor.training = True
    e = processor.encode(examples[0])
    assert len(e.image_keep) == 8 and e.image_keep.unique().numel() == 8
    processor.training = False
    assert len(processor.encode(examples[0]).image_keep) == 16


def test_image_target_through_the_vqgan_hook(processor, tiny_config):
    img = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    ex = Example("image", img, text="the scene after the push")
    with pytest.raises(RuntimeError, match="image_tokenizer is None"):
        processor.encode(ex)
    torch.manual_seed(0)
    processor.image_tokenizer = ImageVQGAN(VQGANConfig.preset("test")).eval()
    e = processor.encode(ex)
    assert len(e.target_ids) == tiny_config.image_target_tokens
    assert e.target_input.shape == (3, 64, 64)
    out = processor.decode_image(e.target_ids)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_audio_target_through_the_vqgan_hook(processor, tiny_config):
    from model.audio_vqgan import AudioVQGAN, audio_config

    wave = (0.1 * np.random.default_rng(0).standard_normal(65536)).astype(np.float32)
    ex = Example("audio", wave, text="say: open the drawer")
    with pytest.raises(RuntimeError, match="audio_tokenizer is None"):
        processor.encode(ex)
    torch.manual_seed(0)
    processor.audio_tokenizer = AudioVQGAN(audio_config("test")).eval()
    e = processor.encode(ex)
    start, end = processor.vocab.output_range("audio")
    assert len(e.target_ids) == tiny_config.audio_target_tokens
    assert ((e.target_ids >= start) & (e.target_ids < end)).all() and e.target_input.shape == (128, 256)


def test_state_is_scaled_by_the_training_statistics_and_saved_with_them(tiny_config, tmp_path):
    from model.processor import Processor
    from model.tokenizers.actions import ActionStats

    states = np.array([[-0.2, 0.0, 0.01], [0.2, 0.1, 0.09]] * 50, np.float32)  # metres: tiny raw values
    proc = Processor(tiny_config, state_stats=ActionStats.from_actions(states))
    out = proc.state_tensor(np.array([0.2, 0.05, 0.05], np.float32))
    np.testing.assert_allclose(out[:3].numpy(), [1.0, 0.0, 0.0], atol=0.03)
    assert float(out[3:].abs().sum()) == 0.0  # zero padding after the features
    assert float(proc.state_tensor(np.array([99.0, 0.0, 0.0], np.float32))[0]) == 5.0  # clipped
    with pytest.raises(ValueError, match="state has 2 features but this model was trained on 3"):
        proc.state_tensor(np.zeros(2, np.float32))
    proc.save_pretrained(tmp_path)
    again = Processor.from_pretrained(tmp_path, tiny_config)
    assert again.state_stats == proc.state_stats
