"""Trained goal-conditioned policies as files that load without unpickling anything.

    save_policy('RUN/policy.safetensors', model, rl_config, env_steps)
    policy = load_policy('RUN/policy.safetensors')
    action = policy.act(obs)          # obs: {'observation', 'achieved_goal', 'desired_goal'} -> (2,)

A policy file is safetensors: the SB3 actor's state_dict, and in the header the format, the RLConfig as JSON and
the env steps it was trained for. Loading rebuilds the actor from the config and the env's spaces (made without
the sim) and refuses anything else: pickles (an SB3 .zip, a torch .pt), other bytes, other headers and weights that
do not fit the config, each with a CheckpointError naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
from gymnasium import spaces
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy

from ssl_robot.atomic import write_atomic
from ssl_robot.models.checkpoint import CheckpointError, load_tensors, read_metadata, tensor_problems
from ssl_robot.rl.config import RLConfig, config_from_plain
from ssl_robot.rl.observers import make_observer, make_policy_observer, observation_space
from ssl_robot.typed_config import to_plain

FORMAT = 'ssl_robot.policy/1'
ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {'sac': SAC, 'td3': TD3}


def env_spaces(config: RLConfig) -> tuple[spaces.Dict, spaces.Box]:
    """(observation space, action space) of the env of config.env, as TrayGoalEnv declares them."""
    goal_observer = make_observer(config.env)
    return (observation_space(goal_observer, make_policy_observer(config.env, goal_observer)),
            spaces.Box(-1.0, 1.0, (2,), np.float32))


def policy_kwargs(config: RLConfig) -> dict:
    """The SB3 policy's constructor arguments that config sets."""
    return {'net_arch': list(config.net_arch)}


@dataclass(frozen=True)
class GoalPolicy:
    """A trained policy: actions for goal-conditioned observations."""

    config: RLConfig
    """The training config, with the env the policy was trained in."""
    env_steps: int
    """Env steps it was trained for."""
    network: BasePolicy
    """The SB3 policy holding the trained actor (its critics are untrained: acting needs only the actor)."""

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        """The (2,) action for one observation; deterministic: the actor's mean, else a sample."""
        action, _ = self.network.predict(obs, deterministic=deterministic)
        return action


def save_policy(path: str | os.PathLike, model: OffPolicyAlgorithm, rl_config: RLConfig, env_steps: int) -> Path:
    """Write model's actor with rl_config and env_steps to path, atomically; returns the path."""
    path = Path(path)
    metadata = {'format': FORMAT, 'config': json.dumps(to_plain(rl_config)), 'env_steps': str(int(env_steps))}
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.actor.state_dict().items()}
    write_atomic(path, safetensors.torch.save(tensors, metadata=metadata))
    return path


def _read_header(path: Path) -> tuple[RLConfig, int]:
    metadata = read_metadata(path, 'policy')
    if metadata.get('format') != FORMAT:
        raise CheckpointError(f'{path} is a safetensors file but not an ssl_robot policy: its format is '
                              f'{metadata.get("format")!r}, this code reads {FORMAT!r}')
    try:
        return config_from_plain(json.loads(metadata['config'])), int(metadata['env_steps'])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f'{path} has a malformed policy header: {error}') from None


def load_policy(path: str | os.PathLike, device: str = 'cpu') -> GoalPolicy:
    """The policy saved at path, on device, in eval mode."""
    path = Path(path)
    config, env_steps = _read_header(path)
    observation_space, action_space = env_spaces(config)
    network = ALGORITHMS[config.algo].policy_aliases['MultiInputPolicy'](
        observation_space, action_space, lambda _: config.lr, **policy_kwargs(config))
    tensors = load_tensors(path)
    problems = tensor_problems(network.actor.state_dict(), tensors, 'the config')
    if problems:
        raise CheckpointError(f'{path} does not fit its own config ({config.algo}, net_arch {list(config.net_arch)}, '
                              f'env {config.env.task}/{config.env.mode}): {"; ".join(problems)}')
    network.actor.load_state_dict(tensors)
    return GoalPolicy(config, env_steps, network.to(device).eval())
