"""How a TrayGoalEnv turns what the sim shows into observations and goals, one class per mode.

Each observer maps a true state (state mode) or a task camera image (latent, pixel) to a vector, the policy's
observation and the achieved goal alike (unless EnvConfig.policy_observation gives the policy the true state), and
scores achieved against desired goals with the one reward function the reward node uses too:
ssl_robot.rewards.functions.latent_distance_reward, -scale * |a - d|."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from ssl_robot.images import model_input, resize_rgb
from ssl_robot.inference.model_holder import CHECKPOINTS_DIR
from ssl_robot.models.checkpoint import CheckpointError, load_checkpoint
from ssl_robot.models.registry import VAE_FAMILY, method_spec, methods_of
from ssl_robot.models.vae import CCVAE
from ssl_robot.rewards.functions import latent_distance_reward
from ssl_robot.rl.tasks import WORKSPACE_HALF_EXTENT_M, EnvConfig, state_dim


class Observer(ABC):
    """Observations, goals and rewards of one mode."""

    needs_image = True
    dim: int
    """Length of an observation / goal vector."""
    reward_scale = 1.0
    bound = np.inf
    """Largest absolute value an observation entry can take (for the observation space)."""

    def start_episode(self, first_image: np.ndarray | None) -> None:
        """Called with the episode's first task camera image (None in state mode) before anything is encoded."""

    @abstractmethod
    def encode(self, image: np.ndarray | None, state: np.ndarray) -> np.ndarray:
        """(dim,) float32 vector of one observation: image (H, W, 3) uint8, state = tasks.state_vector."""

    def reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Rewards of achieved against desired goals, (N,) for (N, dim) rows or a float64 0-d array for one."""
        return latent_distance_reward(achieved, desired, scale=self.reward_scale)

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, dim) goals imagined from the prior: the goals relabelling draws as 'prior'."""
        raise ValueError(f'{type(self).__name__} has no goal prior')


class StateObserver(Observer):
    """The oracle: true positions relative to the workspace centre, the puck's scaled by
    EnvConfig.state_puck_weight."""

    needs_image = False
    bound = 1.0

    def __init__(self, config: EnvConfig) -> None:
        self.task = config.task
        self.dim = state_dim(config.task)
        self._weights = np.ones(self.dim, np.float32)
        self._weights[2:] = config.state_puck_weight

    def encode(self, image: np.ndarray | None, state: np.ndarray) -> np.ndarray:
        return state.astype(np.float32) * self._weights

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Goal states drawn uniformly over the workspace (the oracle's analogue of the VAE prior)."""
        goals = rng.uniform(-WORKSPACE_HALF_EXTENT_M, WORKSPACE_HALF_EXTENT_M, (count, self.dim))
        return goals.astype(np.float32) * self._weights


class PixelObserver(Observer):
    """The downsampled RGB image in [0, 1]; reward -|x - g| / sqrt(dim), minus the RMS pixel error, which ranks
    states exactly as the pixel MSE does."""

    bound = 1.0

    def __init__(self, config: EnvConfig) -> None:
        self.size = config.pixel_size
        self.dim = 3 * self.size * self.size
        self.reward_scale = 1.0 / float(np.sqrt(self.dim))

    def encode(self, image: np.ndarray | None, state: np.ndarray) -> np.ndarray:
        small = resize_rgb(image, self.size)
        return (small.astype(np.float32) / 255.0).reshape(-1)


def load_task_vae(path: Path, image_size: int) -> torch.nn.Module:
    """A betavae or ccvae checkpoint that takes image_size RGB images, on the CPU; anything else is refused with
    a CheckpointError naming the file and what does not fit."""
    model, header = load_checkpoint(path, device='cpu')
    if method_spec(header.method).family != VAE_FAMILY:
        raise CheckpointError(f'{path} is a {header.method!r} checkpoint; latent mode needs one of '
                              f'{methods_of(VAE_FAMILY)}')
    config = model.config
    if config.image_size != image_size or config.channels != 3:
        raise CheckpointError(f'{path} takes {config.channels}-channel {config.image_size} px images, but the env '
                              f'renders 3-channel {image_size} px images (EnvConfig.image_size)')
    return model


class LatentObserver(Observer):
    """The VAE posterior mean: mu(s) for a beta-VAE (RIG), mu(s | s0) for a CC-VAE conditioned on the episode's
    first image s0 (CC-RIG). Prior goals are z ~ N(0, I), for the CC-VAE under the episode's context. Images are the
    model's input as training made it (images.model_input), so a camera rendered larger than the VAE takes is
    area-downsampled first, as the bags the VAE trained on were."""

    def __init__(self, config: EnvConfig, model: torch.nn.Module) -> None:
        self.model = model
        self.dim = model.config.latent_dim
        self._context: torch.Tensor | None = None

    @property
    def conditional(self) -> bool:
        return isinstance(self.model, CCVAE)

    def start_episode(self, first_image: np.ndarray | None) -> None:
        if self.conditional:
            self._context = self.model.context(model_input(first_image, self.model.config.image_size))

    def encode(self, image: np.ndarray | None, state: np.ndarray) -> np.ndarray:
        states = model_input(image, self.model.config.image_size)
        if self.conditional:
            latent = self.model.encode_in_context(states, self._context)
        else:
            latent = self.model.encode(states)
        return latent[0].numpy().astype(np.float32)

    def sample_prior_goals(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((count, self.dim)).astype(np.float32)


def default_vae_checkpoint(task: str) -> Path:
    """The shipped VAE of a task's camera images."""
    return CHECKPOINTS_DIR / f'rl_{task}_vae.safetensors'


def vae_checkpoint_path(config: EnvConfig) -> Path:
    """The VAE a latent-mode config encodes with: its vae_checkpoint, or the task's shipped one."""
    return Path(config.vae_checkpoint) if config.vae_checkpoint else default_vae_checkpoint(config.task)


def make_observer(config: EnvConfig, mode: str | None = None) -> Observer:
    """The observer of mode (default: config.mode), built without the sim (so the learner's process can score
    relabelled goals); latent mode loads its VAE."""
    mode = mode or config.mode
    if mode == 'state':
        return StateObserver(config)
    if mode == 'pixel':
        return PixelObserver(config)
    return LatentObserver(config, load_task_vae(vae_checkpoint_path(config), config.image_size))


def make_policy_observer(config: EnvConfig, goal_observer: Observer) -> Observer:
    """The observer of the policy's observation vector: goal_observer itself, or another mode's
    (EnvConfig.policy_observation)."""
    if config.observation_mode == config.mode:
        return goal_observer
    return make_observer(config, config.observation_mode)


def observation_space(goal_observer: Observer, policy_observer: Observer) -> spaces.Dict:
    """A TrayGoalEnv's observation space: the policy's observation, the achieved goal and the desired goal."""
    def box(observer: Observer) -> spaces.Box:
        return spaces.Box(-observer.bound, observer.bound, (observer.dim,), np.float32)
    return spaces.Dict({'observation': box(policy_observer), 'achieved_goal': box(goal_observer),
                        'desired_goal': box(goal_observer)})
