"""The node parameters under which the ROS graph shows a RosGoalEnv what TrayGoalEnv's latent mode computes in
process: the same task camera (rig, size; one frame per control period), the env's VAE in the goal node (scene
latents and goals, which the reward node scores), and reward scale 1 (the env's compute_reward is
observers.Observer.reward, unscaled).

    parameters = graph_parameters(EnvConfig(mode='latent'), real_time_factor=0.0)   # stepping='on_request': lockstep
    # {'sim': {...}, 'goal': {...}, 'reward': {...}}: -p key:=value for sim_node, goal_node, reward_node
    commands = node_commands(parameters)   # {'sim': [python, -m, ssl_robot.nodes.sim_node, --ros-args, ...], ...}

Pure: the launch side (a test, a bench, a user's own launch file) passes them on.
"""

from __future__ import annotations

import sys
from typing import Any

from ssl_robot import topics
from ssl_robot.models.registry import method_of
from ssl_robot.rl.observers import load_task_vae, vae_checkpoint_path
from ssl_robot.rl.tasks import EnvConfig
from ssl_robot.sim.config import load_sim_config


def task_camera_topic(config: EnvConfig) -> str:
    """The relative image topic of the rig's first camera, the task camera the env's VAE was trained on."""
    camera = load_sim_config(rig=config.camera_rig, num_objects=0).cameras[0].name
    return topics.in_namespace(topics.camera_image(camera))


def graph_parameters(config: EnvConfig, real_time_factor: float = 1.0, seed: int = 0, stepping: str = 'free'
                     ) -> dict[str, dict[str, Any]]:
    """Parameters of the sim, goal and reward nodes (keyed by those node names) for a reach env in latent mode.
    stepping: the sim's, as the env's RosEnvConfig.stepping ('on_request': one control period per /sim/step, and
    real_time_factor unused)."""
    if config.task != 'reach' or config.mode != 'latent':
        raise ValueError(f'the graph serves reach in latent mode (the sim node cannot place a puck), got task '
                         f'{config.task!r}, mode {config.mode!r}')
    checkpoint = str(vae_checkpoint_path(config).resolve())
    method = method_of(load_task_vae(vae_checkpoint_path(config), config.image_size))
    camera = task_camera_topic(config)
    # One frame per control period, as TrayGoalEnv renders once per step: rendering is most of the sim's work.
    tick_rate_hz = load_sim_config(rig=config.camera_rig, num_objects=0).tick_rate_hz
    ticks_per_step = max(1, round(tick_rate_hz / config.control_hz))
    return {
        'sim': {'camera_rig': config.camera_rig, 'image_width': config.image_size, 'image_height': config.image_size,
                'num_objects': 0, 'mode': 'idle', 'seed': seed, 'real_time_factor': float(real_time_factor),
                'publish_segmentation': False, 'render_every': ticks_per_step, 'stepping': stepping,
                'ticks_per_step': ticks_per_step},
        'goal': {'camera': camera, 'vae_method': method, 'vae_checkpoint': checkpoint, 'seed': seed},
        'reward': {'kinds': ['latent_goal'], 'latent_goal_scale': 1.0},
    }


NODE_MODULES = {'sim': 'ssl_robot.nodes.sim_node', 'goal': 'ssl_robot.nodes.goal_node',
                'reward': 'ssl_robot.nodes.reward_node'}


def parameter_text(value: Any) -> str:
    """A value as `-p name:=TEXT` takes it (YAML): booleans lower case, lists in flow style."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(parameter_text(item) for item in value) + ']'
    return str(value)


def node_commands(parameters: dict[str, dict[str, Any]], python: str = sys.executable) -> dict[str, list[str]]:
    """The command line of each node of graph_parameters, named as the node (`__node:=sim`, ...)."""
    commands = {}
    for node, values in parameters.items():
        command = [python, '-m', NODE_MODULES[node], '--ros-args', '-r', f'__node:={node}']
        for name, value in values.items():
            command += ['-p', f'{name}:={parameter_text(value)}']
        commands[node] = command
    return commands
