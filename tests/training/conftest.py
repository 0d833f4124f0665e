"""Shared fixtures for training tests: real expert rollouts (recorded once) and a very small model config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from training.config import load_config
from training.configuration import DataConfig, TrainConfig
from training.sources import collect_rollouts

# A model small enough that a CI step takes a fraction of a second on 2 cores (the tiny preset is ~3M params).
SMALL_MODEL = (
    "model.overrides={d_model: 64, n_heads: 2, head_dim: 32, mlp_dim: 128, encoder_layers: 2, decoder_layers: 2,"
    " text_vocab_size: 512, image_size: 32, vit_dim: 48, vit_layers: 3, vit_heads: 2, vit_mlp_dim: 96,"
    " ast_dim: 48, ast_layers: 3, ast_heads: 2, ast_mlp_dim: 96, audio_frames: 64, resampler_layers: 1,"
    " image_history_latents: 8, audio_history_latents: 4, max_encoder_len: 192, max_decoder_len: 96,"
    " max_text_target_len: 32, audio_target_tokens: 32, image_target_size: 32, image_target_tokens: 16}"
)


def small_config(out_dir, *overrides: str) -> TrainConfig:
    """A TrainConfig for tests: the small model, CSV logs, fp32 (bit-stable), no progress bar."""
    return load_config(
        TrainConfig,
        None,
        [
            SMALL_MODEL,
            f"out_dir={out_dir}",
            "logger.name=csv",
            "trainer.progress_bar=false",
            "trainer.precision=32-true",
            "trainer.batch_size=4",
            "trainer.log_every_n_steps=1",
            "model.text_corpus_examples=200",
            "optim.lr=0.1",
            "schedule.warmup_steps=5",
            "data.image_size=32",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def make_config():
    """small_config as a fixture (test modules cannot import this conftest by name)."""
    return small_config


@pytest.fixture(scope="session")
def rollouts():
    """Four real expert demonstrations (Reach, Push) from our MuJoCo suite, 32x32 scene camera."""
    return collect_rollouts(
        DataConfig(envs=["uio2/Reach-v0", "uio2/Push-v0"], episodes_per_env=2, rollout_seed=0, image_size=32)
    )


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("packing")``: a script of benchmarks/ imported as a module (it is no package)."""

    def load(name: str):
        path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
