"""Log-mel front end, Griffin-Lim inverse and WAV I/O (model/audio.py)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from model import audio


def _tones(seconds: float = 2.0, f0: float = 220.0) -> np.ndarray:
    """A speech-like harmonic tone with a gliding pitch and an amplitude envelope."""
    t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))) / audio.SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.3 * x * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)).astype(np.float32)


def test_log_mel_shapes_fixed_clip_and_batch():
    wav = _tones()
    mel = audio.log_mel_spectrogram(wav)
    assert mel.shape == (audio.N_MELS, audio.N_FRAMES) == (128, 256)
    assert mel.dtype == torch.float32
    batch = audio.log_mel_spectrogram(np.stack([wav, wav[::-1].copy()]))
    assert batch.shape == (2, 128, 256)
    torch.testing.assert_close(batch[0], mel)
    assert audio.log_mel_spectrogram(wav, fit=False).shape == (128, len(wav) // audio.HOP_LENGTH)
    # Padding is silence: the frames past the 2 s signal sit at the floor.
    assert torch.allclose(mel[:, -20:], torch.full_like(mel[:, -20:], audio.LOG_FLOOR))


def test_slaney_mel_scale_and_filterbank():
    assert audio._hz_to_mel(1000.0) == pytest.approx(15.0)
    hz = np.array([0.0, 300.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(audio._mel_to_hz(audio._hz_to_mel(hz)), hz, atol=1e-6)
    fb = audio.mel_filterbank()
    assert fb.shape == (128, 513) and (fb >= 0).all()
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all(), "filter centres must rise with the mel index"


def test_pure_tone_lands_in_its_mel_band():
    t = np.arange(audio.CLIP_SAMPLES) / audio.SAMPLE_RATE
    mel = audio.log_mel_spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    band = int(mel[:, 100].argmax())
    centres = audio._mel_to_hz(np.linspace(audio._hz_to_mel(0), audio._hz_to_mel(8000), 130))[1:-1]
    assert abs(centres[band] - 1000) < 60, f"1 kHz tone peaked in the band centred at {centres[band]:.0f} Hz"


def test_griffin_lim_inverse_reproduces_the_spectrogram():
    mel = audio.log_mel_spectrogram(_tones())
    wav = audio.log_mel_to_waveform(mel, n_iter=32)
    assert wav.shape == (audio.CLIP_SAMPLES,) and wav.dtype == np.float32
    assert np.abs(wav).max() <= 1.0
    again = audio.log_mel_spectrogram(wav)
    loud = mel > mel.max() - 6  # bins within ~26 dB of the peak: what you hear
    err = (again - mel)[loud].abs().mean().item()
    noise = audio.log_mel_spectrogram(
        np.random.default_rng(0).normal(0, 0.05, audio.CLIP_SAMPLES).astype("f4")
    )
    assert err < 0.5, f"log-mel error after Griffin-Lim {err:.3f} nats"
    assert err < 0.25 * (noise - mel)[loud].abs().mean().item()


@pytest.mark.parametrize(
    ("bad", "kwargs", "match"),
    [
        (np.zeros(1000, np.float32), {"sample_rate": 22050}, "22050"),
        (np.zeros((2, 3, 1000), np.float32), {}, r"\(2, 3, 1000\)"),
        (np.zeros(1000, np.int16), {}, "int16"),
        (np.full(1000, np.nan, np.float32), {}, "finite"),
    ],
)
def test_log_mel_rejects_bad_input_with_a_clear_message(bad, kwargs, match):
    with pytest.raises(ValueError, match=match):
        audio.log_mel_spectrogram(bad, **kwargs)


def test_wav_round_trip_and_header(tmp_path):
    wav = _tones(0.5)
    path = audio.write_wav(tmp_path / "sub" / "tone.wav", wav)
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()) == (
            1,
            2,
            16000,
            len(wav),
        )
    back = audio.read_wav(path)
    np.testing.assert_allclose(back, wav, atol=1.0 / 32767)


def test_read_wav_rejects_the_wrong_sample_rate(tmp_path):
    path = audio.write_wav(tmp_path / "fast.wav", _tones(0.1), sample_rate=22050)
    with pytest.raises(ValueError, match="22050"):
        audio.read_wav(path)
    assert audio.read_wav(path, expected_sample_rate=None).shape == (int(0.1 * 16000),)
