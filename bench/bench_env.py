"""RL env speed: TrayGoalEnv steps/s against the raw sim at the same render settings, and through SubprocVecEnv.

Pure (no ROS node). For each task and mode:
1. raw: the sim's own work of one env step with nothing around it: the ticks of one control period
   (arm.advance + physics) and, when the mode renders, one task camera image;
2. env: TrayGoalEnv.step with random actions, resets included at the episodes' ends, observation encoding and
   reward included; the ratio env / raw is the env's overhead (target >= 0.8);
3. SubprocVecEnv with 2 envs, one torch thread each: env steps/s summed over the envs.

Latent mode uses --vae (default: the shipped scene beta-VAE, which takes 48 px images like the task camera: the
speed does not depend on what the VAE learned).
Usage: python bench/bench_env.py [--seconds 5] [--tasks reach push] [--modes state pixel latent]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.tasks import EnvConfig

DEFAULT_VAE = 'ssl_robot/checkpoints/betavae.safetensors'


def rate(work: Callable[[], None], seconds: float) -> float:
    """Calls of work per second over about `seconds`, after one warm-up call."""
    work()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        work()
        count += 1
    return count / (time.perf_counter() - start)


def env_config(task: str, mode: str, vae: str) -> EnvConfig:
    return EnvConfig(task=task, mode=mode, goal_source='prior' if mode != 'pixel' else 'state',
                     vae_checkpoint=vae if mode == 'latent' else '')


def raw_and_env_rates(config: EnvConfig, seconds: float) -> tuple[float, float]:
    env = TrayGoalEnv(config)
    try:
        env.reset(seed=0)
        world, camera = env.world, env.camera
        renders = env.observer.needs_image

        def raw_step() -> None:
            for _ in range(env.ticks_per_step):
                world.arm.advance()
                world.step_physics()
            world.update()
            if renders:
                camera.render(world.segmentation_lut)

        def env_step() -> None:
            _, _, _, truncated, _ = env.step(env.action_space.sample())
            if truncated:
                env.reset()

        return rate(raw_step, seconds), rate(env_step, seconds)
    finally:
        env.close()


def subproc_rate(config: EnvConfig, seconds: float, envs: int = 2) -> float:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    def make(rank: int) -> Callable[[], TrayGoalEnv]:
        def build() -> TrayGoalEnv:
            torch.set_num_threads(1)
            return TrayGoalEnv(config)
        return build

    vec = SubprocVecEnv([make(rank) for rank in range(envs)])
    try:
        vec.seed(0)
        vec.reset()
        actions = np.zeros((envs, 2), np.float32)
        return envs * rate(lambda: vec.step(actions), seconds)
    finally:
        vec.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--tasks', nargs='+', default=['reach', 'push'])
    parser.add_argument('--modes', nargs='+', default=['state', 'pixel', 'latent'])
    parser.add_argument('--vae', default=DEFAULT_VAE)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f'{"task":6} {"mode":7} {"raw steps/s":>12} {"env steps/s":>12} {"env/raw":>8} {"2 subproc envs":>15}')
    for task in args.tasks:
        for mode in args.modes:
            config = env_config(task, mode, args.vae)
            raw, env = raw_and_env_rates(config, args.seconds)
            vec = subproc_rate(config, args.seconds)
            print(f'{task:6} {mode:7} {raw:12.1f} {env:12.1f} {env / raw:8.2f} {vec:15.1f}', flush=True)


if __name__ == '__main__':
    main()
