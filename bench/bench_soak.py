"""Soak: the sim graph for --minutes; memory growth of every node and the share of camera sets rewarded.

Run inside a loopback-only namespace: `scripts/loopback-run .venv/bin/python bench/bench_soak.py --minutes 10`.
Options: --minutes M (default 10) --warmup-minutes W (default 1) --sample-seconds S (default 30) --mode MODE.

Starts `ssl-robot launch sim mode:=MODE reward_kinds:=[latent_goal, grasp2vec]` (the sim at its default 3 cameras x
128x128, the diagnostics monitor and the four learning nodes, each its own process), waits until latent-goal rewards
flow (asking the goal node for a goal if it has none) and from then on runs --minutes. The default mode is grasp:
tray resets, grasps and object images keep every learning node working (idle mode leaves grasp2vec and the goal node
waiting). Every --sample-seconds the RSS of each node process (VmRSS of the runner's children, from /proc) is sampled.

Figures, per node: RSS at the first sample at or after the warm-up, at the end, and the growth between them (target:
at most 20 MB); a node whose pid changed (it died and was respawned) has no growth figure. Per reward kind published
for every camera set (latent_goal here): of the sets whose first frame arrived here after the warm-up and at least
DRAIN_S before the end, the fraction with a reward carrying their stamp (target: at least 99 %). grasp2vec rewards
come one per successful grasp, so only their count is printed. No target is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench_train import load_average
from graph_figures import NS_PER_S, memory_growth, set_coverage
from node_processes import node_memory
from sim_graph import (PER_SET_REWARD_KINDS, READY_TIMEOUT_S, REWARD_KINDS, SimGraphListener, launch_sim_graph,
                       log_tail, stop_sim_graph)
from ssl_robot.ros.netns import in_loopback_only_namespace
from ssl_robot.sim.config import load_sim_config

GROWTH_TARGET_MB = 20.0
REWARDED_TARGET = 0.99
DRAIN_S = 3.0
"""Sets arriving this close to the end are not counted: their rewards may still be on the way."""
MB = 1024 * 1024


def megabytes(size: int | None) -> str:
    return f'{size / MB:.1f}' if size is not None else '-'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=10.0, help='length of the soak, after the graph is up')
    parser.add_argument('--warmup-minutes', type=float, default=1.0,
                        help='left out of the figures: growth is measured from the first sample after it')
    parser.add_argument('--sample-seconds', type=float, default=30.0, help='period of the RSS samples')
    parser.add_argument('--mode', choices=('idle', 'grasp', 'motion'), default='grasp', help='sim mode')
    args = parser.parse_args()
    if not args.minutes > args.warmup_minutes >= 0:
        parser.error('--minutes must be longer than --warmup-minutes')
    if not in_loopback_only_namespace():
        raise SystemExit('bench_soak starts ROS nodes: run it inside a loopback-only network namespace, '
                         'scripts/loopback-run .venv/bin/python bench/bench_soak.py')

    run_s, warmup_s = args.minutes * 60, args.warmup_minutes * 60
    print(f'soak: sim graph (mode {args.mode}, default size) for {run_s:g} s after it is up, {warmup_s:g} s of it '
          f'warm-up, RSS every {args.sample_seconds:g} s; {len(os.sched_getaffinity(0))} CPU cores, {load_average()}',
          flush=True)
    with tempfile.TemporaryDirectory(prefix='bench_soak_') as tmp, ExitStack() as graph:
        log = Path(tmp) / 'launch.log'
        listener = SimGraphListener('bench_soak_listener')
        graph.callback(listener.close)
        runner = launch_sim_graph(log, args.mode, bound_s=READY_TIMEOUT_S + run_s + 60)
        graph.callback(stop_sim_graph, runner)
        launched_ns = time.monotonic_ns()
        listener.wait_for_rewards(runner, log)
        start_ns = time.monotonic_ns()
        print(f'graph up: first latent_goal reward {(start_ns - launched_ns) / NS_PER_S:.1f} s after the launch',
              flush=True)

        samples = []
        sample_times_s = [i * args.sample_seconds for i in range(int(run_s // args.sample_seconds) + 1)]
        if sample_times_s[-1] < run_s:
            sample_times_s.append(run_s)  # the final sample is at the end of the run, whatever the period
        for seconds in sample_times_s:
            time.sleep(max(0.0, start_ns / NS_PER_S + seconds - time.monotonic()))
            if runner.poll() is not None:
                raise SystemExit(f'the launch ended with status {runner.returncode} during the soak; its log ends:\n'
                                 f'{log_tail(log)}')
            samples.append((seconds, node_memory(runner.pid)))
        end_ns = time.monotonic_ns()
        set_arrivals = dict(listener.set_arrivals)
        reward_arrivals = {kind: dict(arrivals) for kind, arrivals in listener.reward_arrivals.items()}
        respawns = log.read_text(errors='replace').count('respawning in')

    memory = memory_growth(samples, warmup_s)
    print(f'{len(samples)} RSS samples over {(end_ns - start_ns) / NS_PER_S:.0f} s; warm-up end = first sample at or '
          f'after {warmup_s:g} s')
    print(f'{"node":<22} {"RSS warm MB":>11} {"final MB":>9} {"growth MB":>9}  '
          f'target growth <= {GROWTH_TARGET_MB:g} MB')
    for name, row in memory.items():
        if row.growth is None:
            verdict = 'pid changed (respawned): no growth figure' if row.respawned else 'not running at a sample'
        else:
            verdict = 'met' if row.growth <= GROWTH_TARGET_MB * MB else 'MISSED'
        print(f'{name:<22} {megabytes(row.warm_rss):>11} {megabytes(row.final_rss):>9} {megabytes(row.growth):>9}  '
              f'{verdict}')
    # The whole series tells a leak (steady climb) from a buffer filling up to its cap (climb, then flat).
    print('RSS MB at each sample, ' + ' '.join(f'{seconds:g}' for seconds, _ in samples) + ' s:')
    for name in memory:
        series = ' '.join(megabytes(nodes[name][1]) if name in nodes else '-' for _, nodes in samples)
        print(f'  {name:<20} {series}')
    if respawns:
        print(f'warning: the launch respawned a node {respawns} time(s) during the run (see its log)')

    window = (start_ns + round(warmup_s * NS_PER_S), end_ns - round(DRAIN_S * NS_PER_S))
    window_s = (window[1] - window[0]) / NS_PER_S
    print(f'camera sets counted: those arriving in the {window_s:.0f} s from the warm-up end to {DRAIN_S:g} s before '
          f'the end ({set_coverage(set_arrivals, [], *window).sets / window_s:.1f} sets/s; the sim ticks at '
          f'{load_sim_config().tick_rate_hz:g} Hz when the cores keep up)')
    print(f'{"reward":<12} {"sets":>6} {"rewarded":>8} {"fraction":>9}  target >= {REWARDED_TARGET:.0%} of sets')
    for kind in REWARD_KINDS:
        stamps = reward_arrivals[kind]
        if kind in PER_SET_REWARD_KINDS:
            coverage = set_coverage(set_arrivals, stamps, *window)
            verdict = 'met' if coverage.sets and coverage.fraction >= REWARDED_TARGET else 'MISSED'
            print(f'{kind:<12} {coverage.sets:>6} {coverage.rewarded:>8} {coverage.fraction:>9.2%}  {verdict}')
        else:
            print(f'{kind:<12} {"-":>6} {len(stamps):>8} {"-":>9}  one per successful grasp, not per set: '
                  f'{len(stamps)} in the whole run')
    print(f'after the run: {load_average()}')


if __name__ == '__main__':
    main()
