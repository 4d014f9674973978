"""RL env speed: TrayGoalEnv steps/s against the raw sim at the same render settings, and through SubprocVecEnv.

Pure (no ROS node). For each task and mode:
1. raw: the sim's own work of one env step with nothing around it: the ticks of one control period
   (arm.advance + physics) and, when the mode renders, one task camera image. Twice: with the arm parked, and
   with the arm moving as a controller drives it (a new arm goal at most action_step_m away every control
   period, as the sim node does on each command), whose ticks also solve the arm's IK and its contacts: that is
   the sim's work, not the env's, so the moving raw is the one the env is held against;
2. env: TrayGoalEnv.step with random actions, resets included at the episodes' ends, observation encoding and
   reward included; the ratio env / raw (moving) is the env's overhead (target >= 0.8);
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
from ssl_robot.rl.tasks import EnvConfig, action_target

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


def raw_and_env_rates(config: EnvConfig, seconds: float) -> tuple[float, float, float]:
    """(raw steps/s with the arm parked, raw steps/s with the arm moving, env steps/s)."""
    env = TrayGoalEnv(config)
    try:
        env.reset(seed=0)
        world, camera = env.world, env.camera
        renders = env.needs_image
        rng = np.random.default_rng(0)

        def raw_step() -> None:
            for _ in range(env.ticks_per_step):
                world.arm.advance()
                world.step_physics()
            world.update()
            if renders:
                camera.render(world.segmentation_lut)

        def raw_step_moving() -> None:
            hand_xy = world.arm.tcp_pose()[0][:2]
            target = action_target(hand_xy, rng.uniform(-1.0, 1.0, 2), config.action_step_m)
            world.arm.set_goal((float(target[0]), float(target[1]), env.hand_z), env.hand_orientation)
            raw_step()

        def env_step() -> None:
            _, _, _, truncated, _ = env.step(env.action_space.sample())
            if truncated:
                env.reset()

        parked = rate(raw_step, seconds)
        return parked, rate(raw_step_moving, seconds), rate(env_step, seconds)
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
    print(f'{"task":6} {"mode":7} {"raw parked":>11} {"raw moving":>11} {"env steps/s":>12} '
          f'{"env/moving":>11} {"env/parked":>11} {"2 subproc envs":>15}')
    for task in args.tasks:
        for mode in args.modes:
            config = env_config(task, mode, args.vae)
            parked, moving, env = raw_and_env_rates(config, args.seconds)
            vec = subproc_rate(config, args.seconds)
            print(f'{task:6} {mode:7} {parked:11.1f} {moving:11.1f} {env:12.1f} {env / moving:11.2f} '
                  f'{env / parked:11.2f} {vec:15.1f}', flush=True)


if __name__ == '__main__':
    main()
