"""Build a fresh model and processor for a run: text BPE on the task mixture's own text, action statistics.

Nothing can be downloaded, so the text tokenizer is a byte-level BPE trained on
the prompts, answers and instructions the mixture will produce (location tokens are
single vocabulary entries already and are cut out of the corpus first).
"""

from __future__ import annotations

import logging
import re

from model.configuration import ModelConfig
from model.tokenizers.text import TextTokenizer
from training.configuration import ModelSection
from training.episodes import EpisodeData
from training.tasks.templates import TEMPLATES

log = logging.getLogger(__name__)
SPECIAL = re.compile(r"<(loc|extra_id)_\d+>|\{[a-z_]+\}")


def model_config(section: ModelSection, chunk_size: int | None = None) -> ModelConfig:
    """The preset named in the config, with its field overrides (and data.chunk_size) applied."""
    overrides = dict(section.overrides)
    if chunk_size is not None:
        overrides["action_chunk_size"] = chunk_size
    try:
        return ModelConfig.preset(section.preset, **overrides)
    except TypeError as e:  # an unknown keyword
        raise ValueError(f"model.overrides: {e}") from e


def text_corpus(examples, episodes: list[EpisodeData]) -> list[str]:
    """Every prompt, text target and instruction the run will see, special tokens removed."""
    texts = [t for options in TEMPLATES.values() for t in options]
    texts += [ep.instruction for ep in episodes if ep.instruction]
    for ex in examples:
        if ex.text:
            texts.append(ex.text)
        if ex.target == "text":
            texts.append(ex.target_value)
    return [SPECIAL.sub(" ", t) for t in texts]


def train_text_tokenizer(texts: list[str], vocab_size: int) -> TextTokenizer:
    # min_frequency=1: a small corpus, and every word in it is one the model must write.
    return TextTokenizer.train_bpe(texts, vocab_size=vocab_size, min_frequency=1)
