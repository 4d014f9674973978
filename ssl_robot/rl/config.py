"""The RL training config: RLConfig, with the env's EnvConfig and the relabelling fractions nested in it, read
from YAML with command-line overrides, as the representation-training configs are (ssl_robot.train.config).

    # config/rl/reach_rig.yaml
    total_steps: 50000
    env: {mode: latent, vae_checkpoint: ssl_robot/checkpoints/rl_reach_vae.safetensors}
    relabel: {prior_fraction: 0.5, future_fraction: 0.4}

The env name on the command line (TrayReach, TrayPush) sets env.task. Unknown keys and values of the wrong type
are errors naming the key, the value and the file or override they came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ssl_robot.rewards.relabel import LatentRelabelConfig
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.train.config import read_yaml_mapping
from ssl_robot.train.errors import TrainError
from ssl_robot.typed_config import ConfigError, build, convert_fields, parse_override, to_plain, with_override

# Env names of the command line and the Gymnasium registry -> EnvConfig.task.
ENV_TASKS = {'TrayReach': 'reach', 'TrayPush': 'push'}


@dataclass(frozen=True, kw_only=True)
class RLConfig:
    """One goal-conditioned RL training run: SAC or TD3 with RIG's relabelling over TrayGoalEnv. Steps count env
    steps summed over the parallel envs, as stable-baselines3's num_timesteps does."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The training env; evaluation runs the same env with held-out true goal states."""
    algo: Literal['sac', 'td3'] = 'sac'
    """The off-policy learner (stable-baselines3)."""
    seed: int = 0
    """Seeds the networks, the replay sampling and the envs (env i gets seed + i)."""
    total_steps: int = 20_000
    """Env steps to train for; rerunning a finished run with more continues it."""
    n_envs: int = 2
    """Envs stepped in parallel."""
    vec_env: Literal['subproc', 'dummy'] = 'subproc'
    """subproc: one process per env (SubprocVecEnv); dummy: all in this process (DummyVecEnv), for tests."""
    learning_starts: int = 1000
    """Env steps of random actions before the first update; must cover a whole episode, since relabelling
    samples only finished episodes."""
    batch_size: int = 256
    """Transitions per update."""
    buffer_size: int = 100_000
    """Transitions the replay buffer holds."""
    lr: float = 1e-3
    """Adam learning rate of actor, critics and (SAC) the entropy coefficient."""
    gamma: float = 0.95
    """Discount factor."""
    tau: float = 0.05
    """Polyak coefficient of the target networks."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    train_freq: int = 1
    """Vec env steps (each n_envs env steps) between rounds of updates."""
    gradient_steps: int = -1
    """Updates per round; -1: as many as env steps were collected (one update per env step, whatever n_envs)."""
    relabel: LatentRelabelConfig = field(default_factory=LatentRelabelConfig)
    """Shares of each batch whose goals come from the prior and from the episode's future (the rest keep the
    rollout's goal); RIG's 0.5 / 0.4 by default. Pixel mode has no prior: set prior_fraction 0."""
    eval_every: int = 2000
    """Env steps between evaluations on held-out true goals (each appended to RUN/curve.json); 0: none."""
    eval_episodes: int = 20
    """Held-out goals per evaluation."""
    checkpoint_every: int = 5000
    """Env steps between saves of everything a resume needs; 0: only the final save."""
    max_minutes: float | None = None
    """Wall-clock budget of one invocation: past it, training saves and stops cleanly. null: no budget."""
    device: Literal['auto', 'cpu', 'cuda'] = 'auto'
    """'auto': CUDA when available, else the CPU."""
    torch_threads: int = 1
    """Torch threads of the learner and of each env process (a latent env runs its VAE)."""

    def __post_init__(self) -> None:
        convert_fields(self)
        for name in ('total_steps', 'n_envs', 'batch_size', 'buffer_size', 'train_freq', 'eval_episodes',
                     'torch_threads'):
            if getattr(self, name) < 1:
                raise ValueError(f'RLConfig.{name} must be >= 1, got {getattr(self, name)}')
        for name in ('seed', 'learning_starts', 'eval_every', 'checkpoint_every'):
            if getattr(self, name) < 0:
                raise ValueError(f'RLConfig.{name} must be >= 0, got {getattr(self, name)}')
        if self.gradient_steps < 1 and self.gradient_steps != -1:
            raise ValueError(f'RLConfig.gradient_steps must be >= 1 or -1, got {self.gradient_steps}')
        for name in ('lr', 'tau'):
            if not getattr(self, name) > 0:
                raise ValueError(f'RLConfig.{name} must be > 0, got {getattr(self, name)}')
        if not 0 <= self.gamma < 1:
            raise ValueError(f'RLConfig.gamma must be in [0, 1), got {self.gamma}')
        if not self.net_arch or min(self.net_arch) < 1:
            raise ValueError(f'RLConfig.net_arch must be one or more widths >= 1, got {list(self.net_arch)}')
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f'RLConfig.max_minutes must be > 0 or null, got {self.max_minutes}')
        if self.env.mode == 'pixel' and self.relabel.prior_fraction > 0:
            raise ValueError(f'RLConfig.relabel.prior_fraction is {self.relabel.prior_fraction}, but pixel mode has '
                             f'no prior to imagine goals from: set relabel.prior_fraction: 0')
        if self.learning_starts < self.env.episode_steps * self.n_envs:
            raise ValueError(f'RLConfig.learning_starts ({self.learning_starts}) must cover one episode of every '
                             f'env (env.episode_steps * n_envs = {self.env.episode_steps * self.n_envs}): '
                             f'relabelling samples only finished episodes')


def env_task(env_name: str) -> str:
    """EnvConfig.task of an env name; an unknown name is a TrainError listing the known ones."""
    if env_name not in ENV_TASKS:
        raise TrainError(f'unknown env {env_name!r}; known envs: {", ".join(ENV_TASKS)}')
    return ENV_TASKS[env_name]


def config_from_dict(env_name: str, data: dict[str, Any]) -> RLConfig:
    """An RLConfig from plain values (a YAML document); env_name sets env.task, which the values may not contradict."""
    task = env_task(env_name)
    env_values = data.get('env') or {}
    if not isinstance(env_values, dict):
        raise TrainError(f'env must be a mapping of EnvConfig fields, got {env_values!r}')
    if env_values.get('task', task) != task:
        raise TrainError(f'the config is for task {env_values["task"]!r}, but {env_name} is task {task!r}')
    return build(RLConfig, {**data, 'env': {**env_values, 'task': task}})


def load_rl_config(env_name: str, path: Path | None = None, overrides: Sequence[str] = ()) -> RLConfig:
    """The config of path (defaults where absent) for env_name, then each `key.sub=value` override in order."""
    env_task(env_name)
    values = read_yaml_mapping(path) if path is not None else {}
    try:
        config = config_from_dict(env_name, values)
    except (ConfigError, TrainError) as err:
        raise TrainError(f'{path}: {err}' if path is not None else str(err)) from None
    for override in overrides:
        values = with_override(values, *parse_override(override))
        try:
            config = config_from_dict(env_name, values)
        except (ConfigError, TrainError) as err:
            raise TrainError(f'--set {override}: {err}') from None
    return config


def config_to_yaml(config: RLConfig) -> str:
    """The resolved config as YAML that load_rl_config reads back to an equal config."""
    return yaml.safe_dump(to_plain(config), sort_keys=False)


def config_from_plain(values: dict[str, Any]) -> RLConfig:
    """The inverse of to_plain(config), e.g. of a saved policy's header."""
    return build(RLConfig, values)
