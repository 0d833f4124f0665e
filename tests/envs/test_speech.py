"""Spoken instructions: espeak-ng at 16 kHz, several voices and speeds, cached."""

from __future__ import annotations

import numpy as np
import pytest

from envs import speech


def test_synthesize_16khz_float_in_range():
    wave = speech.synthesize("pick up the red cube")
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.5 * speech.SAMPLE_RATE < len(wave) < 3 * speech.SAMPLE_RATE  # about a second of speech
    assert np.abs(wave).max() <= 1.0 and np.abs(wave).max() > 0.1


def test_voices_and_speeds_differ():
    text = "open the drawer"
    waves = {v: speech.synthesize(text, voice=v) for v in speech.VOICES[:3]}
    assert len({w.tobytes() for w in waves.values()}) == 3
    slow, fast = speech.synthesize(text, speed=130), speech.synthesize(text, speed=190)
    assert len(slow) > 1.2 * len(fast)


def test_cache_returns_the_same_read_only_array(tmp_path, monkeypatch):
    monkeypatch.setenv("UIO2_SPEECH_CACHE", str(tmp_path))
    speech._synthesize.cache_clear()
    a = speech.synthesize("press the blue button", voice="en+f2", speed=160)
    assert list(tmp_path.glob("*.npy"))  # and on disk
    b = speech.synthesize("press the blue button", voice="en+f2", speed=160)
    assert a is b and not a.flags.writeable
    speech._synthesize.cache_clear()
    np.testing.assert_array_equal(speech.synthesize("press the blue button", voice="en+f2", speed=160), a)


def test_pad_or_cut():
    assert speech.pad_or_cut(np.ones(10, np.float32), 16).tolist() == [1.0] * 10 + [0.0] * 6
    assert speech.pad_or_cut(np.ones(100, np.float32), 16).shape == (16,)


@pytest.mark.parametrize("text, speed, match", [("", 160, "non-empty"), ("hi", 10, "speed")])
def test_bad_input(text, speed, match):
    with pytest.raises(ValueError, match=match):
        speech.synthesize(text, speed=speed)
