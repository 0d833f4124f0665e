"""Checkpoints: safetensors weights + plain-file config, vocabulary, tokenizers and action statistics.

    model.save_pretrained("ckpt", processor)      # writes the files below
    model, processor = load_pretrained("ckpt")

Files: model.safetensors, config.json, vocabulary.json, text_tokenizer.json + text_bpe.json or
text_spm.model, action_stats.json. Loading never unpickles (no torch.load).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from model.configuration import ModelConfig
from model.processor import VOCAB_FILE, Processor
from model.vocabulary import Vocabulary

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_pretrained(model, directory: str | Path, processor: Processor | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / WEIGHTS_FILE), metadata={"format": "pt"})
    model.config.save(d / CONFIG_FILE)
    model.vocab.save(d / VOCAB_FILE)
    if processor is not None:
        processor.save_pretrained(d)
    return d


def load_model(directory: str | Path, map_location: str | torch.device = "cpu"):
    from model.modeling import UnifiedIO

    d = Path(directory)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (d / name).exists():
            raise FileNotFoundError(f"checkpoint {d} has no {name}")
    config = ModelConfig.load(d / CONFIG_FILE)
    if (d / VOCAB_FILE).exists():
        Vocabulary.load(d / VOCAB_FILE).check_config(config)
    model = UnifiedIO(config)
    state = load_file(str(d / WEIGHTS_FILE), device=str(map_location))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {d} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(map_location)


def load_pretrained(directory: str | Path, map_location: str | torch.device = "cpu"):
    """(UnifiedIO, Processor) from a save_pretrained directory."""
    model = load_model(directory, map_location)
    return model, Processor.from_pretrained(directory, model.config)
