"""Supervision of node processes by `ssl-robot launch` (ssl_robot.ros.process_supervision): respawn as ROS 2
launch means it, and no node outliving a killed runner. test/data/launch/dummy_node.py stands in for every node
executable; no ROS node is created."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from launch_harness import dummy_nodes  # noqa: F401  (a fixture)
from launch_harness import DATA, WAIT_S, load, shutdown_when, wait_until, write_launch
from ssl_robot.ros.launch_xml import LaunchFileError

REPOSITORY = Path(__file__).resolve().parent.parent


def starts(screen: io.StringIO, label: str) -> int:
    return sum(f'[INFO] [{label}]: process started with pid' in line for line in screen.getvalue().splitlines())


# ---------------------------------------------------------------------------------------------
# respawn and respawn_delay

def test_respawn_and_respawn_delay_are_read_as_ros_2_launch_reads_them(tmp_path):
    node, = load(tmp_path, '<node pkg="ssl_robot" exec="talker" respawn="true" respawn_delay="2.5"/>')
    assert (node.respawn, node.respawn_delay) == (True, 2.5)
    node, = load(tmp_path, '<node pkg="ssl_robot" exec="talker" respawn="false"/>')
    assert (node.respawn, node.respawn_delay) == (False, 0.0)


@pytest.mark.parametrize('attributes, message', [
    ('respawn="yes"', 'respawn="yes".*true or false'),
    ('respawn="True"', 'respawn="True".*true or false'),
    ('respawn="$(env X true)"', 'respawn=.*true or false'),
    ('respawn="true" respawn_delay="-1"', 'respawn_delay="-1".*non-negative number of seconds'),
    ('respawn="true" respawn_delay="soon"', 'respawn_delay="soon".*non-negative number of seconds'),
])
def test_bad_respawn_attributes_are_errors_with_file_and_line(tmp_path, attributes, message):
    with pytest.raises(LaunchFileError, match=f'test.launch.xml:2: <node {message}'):
        load(tmp_path, f'<node pkg="ssl_robot" exec="talker" {attributes}/>')


def test_a_node_marked_respawn_is_restarted_after_it_exits(dummy_nodes):
    screen = io.StringIO()
    supervisor = dummy_nodes('''
        <node pkg="ssl_robot" exec="talker" name="flaky" output="screen" respawn="true" respawn_delay="0.1"
              args="--exit-code 3"/>''', screen)
    shutdown_when(supervisor, lambda: starts(screen, 'flaky') >= 3)
    assert supervisor.run() == 1  # it died, each time
    lines = screen.getvalue().splitlines()
    assert starts(screen, 'flaky') >= 3
    assert sum('[ERROR] [flaky]: process has died' in line for line in lines) >= 2
    assert '[INFO] [flaky]: respawning in 0.1 s' in lines


def test_no_respawn_once_the_launch_is_shutting_down(dummy_nodes, tmp_path):
    screen = io.StringIO()
    supervisor = dummy_nodes(f'''
        <node pkg="ssl_robot" exec="talker" name="steady" output="screen" respawn="true"
              args="--ready-file {tmp_path}/ready"/>''', screen)
    shutdown_when(supervisor, (tmp_path / 'ready').exists)
    assert supervisor.run() == 0
    assert starts(screen, 'steady') == 1
    assert 'respawning' not in screen.getvalue()


def test_shutdown_cancels_a_respawn_still_waiting_for_its_delay(dummy_nodes):
    screen = io.StringIO()
    supervisor = dummy_nodes('''
        <node pkg="ssl_robot" exec="talker" name="flaky" output="screen" respawn="true" respawn_delay="3600"
              args="--exit-code 3"/>''', screen)
    shutdown_when(supervisor, lambda: 'respawning in 3600 s' in screen.getvalue())
    assert supervisor.run() == 1
    assert starts(screen, 'flaky') == 1


def test_without_respawn_the_launch_ends_when_its_nodes_have(dummy_nodes):
    screen = io.StringIO()
    supervisor = dummy_nodes('<node pkg="ssl_robot" exec="talker" name="once" output="screen" args="--exit-code 0"/>',
                             screen)
    assert supervisor.run() == 0
    assert starts(screen, 'once') == 1


# ---------------------------------------------------------------------------------------------
# A killed runner takes its nodes with it

def gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet (it has ended)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z'
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='parent-death signal is Linux only')
def test_nodes_end_when_the_runner_is_killed_with_sigkill(tmp_path):
    launch_file = write_launch(tmp_path, f'''
        <node pkg="ssl_robot" exec="sim_node" name="sim" args="--ready-file {tmp_path}/sim"/>
        <node pkg="ssl_robot" exec="recorder_node" name="recorder" args="--ready-file {tmp_path}/recorder"/>''')
    environment = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(DATA), str(REPOSITORY)])}
    runner = subprocess.Popen([sys.executable, str(DATA / 'run_with_dummy_nodes.py'), str(launch_file)],
                              env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = []
    try:
        assert wait_until(lambda: (tmp_path / 'sim').exists() and (tmp_path / 'recorder').exists())
        assert wait_until(lambda: (tmp_path / 'sim').read_text() and (tmp_path / 'recorder').read_text())
        pids = [int((tmp_path / name).read_text()) for name in ('sim', 'recorder')]
        runner.kill()
        runner.wait(timeout=WAIT_S)
        assert wait_until(lambda: all(gone(pid) for pid in pids)), [pid for pid in pids if not gone(pid)]
    finally:
        runner.kill()
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
