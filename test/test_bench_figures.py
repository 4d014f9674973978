"""The arithmetic of bench/bench_soak.py and bench/bench_fault.py (bench/graph_figures.py, bench/node_processes.py),
without a ROS graph: /proc parsing, memory growth across samples, and sets against rewards."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

from graph_figures import (NodeMemory, first_arrival_stamped_after, first_time_after,  # noqa: E402
                           memory_growth, set_coverage)
from node_processes import node_memory, node_name, node_pids, parent_pid, vmrss_bytes  # noqa: E402

MB = 1024 * 1024


def test_parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses():
    assert parent_pid('4242 (python -c (x)) S 77 4242 4242 0 -1 4194560') == 77


def test_node_name_comes_from_the_runners_node_remap():
    arguments = ['python', '-c', 'boot', '--ros-args', '-r', '__node:=reward', '-r', '__ns:=/robot_a',
                 '-p', 'kinds:=[latent_goal]']
    assert node_name(arguments) == 'reward'
    assert node_name(['python', '-m', 'ssl_robot.cli', 'launch', 'sim']) is None


def test_vmrss_in_kilobytes_becomes_bytes_and_a_zombie_has_none():
    assert vmrss_bytes('Name:\tpython\nVmPeak:\t 900 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n') == 123456 * 1024
    assert vmrss_bytes('Name:\tpython\nState:\tZ (zombie)\n') is None


def write_process(proc: Path, pid: int, ppid: int, arguments: list[str], rss_kb: int | None) -> None:
    directory = proc / str(pid)
    directory.mkdir()
    (directory / 'stat').write_text(f'{pid} (python3) S {ppid} {pid} {pid} 0 -1\n')
    (directory / 'cmdline').write_text('\0'.join(arguments) + '\0')
    (directory / 'status').write_text('Name:\tpython3\n' + (f'VmRSS:\t{rss_kb} kB\n' if rss_kb is not None else ''))


def test_node_memory_lists_the_named_children_of_the_runner_only(tmp_path):
    write_process(tmp_path, 100, 1, ['python', '-m', 'ssl_robot.cli', 'launch', 'sim'], 50_000)
    write_process(tmp_path, 101, 100, ['python', '-c', 'boot', '--ros-args', '-r', '__node:=sim'], 200_000)
    write_process(tmp_path, 102, 100, ['python', '-c', 'boot', '--ros-args', '-r', '__node:=goal'], None)  # a zombie
    write_process(tmp_path, 103, 100, ['some', 'helper'], 1_000)                                             # unnamed
    write_process(tmp_path, 104, 1, ['python', '-c', 'boot', '--ros-args', '-r', '__node:=other'], 1_000)   # not ours
    (tmp_path / 'self').mkdir()
    assert node_pids(100, tmp_path) == {'sim': 101, 'goal': 102}
    assert node_memory(100, tmp_path) == {'sim': (101, 200_000 * 1024)}


@pytest.mark.skipif(not Path('/proc/self/status').exists(), reason='needs Linux /proc')
def test_node_processes_reads_this_machines_proc():
    assert parent_pid(Path(f'/proc/{os.getpid()}/stat').read_text()) == os.getppid()
    assert vmrss_bytes(Path('/proc/self/status').read_text()) > MB


def test_growth_runs_from_the_first_sample_after_the_warm_up_to_the_last():
    samples = [(0.0, {'sim': (1, 100 * MB), 'reward': (2, 300 * MB)}),
               (30.0, {'sim': (1, 110 * MB), 'reward': (2, 400 * MB)}),
               (60.0, {'sim': (1, 112 * MB), 'reward': (2, 410 * MB)}),
               (90.0, {'sim': (1, 125 * MB), 'reward': (2, 405 * MB)})]
    memory = memory_growth(samples, warmup_s=30.0)
    assert memory['sim'] == NodeMemory(110 * MB, 125 * MB, respawned=False)
    assert memory['sim'].growth == 15 * MB
    assert memory['reward'].growth == 5 * MB
    assert memory_growth(samples, warmup_s=45.0)['sim'].growth == 13 * MB


def test_a_respawned_or_missing_node_has_no_growth_figure():
    samples = [(0.0, {'goal': (5, 300 * MB), 'grasp2vec': (6, 200 * MB)}),
               (60.0, {'goal': (9, 250 * MB)})]
    memory = memory_growth(samples, warmup_s=0.0)
    assert memory['goal'].respawned and memory['goal'].growth is None
    assert memory['grasp2vec'].final_rss is None and memory['grasp2vec'].growth is None


def test_growth_needs_a_sample_after_the_warm_up():
    with pytest.raises(ValueError, match='warm-up'):
        memory_growth([(0.0, {'sim': (1, MB)})], warmup_s=60.0)


def test_only_sets_arriving_in_the_window_count_and_only_their_rewards():
    sets = {1000: 5, 2000: 15, 3000: 25, 4000: 35, 5000: 45}   # stamp -> arrival
    rewards = [1000, 2000, 4000, 5000, 9999]                  # 3000 got none; 1000 and 5000 are outside the window
    coverage = set_coverage(sets, rewards, from_ns=10, until_ns=45)
    assert (coverage.sets, coverage.rewarded) == (3, 2)
    assert coverage.fraction == pytest.approx(2 / 3)
    assert set_coverage({}, rewards, 0, 100).fraction == 0.0


def test_resumption_is_the_first_message_stamped_after_the_kill():
    arrivals = {100: 1_000, 200: 1_500, 300: 9_000, 400: 8_000}  # stamp -> arrival; 400 overtook 300
    assert first_arrival_stamped_after(arrivals, 200) == 8_000
    assert first_arrival_stamped_after(arrivals, 400) is None
    assert first_time_after([5, 10, 20], 10) == 20
    assert first_time_after([5, 10], 10) is None
