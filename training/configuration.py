"""TrainConfig: everything a training run needs, as nested dataclasses (YAML + ``a.b=c`` overrides).

    cfg = load_config(TrainConfig, "configs/tiny.yaml", ["trainer.max_steps=50", "optim.lr=3e-3"])

Defaults are the tiny CPU run; ``configs/base.yaml`` is the GPU one. The model
section names a ``ModelConfig`` preset and overrides individual fields of it, so a
config file stays short and a preset change reaches every run that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Default task mixture: relative weights, normalised when sampling. Families that
# need an image tokenizer (depth, segmentation, next-frame, goal image) are dropped
# with a logged reason when the model has none.
DEFAULT_MIXTURE: dict[str, float] = {
    "action": 4.0,
    "action_speech": 1.0,
    "caption": 1.0,
    "vqa": 1.5,
    "refexp": 1.0,
    "pointing": 0.5,
    "boxes3d": 0.5,
    "camera_pose": 0.25,
    "detection": 0.5,
    "asr": 0.5,
    "tts": 0.25,
    "activity": 0.5,
    "depth": 0.25,
    "segmentation": 0.25,
    "next_frame": 0.25,
    "goal_image": 0.25,
}


@dataclass
class ModelSection:
    preset: str = "tiny"
    # Field overrides on top of the preset, e.g. {"d_model": 128, "n_layers": 2}.
    overrides: dict[str, Any] = field(default_factory=dict)
    # Trained VQ-GAN folders (helper "vqgan": model/vqgan.py, model/audio_vqgan.py). Without them the
    # image- and audio-target task families are skipped with a logged reason.
    image_tokenizer: str | None = None
    audio_tokenizer: str | None = None
    text_corpus_examples: int = 2000  # examples drawn to train the text BPE of a fresh model


@dataclass
class DataConfig:
    # Live expert rollouts in our suite: how many episodes per task env, from which seed.
    envs: list[str] = field(default_factory=lambda: ["uio2/Reach-v0", "uio2/Push-v0"])
    episodes_per_env: int = 4
    rollout_seed: int = 0
    image_size: int = 64
    # A LeRobotDataset v3 folder or robomimic/LIBERO HDF5 file (fine-tuning), or a list of them
    # (their episodes are pooled); replaces rollouts when set.
    dataset: str | list[str] | None = None
    camera: str = "scene"  # the camera whose frames the model sees ("scene" falls back to a dataset's first)
    # Task family -> relative weight (see training/tasks/__init__.py for the families).
    mixture: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIXTURE))
    history: int = 2  # previous frames given as image_history
    # Indices of the state features the model reads (None: all); saved in the checkpoint's policy.json.
    state_dims: list[int] | None = None
    # Random-shift augmentation of action examples' frames, up to this many pixels (0: off).
    random_shift: int = 0
    # How actions are written: "native" bins each dimension as the dataset stores it; "camera" writes
    # absolute waypoints [x, y, z, ...] as the target's pixel in ``camera`` (row, column fractions)
    # plus its height (model/action_frame.py), so the pointer readout that points also acts.
    action_frame: Literal["native", "camera"] = "native"
    # With action_frame=camera: the index, among the state features the model reads (state_dims),
    # where the hand's [x, y, z] in the waypoints' frame begins. Its pixel joins the image patches the
    # pointer can look at (model/pointer.py), so "the hand, moved a little" (a drawer's stroke) and
    # "where the hand is" (a grasp, a lift) are written from the state, not found in the picture.
    state_point: int | None = None
    # Which labels are the actions: "action" as recorded; "waypoint" the dataset's recorded waypoint
    # feature (our experts record it beside velocity actions); "keyframes" waypoints found in the
    # trajectory (training/keyframes.py) for datasets with low-level actions only.
    action_labels: Literal["action", "waypoint", "keyframes"] = "action"
    # What an action means to the env (saved in policy.json; `uio2 eval` drives the env so):
    # "velocity" (per-step deltas) or "waypoint" (absolute targets, our suite's waypoint mode).
    control: Literal["velocity", "waypoint"] = "velocity"
    # Which frames action examples are made from: "uniform" (every frame alike) or "distance", for
    # waypoint labels: in proportion to how far the hand still is from its waypoint (at least 2 cm;
    # needs state[:3] and action[:3] in one frame, as in our suite). Uniform frames let a policy learn
    # "the waypoint is where the hand already is", true on most frames of a demonstration and wrong
    # on the first: measured on Reach, the pointer learned to look at the hand, not the named object.
    action_frames: Literal["uniform", "distance"] = "uniform"
    # With "distance": the frames where the gripper's label turns (a grasp, a release) weigh as a
    # frame this many metres from its waypoint (training/tasks/base.py GRIPPER_TURN_DISTANCE).
    gripper_turn_distance: float = 0.1
    # Append the waypoint commanded one step before to the state (training/keyframes.py:
    # with_previous_action; the policy feeds back its own last command): D more state features,
    # after the dataset's own, for state_dims to select. Waypoint labels only.
    previous_action: bool = False
    # How many of the last waypoints reached it appends, the latest first (training/keyframes.py
    # with_previous_action says why 2): depth * D state features.
    previous_action_depth: int = 1
    # Copycat features hidden from a share of action examples: with probability ``state_dropout``
    # the state features ``state_dropout_dims`` (indices into the full state, as state_dims) are set
    # to the middle of their range, which the model reads as 0 (ChauffeurNet's past-motion dropout,
    # Bansal et al. 2018): a policy that copies the fingers' opening into its gripper command never
    # lets go. On the demo (dims [6, 11] at 0.5, seeds 1 / 2) it gained nothing: 30% / 44% against
    # 41% / 38%, and the releases were still not learned (see action_loss_weights).
    state_dropout_dims: list[int] | None = None
    state_dropout: float = 0.0
    # K future actions per target; None = the model preset's action_chunk_size (must match a loaded checkpoint's).
    chunk_size: int | None = None
    # Share of action examples whose instruction is spoken; None = the mixture's action/action_speech weights.
    speech_prob: float | None = None
    packing: bool = True
    # How the loss averages a batch: over scored tokens ("token") or over examples, each example's
    # tokens sharing one example's weight ("example"). By tokens, one spoken-answer example (512
    # audio codes) outweighs a hundred points (2 tokens each), so the mixture's weights do not say
    # what is learned: in the demo's pipeline (benchmarks/waypoint_proxy.py, 600 steps) the pointer
    # reached 4.5 px on pointing and refexp alone, 15.8 px once action examples (16 tokens each)
    # joined them, and 6.6 px with those weighed by examples.
    loss_weighting: Literal["token", "example"] = "token"
    # Per action dimension, how much its tokens weigh in an action example's loss (None: alike),
    # e.g. [1, 1, 1, 3] for x, y, z, gripper. With loss_weighting "example" the example's weight is
    # shared out in these proportions. The gripper's label turns on a few frames, and a policy whose
    # gripper token had not yet learned the release (P(open) 0.3 at the frame where the
    # demonstration opens, seed 1) carried the cube to the bin and held it there. On the demo
    # [1, 1, 1, 3] made seeds 1 / 2 let go (38% -> 53%, 43% -> 54%) but seed 0 fell 62% -> 42%:
    # the x and y tokens lost share and the drop points got worse ([2, 2, 1, 3], seed 0: 56%).
    action_loss_weights: list[float] | None = None
    # Mixture of denoisers (training/denoisers.py): objective weights per target modality, e.g.
    # {text: {R: 0.4, S: 0.4, X: 0.2}, image: {R: 0.5, S: 0.5}}; null = the denoisers' defaults.
    denoiser_weights: dict[str, dict[str, float]] | None = None
    denoise_fraction: float = 0.5  # share of supervised examples rewritten as a denoising objective
    num_workers: int = 0
    # Action statistics: recompute from the data (True) or reuse the checkpoint's (fine-tuning).
    recompute_stats: bool = True


@dataclass
class OptimConfig:
    name: Literal["adafactor", "adamw"] = "adafactor"
    lr: float = 1e-2
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW
    beta2_decay: float = -0.8  # Adafactor: UIO-2's decay rate 0.8
    grad_clip: float = 1.0
    # Checkpoints hold an exponential moving average of the weights with this decay (0: the weights
    # themselves; training/ema.py). Not with strategy fsdp, whose shards the average cannot follow.
    ema_decay: float = 0.0


@dataclass
class ScheduleConfig:
    # Linear warmup to optim.lr, then lr * sqrt(warmup / step) (UIO-2's 1/sqrt decay); "constant" after warmup.
    name: Literal["rsqrt", "constant"] = "rsqrt"
    warmup_steps: int = 10
    # The last fraction of trainer.max_steps decays the lr linearly to 0 (a warmup-stable-decay
    # cooldown, Hu et al. 2024 / Hägele et al. 2024): short runs gain most of a longer run's loss from it.
    decay_fraction: float = 0.0


@dataclass
class TrainerConfig:
    max_steps: int = 200
    batch_size: int = 8  # global batch, split across devices
    precision: Literal["bf16-mixed", "32-true", "16-mixed"] = "bf16-mixed"
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    log_every_n_steps: int = 5
    checkpoint_every_n_steps: int = 100
    progress_bar: bool = True
    # torch intra-op CPU threads (None = torch's default). 1 on a shared CPU: oversubscribed threads
    # made tiny-model steps 5-30x slower here (tests/conftest.py sets 1 for the same reason).
    num_threads: int | None = None
    freeze_encoders: bool = (
        False  # fine-tuning: keep the input encoders (ViT, AST) fixed, as UIO-2 froze its ViT
    )
    # Stop with an error after this many consecutive non-finite losses (a diverged run, not a bad batch).
    max_consecutive_nonfinite: int = 20


@dataclass
class LoggerConfig:
    name: Literal["wandb", "csv", "none"] = "wandb"
    project: str = "uio2-embodied"
    run_name: str | None = None
    # wandb stays offline unless the user asks for online (and is logged in); falls back to CSV if wandb fails.
    offline: bool = True
    log_media_every_n_steps: int = 100


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    out_dir: str = "runs/tiny"
    seed: int = 0
    resume: bool = True  # continue from out_dir's last checkpoint when there is one
    init_from: str | None = None  # a save_pretrained checkpoint to start from (fine-tuning)
