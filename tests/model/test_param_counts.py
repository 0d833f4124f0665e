"""The paper's sizes, built on the meta device: parameter counts within 5% of 1.1B / 3.2B / 6.8B."""

from __future__ import annotations

import pytest
import torch

from model.configuration import ModelConfig
from model.modeling import UnifiedIO


@pytest.mark.parametrize("name, expected", [("L", 1.1e9), ("XL", 3.2e9), ("XXL", 6.8e9)])
def test_paper_size_parameter_counts(name, expected):
    with torch.device("meta"):
        model = UnifiedIO(ModelConfig.preset(name))
    n = model.num_parameters()
    assert abs(n - expected) / expected < 0.05, (
        f"{name}: {n / 1e9:.3f}B parameters, expected {expected / 1e9}B +- 5%"
    )


def test_cpu_presets_are_small():
    with torch.device("meta"):
        sizes = [UnifiedIO(ModelConfig.preset(n)).num_parameters() for n in ("tiny", "small", "base")]
    assert sizes[0] < 5e6 and sizes[0] < sizes[1] < sizes[2]


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'huge'"):
        ModelConfig.preset("huge")
