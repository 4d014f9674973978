"""Helpers for tests that run real ROS processes: start a node as its own process, and probe the graph
from the test process with a node of its own context. Only used by tests marked `ros`, which conftest
runs inside a loopback-only network namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


@contextmanager
def node_process(module: str, name: str, params: dict[str, Any] | None = None,
                 args: list[str] | None = None) -> Iterator[subprocess.Popen]:
    """Run `python -m module` as a ROS node process; SIGINT it on exit and fail if it does not stop."""
    command = [sys.executable, '-m', module, *(args or []), '--ros-args', '-r', f'__node:={name}']
    for key, value in (params or {}).items():
        command += ['-p', f'{key}:={value}']
    with running(command) as process:
        yield process


@contextmanager
def running(command: list[str]) -> Iterator[subprocess.Popen]:
    """Run a command, its output collected in `process.output` as it comes (a full pipe must not block it);
    SIGINT it on exit, and kill it if it has not stopped 15 s later."""
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    process.output = output
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)


class Probe:
    """A node in its own context, spun in a background thread, for observing the graph under test."""

    def __init__(self, domain_id: int, name: str = 'probe') -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.lock = threading.Lock()

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll until condition() holds; fail the test naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if condition():
                    return
            time.sleep(0.05)
        raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}')

    def call(self, client, request, timeout: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f'service {client.srv_name} did not appear within {timeout:.0f} s')
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise AssertionError(f'service {client.srv_name} did not answer within {timeout:.0f} s')
            time.sleep(0.02)
        return future.result()

    def call_idempotent(self, client, request, timeout: float = 120.0, attempt_timeout: float = 10.0):
        """call() for a request that may be sent twice: one unanswered within attempt_timeout is sent again until
        timeout. A DDS response can be lost while the service's writer has not yet matched the client's reader
        (rmw warns 'failed to send response (timeout): client will not receive response'); the request was
        served, the client just never hears it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call(client, request, timeout=min(attempt_timeout, max(deadline - time.monotonic(), 0.1)))
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f'service {client.srv_name} did not answer within {timeout:.0f} s') from None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
