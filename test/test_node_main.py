"""Every node's main() (ssl_robot.ros.node_main.spin_node) ends with status 0 and no traceback on SIGINT or
SIGTERM, also when a second SIGINT arrives during cleanup: a terminal Ctrl-C under `ros2 launch` reaches each
node twice (the terminal's SIGINT to the process group, then launch's own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

DATA = Path(__file__).parent / 'data' / 'nodes'
WAIT_S = 60.0  # generous bound for events that normally come within a second or two


def wait_until(condition: Callable[[], bool], process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert process.poll() is None, f'exited early with {process.returncode}: {process.communicate()}'
        assert time.monotonic() < deadline, 'the node did not get there in time'
        time.sleep(0.02)


@pytest.mark.parametrize('first', [signal.SIGINT, signal.SIGTERM])
def test_a_second_sigint_during_cleanup_still_ends_with_status_0_and_no_traceback(ros_domain_id, tmp_path, first):
    process = subprocess.Popen([sys.executable, str(DATA / 'slow_cleanup_node.py'), str(tmp_path)],
                               env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until((tmp_path / 'ready').exists, process)
        process.send_signal(first)
        wait_until((tmp_path / 'cleaning').exists, process)
        process.send_signal(signal.SIGINT)
        (tmp_path / 'go').touch()
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert 'Traceback' not in err, err
    assert process.returncode == 0, (out, err)


def test_a_real_node_given_two_sigints_in_a_row_ends_with_status_0(ros_domain_id, tmp_path):
    command = [sys.executable, '-m', 'ssl_robot.nodes.recorder_node', '--ros-args', '-r', '__node:=recorder',
               '-p', f'output:={tmp_path / "bag"}']
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_until(lambda: (tmp_path / 'bag').exists(), process)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert 'Traceback' not in err, err
    assert process.returncode == 0, (out, err)
