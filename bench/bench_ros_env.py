"""RosGoalEnv step latency against the in-process TrayGoalEnv (reach, latent mode, 48 px task camera).

1. in process: TrayGoalEnv.step (3 sim ticks, one task camera image, the VAE encoding, the reward);
2. over the graph, free-running sim: the sim, goal and reward nodes as processes with graph_parameters (the sim at
   --real-time-factor, 0 = as fast as it can), and RosGoalEnv.step: the hand target out, then the wait on the sim
   clock for the frame one control period later whose scene latent and reward have both arrived;
3. over the graph, stepped sim (stepping on_request on both sides): the hand target out, /sim/step for one control
   period, then the wait for the scene latent and reward of its last tick.
Per env: steps timed (resets excluded), p50 and p99 in ms (target for RosGoalEnv: p99 < 50 ms), and for the graph
the sim seconds per wall second over the timed steps. Printed, not asserted. Run it in the loopback namespace:
    scripts/loopback-run .venv/bin/python bench/bench_ros_env.py [--steps 200] [--real-time-factor 0] \
        [--stepping free|on_request|both]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ssl_robot.rl.envs import TrayGoalEnv
from ssl_robot.rl.graph_parameters import graph_parameters, node_commands
from ssl_robot.rl.lockstep import NS_PER_S, RosEnvConfig
from ssl_robot.rl.tasks import EnvConfig

STARTUP_TIMEOUT_S = 120.0


def step_latencies_ms(env, steps: int, on_step: Callable[[dict], None] = lambda info: None) -> np.ndarray:
    """Wall ms of each of `steps` random-action steps; episodes are reset when they end, untimed."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    latencies = []
    while len(latencies) < steps:
        action = rng.uniform(-1, 1, 2)
        start = time.perf_counter()
        _, _, terminated, truncated, info = env.step(action)
        latencies.append((time.perf_counter() - start) * 1e3)
        on_step(info)
        if terminated or truncated:
            env.reset()
    return np.array(latencies)


def row(name: str, latencies: np.ndarray, extra: str = '') -> str:
    p50, p99 = np.percentile(latencies, [50, 99])
    return f'{name:<22} {len(latencies):>6} {p50:>9.1f} {p99:>9.1f} {latencies.max():>9.1f}  {extra}'


def graph_env_latencies(config: EnvConfig, steps: int, real_time_factor: float, render_every: int | None,
                        stepping: str, log_dir: Path) -> tuple[np.ndarray, float, float]:
    """RosGoalEnv's step latencies against a graph started here, the sim seconds per wall second, and the median
    sim ms from one step's answering frame to the next's."""
    from ssl_robot.rl_ros import RosGoalEnv

    parameters = graph_parameters(config, real_time_factor, stepping=stepping)
    if render_every is not None:
        parameters['sim']['render_every'] = render_every
    processes = []
    try:
        for node, command in node_commands(parameters).items():
            log = open(log_dir / f'{node}-{stepping}.log', 'w')
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        env = RosGoalEnv(config, RosEnvConfig(timeout_s=STARTUP_TIMEOUT_S, stepping=stepping))
        try:
            stamps: list[tuple[float, int]] = []
            latencies = step_latencies_ms(env, steps, lambda info: stamps.append((time.perf_counter(),
                                                                                  info['stamp_ns'])))
        finally:
            env.close()
        (wall_0, stamp_0), (wall_1, stamp_1) = stamps[0], stamps[-1]
        # Sim time from one answering frame to the next (median: the steps after a reset count once each).
        step_sim_ms = float(np.median(np.diff([stamp for _, stamp in stamps]))) / 1e6
        return latencies, (stamp_1 - stamp_0) / NS_PER_S / max(wall_1 - wall_0, 1e-9), step_sim_ms
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=200, help='timed steps per env')
    parser.add_argument('--real-time-factor', type=float, default=0.0, help="the sim's; 0 = as fast as it can")
    parser.add_argument('--render-every', type=int, default=None,
                        help="the sim's render_every; default graph_parameters' (one frame per step)")
    parser.add_argument('--stepping', choices=('free', 'on_request', 'both'), default='both',
                        help="the sim's and the env's: a free-running sim, a stepped one, or one run of each")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as each node runs its VAE (torch_threads 1)
    os.environ.setdefault('OMP_NUM_THREADS', '1')  # for the node processes started here
    config = EnvConfig(mode='latent', goal_source='prior')
    load_before = os.getloadavg()[0]
    in_process = TrayGoalEnv(config)
    try:
        local = step_latencies_ms(in_process, args.steps)
    finally:
        in_process.close()
    steppings = ('free', 'on_request') if args.stepping == 'both' else (args.stepping,)
    graphs = {}
    with tempfile.TemporaryDirectory() as logs:
        for stepping in steppings:
            graphs[stepping] = graph_env_latencies(config, args.steps, args.real_time_factor, args.render_every,
                                                   stepping, Path(logs))
    render_every = args.render_every or graph_parameters(config)['sim']['render_every']
    print(f'reach, latent mode, {config.image_size} px task camera; free sim: real_time_factor '
          f'{args.real_time_factor:g}, render_every {render_every}; stepped sim: one control period per request')
    print(f'{"env":<22} {"steps":>6} {"p50 ms":>9} {"p99 ms":>9} {"max ms":>9}')
    print(row('TrayGoalEnv', local))
    for stepping, (graph, sim_speed, step_sim_ms) in graphs.items():
        print(row(f'RosGoalEnv ({stepping})', graph,
                  f'sim {sim_speed:.2f} s per wall s, median {step_sim_ms:.0f} ms of sim time per step; '
                  f'p99 < 50 ms: {"yes" if np.percentile(graph, 99) < 50 else "no"}'))
    print(f'load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after')


if __name__ == '__main__':
    main()
