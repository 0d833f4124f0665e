"""Bad inputs fail early with errors that name the value and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from model.configuration import ModelConfig
from model.example import Example
from model.packing import collate


def test_wrong_image_shape_or_dtype(processor):
    with pytest.raises(ValueError, match=r"HxWx3 uint8, got \(64, 64\) float32"):
        processor.image_tensor(np.zeros((64, 64), np.float32))
    ex = Example("text", "x", image=np.zeros((8, 8, 3), np.uint8))
    ex.image = np.zeros((8, 8, 3), np.float64)  # mutated after construction: the processor re-validates
    with pytest.raises(ValueError, match=r"float64"):
        processor.encode(ex)


def test_wrong_audio_rate(processor):
    ex = Example("text", "x", audio=np.zeros(44100, np.float32), meta={"sample_rate": 44100})
    with pytest.raises(ValueError, match="44100 Hz"):
        processor.encode(ex)


def test_too_many_history_frames(processor, tiny_config):
    n = tiny_config.max_image_history + 1
    ex = Example("text", "x", image_history=np.zeros((n, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=f"{n} frames.*at most {tiny_config.max_image_history}"):
        processor.encode(ex)
    audio = [np.zeros(1000, np.float32)] * (tiny_config.max_audio_history + 1)
    with pytest.raises(ValueError, match="at most"):
        processor.encode(Example("text", "x", audio_history=audio))


def test_unknown_modality(processor, tiny_model, examples):
    with pytest.raises(ValueError, match="'video'"):
        Example("video", None)
    with pytest.raises(ValueError, match="'video'"):
        tiny_model.generate_from_examples(processor, examples[:1], target="video")
    with pytest.raises(ValueError, match="'video'"):
        processor.vocab.output_range("video")


def test_action_target_of_the_wrong_shape(processor):
    with pytest.raises(ValueError, match=r"K=4, D=4"):
        processor.encode(Example("action", np.zeros((3, 4), np.float32)))


def test_state_too_long(processor, tiny_config):
    with pytest.raises(ValueError, match="max_state_dim"):
        processor.encode(Example("text", "x", state=np.zeros(tiny_config.max_state_dim + 1, np.float32)))


def test_example_longer_than_a_row(processor, examples):
    cfg = ModelConfig.preset("tiny", max_encoder_len=8)
    with pytest.raises(ValueError, match="encoder"):
        collate([processor.encode(e) for e in examples], cfg)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="image_size 60"):
        ModelConfig.preset("tiny", image_size=60)
    with pytest.raises(ValueError, match="image_patch_keep"):
        ModelConfig.preset("tiny", image_patch_keep=0.0)
    with pytest.raises(ValueError, match="3 frames = audio_patch_frames"):
        ModelConfig.preset("tiny", audio_patch_size=128, audio_patch_frames=3)
    with pytest.raises(ValueError, match="audio_conv_stem needs square"):
        ModelConfig.preset("tiny", audio_patch_size=128, audio_patch_frames=2, audio_conv_stem=True)
