"""Fixtures for the model tests: the tiny config, a BPE trained on a few prompts, a processor and a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.configuration import ModelConfig
from model.example import Example
from model.modeling import UnifiedIO
from model.processor import Processor
from model.tokenizers import ActionStats, TextTokenizer

CORPUS = [
    "pick up the red block and place it in the bowl",
    "push the green cube to the left",
    "what colour is the cube? red",
    "open the drawer",
    "press the blue button",
    "where is the yellow ball?",
] * 10


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig.preset("tiny")


@pytest.fixture(scope="session")
def text_tokenizer() -> TextTokenizer:
    return TextTokenizer.train_bpe(CORPUS, vocab_size=320)


@pytest.fixture(scope="session")
def action_stats() -> ActionStats:
    return ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (500, 4)))


@pytest.fixture()
def processor(tiny_config, text_tokenizer, action_stats) -> Processor:
    return Processor(tiny_config, text_tokenizer=text_tokenizer, action_stats=action_stats)


@pytest.fixture()
def tiny_model(tiny_config) -> UnifiedIO:
    torch.manual_seed(0)
    return UnifiedIO(tiny_config).eval()


def make_examples(seed: int = 0) -> list[Example]:
    """A mixed batch: text and action targets, every input modality somewhere."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    speech = (0.1 * rng.standard_normal(65536)).astype(np.float32)
    return [
        Example("text", "a red block", text="what is on the table?", image=img),
        Example(
            "action",
            rng.uniform(-1, 1, (4, 4)).astype(np.float32),
            text="pick up the red block",
            image=img,
            image_history=np.stack([img, img[::-1]]),
            state=rng.standard_normal(7).astype(np.float32),
            audio=speech,
        ),
        Example("text", "red", text="what colour is the cube?", audio_history=[speech]),
        Example(
            "action",
            rng.uniform(-1, 1, (4, 4)).astype(np.float32),
            text="open the drawer",
            image=img[:, ::-1].copy(),
        ),
    ]


@pytest.fixture()
def examples() -> list[Example]:
    return make_examples()
