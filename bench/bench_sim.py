"""Simulation speed: ticks per second and real-time factor with K scene cameras at a given resolution.

Pure (no ROS node): times SimRunner.tick() in motion mode, the arm moving, with every camera rendered.
Usage: python bench/bench_sim.py [--seconds 10] [--sizes 64 128 256] [--rigs default]
"""

from __future__ import annotations

import argparse
import time

from ssl_robot.sim.config import load_sim_config
from ssl_robot.sim.runner import SimRunner


def ticks_per_second(rig: str, size: int, seconds: float, render: bool) -> tuple[float, int, float]:
    config = load_sim_config(rig=rig, image_size=(size, size))
    with SimRunner(config, mode='motion', seed=0) as runner:
        runner.tick()  # the first tick builds the world and its caches
        ticks, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            runner.tick(render=render)
            ticks += 1
        rate = ticks / (time.perf_counter() - start)
        return rate, len(config.cameras), rate * runner.tick_period_ns / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 256])
    parser.add_argument('--rigs', nargs='+', default=['default'])
    args = parser.parse_args()
    print(f'{"rig":<10} {"cameras":>7} {"resolution":>10} {"ticks/s":>8} {"real-time factor":>17}')
    rate, _, factor = ticks_per_second(args.rigs[0], args.sizes[0], args.seconds, render=False)
    print(f'{args.rigs[0]:<10} {"none":>7} {"-":>10} {rate:>8.1f} {factor:>17.2f}', flush=True)
    for rig in args.rigs:
        for size in args.sizes:
            rate, cameras, factor = ticks_per_second(rig, size, args.seconds, render=True)
            print(f'{rig:<10} {cameras:>5}+1 {f"{size}x{size}":>10} {rate:>8.1f} {factor:>17.2f}', flush=True)


if __name__ == '__main__':
    main()
