"""Process supervision for `ssl-robot launch` (ssl_robot.ros.launch_runner): starting the node processes,
prefixing and routing their output, reporting their exits and stopping them all, as `ros2 launch` does.
The behaviour is documented in launch_runner's docstring."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

SHUTDOWN_GRACE_S = 5.0
_POLL_INTERVAL_S = 0.05
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
# Linux prctl(2): deliver a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None, use_errno=True), 'prctl', None) if sys.platform.startswith('linux') else None


def _die_with_runner(runner_pid: int):
    """A preexec_fn for a node process: SIGTERM when the runner dies, even by SIGKILL, so no node is orphaned.
    The kernel sends it when the thread that started the child ends, so the Supervisor starts every process
    from the thread that runs it. Linux only; elsewhere nodes outlive a killed runner."""
    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != runner_pid:  # the runner died before the request took effect
            os._exit(1)
    return preexec


def _apply(base: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    environment = dict(base)
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


@dataclass
class NodeProcess:
    label: str
    command: list[str]
    environment_changes: dict[str, str | None]
    output: str
    shutdown_on_exit: bool
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_at: float | None = None  # time.monotonic() of a restart that is due
    popen: subprocess.Popen | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    sent: signal.Signals | None = None  # the last stop signal sent
    reported: bool = False

    def describe(self) -> str:
        """The command line as a shell would take it, environment changes first."""
        assignments = [f'{name}={shlex.quote(value)}' for name, value in self.environment_changes.items()
                       if value is not None]
        removals = [f'-u {name}' for name, value in self.environment_changes.items() if value is None]
        prefix = ['env', *removals] if removals else []
        return ' '.join([*prefix, *assignments, shlex.join(self.command)])



def ros_log_directory() -> Path:
    if os.environ.get('ROS_LOG_DIR'):
        return Path(os.environ['ROS_LOG_DIR'])
    return Path(os.environ.get('ROS_HOME') or Path.home() / '.ros') / 'log'


class OutputSink:
    """Lines from every process, prefixed and interleaved whole, to the screen and the launch log."""

    def __init__(self, screen: TextIO, log: IO[str] | None) -> None:
        self._screen = screen
        self._log = log
        self._lock = threading.Lock()

    def write(self, line: str, to_screen: bool = True, to_log: bool = True) -> None:
        with self._lock:
            if to_screen:
                self._screen.write(line + '\n')
                self._screen.flush()
            if to_log and self._log is not None:
                self._log.write(line + '\n')
                self._log.flush()


class Supervisor:
    """Starts the processes, reports their exits and stops them all on request."""

    def __init__(self, processes: list[NodeProcess], sink: OutputSink,
                 grace_period: float = SHUTDOWN_GRACE_S, base_environment: Mapping[str, str] | None = None) -> None:
        if grace_period < 0:
            raise ValueError(f'grace_period must be >= 0, got {grace_period}')
        self.processes = processes
        self._sink = sink
        self._grace_period = grace_period
        self._base_environment = dict(os.environ if base_environment is None else base_environment)
        self.shutdown_reason: str | None = None
        self._requests = 0
        self._failed = False

    def request_shutdown(self, reason: str) -> None:
        """Safe from a signal handler or another thread: it only records the request."""
        if self.shutdown_reason is None:
            self.shutdown_reason = reason
        self._requests += 1

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM to this process request a shutdown while inside the block."""
        def handler(number: int, _frame) -> None:
            self.request_shutdown(f'received {signal.Signals(number).name}')

        previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, action in previous.items():
                signal.signal(number, action)

    def run(self, duration: float | None = None) -> int:
        """Run until every process has ended; returns the exit status documented in the module."""
        deadline = None if duration is None else time.monotonic() + duration
        try:
            for process in self.processes:
                self._start(process)
                if self.shutdown_reason is not None:
                    break
            while self.shutdown_reason is None and self._alive():
                self._report_exits()
                self._respawn_due()
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_shutdown(f'--duration {duration:g} s elapsed')
                time.sleep(_POLL_INTERVAL_S)
        finally:
            if self._running():
                self._stop_all()
            self._report_exits()
            for process in self.processes:
                process.respawn_at = None
        return 1 if self._failed else 0

    def _start(self, process: NodeProcess) -> None:
        process.popen, process.readers, process.sent, process.reported = None, [], None, False
        try:
            process.popen = subprocess.Popen(
                process.command, env=self._environment(process), preexec_fn=_die_with_runner(os.getpid()),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as error:
            self._failed = True
            self._sink.write(f'[ERROR] [{process.label}]: cannot start: {error}')
            self.request_shutdown(f'{process.label} could not start')
            return
        self._sink.write(f'[INFO] [{process.label}]: process started with pid [{process.popen.pid}]')
        for stream, is_stderr in ((process.popen.stdout, False), (process.popen.stderr, True)):
            reader = threading.Thread(target=self._pump, args=(process, stream, is_stderr), daemon=True,
                                      name=f'{process.label}-{"stderr" if is_stderr else "stdout"}')
            reader.start()
            process.readers.append(reader)

    def _environment(self, process: NodeProcess) -> dict[str, str]:
        environment = _apply(self._base_environment, process.environment_changes)
        # Python children write into pipes here; unbuffered, their lines arrive as they are printed.
        environment.setdefault('PYTHONUNBUFFERED', '1')
        return environment

    def _pump(self, process: NodeProcess, stream: IO[bytes], is_stderr: bool) -> None:
        to_screen = process.output != 'log' or is_stderr
        to_log = process.output != 'screen'
        with stream:
            for raw in iter(stream.readline, b''):
                text = raw.decode(errors='replace').rstrip('\r\n')
                self._sink.write(f'[{process.label}] {text}', to_screen=to_screen, to_log=to_log)

    def _running(self) -> list[NodeProcess]:
        return [p for p in self.processes if p.popen is not None and p.popen.poll() is None]

    def _alive(self) -> bool:
        """A process is running, has ended without its exit handled yet, or is waiting to be respawned."""
        return any((p.popen is not None and not p.reported) or p.respawn_at is not None for p in self.processes)

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for process in self.processes:
            if process.respawn_at is not None and now >= process.respawn_at and self.shutdown_reason is None:
                process.respawn_at = None
                self._start(process)

    def _report_exits(self) -> None:
        for process in self.processes:
            if process.popen is None or process.reported or process.popen.poll() is None:
                continue
            process.reported = True
            for reader in process.readers:
                # Its last lines come before the news of its exit. A bounded wait: a grandchild that
                # inherited the pipe must not stall the runner.
                reader.join(timeout=1.0)
            pid, code = process.popen.pid, process.popen.returncode
            if code == 0:
                self._sink.write(f'[INFO] [{process.label}]: process has finished cleanly [pid {pid}]')
            elif process.sent == signal.SIGINT and code == -signal.SIGINT:
                self._sink.write(f'[INFO] [{process.label}]: process has finished [pid {pid}, ended by SIGINT]')
            else:
                self._failed = True
                self._sink.write(f'[ERROR] [{process.label}]: process has died [pid {pid}, exit code {code}]')
            if process.shutdown_on_exit:
                self.request_shutdown(f'{process.label} exited and is marked on_exit="shutdown"')
            if process.respawn and self.shutdown_reason is None:
                process.respawn_at = time.monotonic() + process.respawn_delay
                self._sink.write(f'[INFO] [{process.label}]: respawning in {process.respawn_delay:g} s')

    def _stop_all(self) -> None:
        self._sink.write(f'[INFO] [launch]: shutting down: {self.shutdown_reason}')
        for stop_signal in _STOP_SIGNALS:
            self._report_exits()
            running = self._running()
            if not running:
                return
            if stop_signal != signal.SIGINT:
                self._failed = True
                self._sink.write(f'[WARNING] [launch]: {", ".join(p.label for p in running)} still running, '
                                 f'sending {stop_signal.name}')
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(stop_signal)
                process.sent = stop_signal
            self._wait_for_exits()

    def _wait_for_exits(self) -> None:
        """Until every process has ended, the grace period is over, or another shutdown request came."""
        requests = self._requests
        deadline = time.monotonic() + self._grace_period
        while self._running() and time.monotonic() < deadline and self._requests == requests:
            time.sleep(_POLL_INTERVAL_S)
