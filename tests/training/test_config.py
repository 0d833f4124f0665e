from dataclasses import dataclass, field

import pytest

from training.config import ConfigError, load_config, save_config


@dataclass
class Optim:
    lr: float = 1e-3
    name: str = "adafactor"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])


@dataclass
class Cfg:
    seed: int = 0
    optim: Optim = field(default_factory=Optim)
    tag: str | None = None
    data: str | list[str] | None = None  # one path or several (like DataConfig.dataset)


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\noptim:\n  lr: 0.01\n")
    cfg = load_config(Cfg, path, ["optim.name=adamw", "optim.betas=[0.8, 0.9]", "tag=run1"])
    assert cfg.seed == 3
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.optim.name == "adamw"
    assert cfg.optim.betas == [0.8, 0.9]
    assert cfg.tag == "run1"


def test_a_string_or_list_field_keeps_a_list_a_list():
    assert load_config(Cfg, None, ['data=["a/b", "c,d"]']).data == ["a/b", "c,d"]
    assert load_config(Cfg, None, ["data=a/b"]).data == "a/b"
    with pytest.raises(ConfigError, match="tag"):
        load_config(Cfg, None, ["tag=[1, 2]"])


def test_round_trip(tmp_path):
    cfg = load_config(Cfg, None, ["optim.lr=3e-4"])
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Cfg, tmp_path / "out.yaml") == cfg


@pytest.mark.parametrize(
    "override, message",
    [("optim.lrr=1", "lrr"), ("seed=abc", "seed"), ("optim.lr=[1]", "optim.lr"), ("nokey", "key.path=value")],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, None, [override])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(Cfg, tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "mixture, speech_prob, expected",
    [
        ({"action": 1.0, "action_speech": 1.0, "asr": 1.0}, None, "direct"),
        ({"action": 1.0, "asr": 1.0}, None, "transcribe"),  # never acted on a clip, can write one down
        ({"action": 1.0, "asr": 1.0}, 0.3, "direct"),  # speech_prob moves action weight onto clips
        ({"action": 1.0}, None, "direct"),  # no speech recognition to act on: the clip itself
    ],
)
def test_a_checkpoint_says_how_a_spoken_instruction_reaches_the_action(mixture, speech_prob, expected):
    from training.checkpoint import policy_defaults
    from training.configuration import TrainConfig

    cfg = TrainConfig()
    cfg.data.mixture, cfg.data.speech_prob = mixture, speech_prob
    assert policy_defaults(cfg)["speech_input"] == expected
