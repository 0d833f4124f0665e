"""Spoken instruction -> text (ASR) and text -> speech (an audio target), on the instructions we speak.

Speech comes from the episode's own recording, or envs.speech.synthesize
(espeak-ng, offline). Text -> speech needs an audio tokenizer to turn the target
into codes; without one the family is skipped with a logged reason.
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import AUDIO_TOKENIZER, SPEECH, TaskContext, TaskFamily, speech_of
from training.tasks.templates import prompt


def make_asr(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    audio = speech_of(ep, ctx)
    if audio is None or not ep.instruction:
        return None
    return Example(
        target="text",
        target_value=ep.instruction,
        text=prompt("asr", rng),
        audio=audio,
        meta={"task": "asr", "source": ep.source, "episode": ep.index},
    )


def make_tts(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    audio = speech_of(ep, ctx)
    if audio is None or not ep.instruction:
        return None
    return Example(
        target="audio",
        target_value=audio,
        text=prompt("tts", rng, text=ep.instruction),
        meta={"task": "tts", "source": ep.source, "episode": ep.index},
    )


FAMILIES = [
    TaskFamily("asr", make_asr, frozenset({SPEECH})),
    TaskFamily("tts", make_tts, frozenset({SPEECH, AUDIO_TOKENIZER}), target="audio"),
]
