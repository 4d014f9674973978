"""Helpers shared by the launch tests: launch files written on the fly, and supervisors whose node executables
are all test/data/launch/dummy_node.py. No ROS node is created."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ssl_robot.ros.launch_runner import OutputSink, Supervisor, plan_processes
from ssl_robot.ros.launch_xml import load_launch_file

DATA = Path(__file__).parent / 'data' / 'launch'
WAIT_S = 60.0  # generous bound for conditions that normally hold within a second


def write_launch(directory: Path, body: str, name: str = 'test.launch.xml') -> Path:
    path = directory / name
    path.write_text(f'<launch>\n{body}\n</launch>\n')
    return path


def load(directory: Path, body: str, **launch_args: str):
    return load_launch_file(write_launch(directory, body), launch_args).nodes


def dummy_entry_points() -> dict[str, EntryPoint]:
    return {name: EntryPoint(name, 'dummy_node:main', 'console_scripts')
            for name in ('sim_node', 'recorder_node', 'talker')}


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def dummy_nodes(monkeypatch, tmp_path) -> Callable[..., Supervisor]:
    """Builds a Supervisor for a launch body through the same planning code as `ssl-robot launch`."""
    monkeypatch.setenv('PYTHONPATH', str(DATA))

    def build(body: str, screen: io.StringIO, log: io.StringIO | None = None, grace_period: float = 5.0,
              **launch_args: str) -> Supervisor:
        plan = load_launch_file(write_launch(tmp_path, body), launch_args)
        processes = plan_processes(plan.nodes, dummy_entry_points(), 'none', os.environ)
        return Supervisor(processes, OutputSink(screen, log), grace_period)
    return build


def shutdown_when(supervisor: Supervisor, condition: Callable[[], bool]) -> None:
    """Requests a shutdown from another thread once `condition` holds (or after the bounded wait)."""
    def trigger() -> None:
        wait_until(condition)
        supervisor.request_shutdown('test')
    threading.Thread(target=trigger, daemon=True).start()
