"""Fault run: SIGKILL each learning node of the sim graph once, and time how long the graph takes to recover.

Run inside a loopback-only namespace: `scripts/loopback-run .venv/bin/python bench/bench_fault.py`.
Options: --timeout S (per node, default 120) --mode MODE (default grasp, as bench_soak.py).

Starts `ssl-robot launch sim` as bench_soak.py does (respawn on, as learning.launch.xml sets it: two seconds after a
learning node exits), waits until latent-goal rewards flow and every learning node has been heard on /diagnostics,
then kills the embedding, reward, grasp2vec and goal nodes one at a time (SIGKILL to the pid among the runner's
children), each once its predecessor has recovered. Per node, from the kill:

- respawned: until a new process of that node is among the runner's children (polled every POLL_S);
- diagnostics: until that node's /diagnostics status is heard from the new process (the first non-STALE status of
  its name arriving after the new process appeared) -- the sign of life of nodes that publish only on events
  (grasp2vec: grasps; goal: episodes and requests);
- output: until its own per-set output resumes, the first message stamped after the kill (the newest camera set
  stamp seen here at the kill): /embeddings for the embedding node, /reward/latent_goal for the reward node;
- rewards: until the first /reward/latent_goal stamped after the kill arrives, whichever node was killed (for a node
  the latent-goal reward does not go through, this is one set's delay: rewards did not stop).

A figure not reached within --timeout seconds is reported as such, and the next node is killed anyway. No figure is
asserted: they are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench_train import load_average
from graph_figures import NS_PER_S, first_arrival_stamped_after, first_time_after
from node_processes import node_pids
from sim_graph import LEARNING_NODES, READY_TIMEOUT_S, SimGraphListener, launch_sim_graph, log_tail, stop_sim_graph
from ssl_robot.ros.netns import in_loopback_only_namespace

POLL_S = 0.05
SETTLE_S = 3.0
"""Pause after a node has recovered, before the next kill: the respawned node's subscriptions settle."""


@dataclass
class Recovery:
    node: str
    killed_pid: int
    respawned_s: float | None = None
    diagnostics_s: float | None = None
    output_s: float | None = None
    rewards_s: float | None = None
    output: str = '-'


def wait_until_every_node_is_heard(listener: SimGraphListener, runner, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(listener.diagnostics_heard[node] for node in LEARNING_NODES):
        if runner.poll() is not None or time.monotonic() > deadline:
            silent = [node for node in LEARNING_NODES if not listener.diagnostics_heard[node]]
            raise SystemExit(f'never heard on /diagnostics: {", ".join(silent)}; the launch log ends:\n'
                             f'{log_tail(log)}')
        time.sleep(0.2)


def kill_and_time_recovery(listener: SimGraphListener, runner_pid: int, node: str, timeout_s: float
                           ) -> Recovery | None:
    """SIGKILL node and follow its recovery until every figure is in or timeout_s has passed; None if the node
    has no process to kill (it died on its own and waits to be respawned)."""
    pid = node_pids(runner_pid).get(node)
    if pid is None:
        return None
    outputs = {'embedding': ('/embeddings', listener.embedding_arrivals),
               'reward': ('/reward/latent_goal', listener.reward_arrivals['latent_goal'])}
    output_topic, output_arrivals = outputs.get(node, ('-', None))
    rewards = listener.reward_arrivals['latent_goal']
    recovery = Recovery(node, pid, output=output_topic)
    kill_stamp = listener.newest_set_stamp()
    killed_ns = time.monotonic_ns()
    os.kill(pid, signal.SIGKILL)
    respawned_ns = None

    def seconds(event_ns: int | None) -> float | None:
        return (event_ns - killed_ns) / NS_PER_S if event_ns is not None else None

    while time.monotonic_ns() - killed_ns < timeout_s * NS_PER_S:
        if respawned_ns is None and node_pids(runner_pid).get(node, pid) != pid:
            respawned_ns = time.monotonic_ns()
            recovery.respawned_s = seconds(respawned_ns)
        if respawned_ns is not None and recovery.diagnostics_s is None:
            recovery.diagnostics_s = seconds(first_time_after(list(listener.diagnostics_heard[node]), respawned_ns))
        if output_arrivals is not None and recovery.output_s is None:
            recovery.output_s = seconds(first_arrival_stamped_after(dict(output_arrivals), kill_stamp))
        if recovery.rewards_s is None:
            recovery.rewards_s = seconds(first_arrival_stamped_after(dict(rewards), kill_stamp))
        if None not in (recovery.respawned_s, recovery.diagnostics_s, recovery.rewards_s) and \
                (output_arrivals is None or recovery.output_s is not None):
            break
        time.sleep(POLL_S)
    return recovery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds to wait for each node to recover')
    parser.add_argument('--mode', choices=('idle', 'grasp', 'motion'), default='grasp', help='sim mode')
    args = parser.parse_args()
    if not in_loopback_only_namespace():
        raise SystemExit('bench_fault starts ROS nodes: run it inside a loopback-only network namespace, '
                         'scripts/loopback-run .venv/bin/python bench/bench_fault.py')

    print(f'fault run: sim graph (mode {args.mode}, default size, respawn on), SIGKILL each of '
          f'{", ".join(LEARNING_NODES)} once, up to {args.timeout:g} s each to recover; '
          f'{len(os.sched_getaffinity(0))} CPU cores, {load_average()}', flush=True)
    recoveries = []
    with tempfile.TemporaryDirectory(prefix='bench_fault_') as tmp, ExitStack() as graph:
        log = Path(tmp) / 'launch.log'
        listener = SimGraphListener('bench_fault_listener')
        graph.callback(listener.close)
        bound_s = 2 * READY_TIMEOUT_S + len(LEARNING_NODES) * (args.timeout + SETTLE_S) + 60
        runner = launch_sim_graph(log, args.mode, bound_s)
        graph.callback(stop_sim_graph, runner)
        listener.wait_for_rewards(runner, log)
        wait_until_every_node_is_heard(listener, runner, log)
        for node in LEARNING_NODES:
            if runner.poll() is not None:
                raise SystemExit(f'the launch ended with status {runner.returncode}; its log ends:\n{log_tail(log)}')
            recovery = kill_and_time_recovery(listener, runner.pid, node, args.timeout)
            if recovery is None:
                print(f'warning: {node} was not running when its turn came: not killed', flush=True)
                continue
            recoveries.append(recovery)
            print(f'killed {node} (pid {recovery.killed_pid})', flush=True)
            time.sleep(SETTLE_S)

    def seconds(value: float | None) -> str:
        return f'{value:.2f}' if value is not None else f'did not resume within {args.timeout:g} s'

    print(f'{"node killed":<12} {"pid":>7}  {"respawned s":>11}  {"diagnostics s":>13}  {"output":<20} '
          f'{"output s":>8}  {"latent_goal rewards s":>21}')
    for row in recoveries:
        output_s = seconds(row.output_s) if row.output != '-' else '-'
        print(f'{row.node:<12} {row.killed_pid:>7}  {seconds(row.respawned_s):>11}  {seconds(row.diagnostics_s):>13}  '
              f'{row.output:<20} {output_s:>8}  {seconds(row.rewards_s):>21}')
    print(f'after the run: {load_average()}')


if __name__ == '__main__':
    main()
