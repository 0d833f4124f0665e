"""Make a complete policy checkpoint from parts: used by tests, the demo and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agent.policy import PolicyConfig
from model.configuration import ModelConfig
from model.modeling import UnifiedIO
from model.processor import Processor
from model.tokenizers import ActionStats, TextTokenizer


def build_untrained_checkpoint(
    directory: str | Path,
    texts: list[str],
    action_low: np.ndarray,
    action_high: np.ndarray,
    preset: str = "tiny",
    seed: int = 0,
    policy: PolicyConfig | None = None,
    **model_overrides,
) -> Path:
    """A freshly initialised model with a text BPE trained on ``texts`` and uniform action statistics.

    Untrained weights act at random, but every file a real checkpoint has is there, so
    the serving, bridging and evaluation paths can run end to end on it.
    """
    torch.manual_seed(seed)
    config = ModelConfig.preset(preset, **model_overrides)
    low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
    corners = np.stack([low, high, (low + high) / 2])
    stats = ActionStats.from_actions(
        np.concatenate([corners, np.random.default_rng(seed).uniform(low, high, (256, len(low)))])
    )
    text = TextTokenizer.train_bpe(texts, vocab_size=min(config.text_vocab_size, 512), min_frequency=1)
    processor = Processor(config, text_tokenizer=text, action_stats=stats)
    model = UnifiedIO(config)
    directory = Path(directory)
    model.save_pretrained(directory, processor)
    policy = policy or PolicyConfig()
    policy.action_low, policy.action_high = low.tolist(), high.tolist()
    policy.save(directory)
    return directory
