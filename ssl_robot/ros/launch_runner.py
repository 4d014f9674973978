"""`ssl-robot launch`: run a launch/*.launch.xml file without ROS's launch tools (pip-only installs).

The file is read by ssl_robot.ros.launch_xml (its docstring lists the supported subset of the
format); this module starts and supervises the nodes, mirroring `ros2 launch`:

- Each <node> is its own process: ``python -c <load the console script> ARGS --ros-args -r __node:=NAME
  -r __ns:=/NS -p name:=value --params-file FILE -r from:=to``. The executable is looked up among the
  console_scripts that the installed ssl_robot distribution declares (setup.py), so the package must be
  installed, editable or not (``pip install -e .``).
- Output lines are prefixed with ``[label]`` (the node name, else the executable) and written to
  stdout as they come. ``output="log"`` (the default) sends stdout and stderr to
  ``<ROS log dir>/<date>-ssl-robot-launch-<pid>/launch.log`` and stderr also to the screen;
  ``screen`` sends both to the screen only, ``both`` to both places. The ROS log dir is
  $ROS_LOG_DIR, else $ROS_HOME/log, else ~/.ros/log.
- Environment: the runner's own, plus set_env / <env>, plus FASTDDS_DEFAULT_PROFILES_FILE pointing at
  the project's shared-memory Fast DDS profile (config/fastdds_shm.xml) when it is not already set;
  ``--dds-profile PATH`` replaces it, ``--dds-profile none`` removes it.
- Shutdown, on SIGINT (Ctrl-C) or SIGTERM to the runner, ``--duration`` elapsing, or the exit of a node
  marked ``on_exit="shutdown"``: every node gets SIGINT, then after the grace period SIGTERM, then
  SIGKILL; another Ctrl-C skips the rest of the current grace period. Nodes run in their own sessions,
  so a terminal's Ctrl-C reaches them only through the runner, once.
- A node that exits on its own is reported (``process has died [pid N, exit code C]`` when C != 0) and
  the others keep running, unless it is marked ``on_exit="shutdown"``. The runner ends when every node
  has ended.

Exit status: 0 when every node stopped cleanly (exit code 0, or ended by the SIGINT it was sent);
1 when a node failed, or needed SIGTERM or SIGKILL; 2 when the launch file or the command line is wrong.

Not done: respawn, composable nodes, `executable`; a runner killed with SIGKILL leaves its nodes running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution
from pathlib import Path
from typing import IO, TextIO

from ssl_robot.resources import PACKAGE, share_path
from ssl_robot.ros.launch_xml import (LaunchArgument, LaunchFileError, NodeSpec, declared_arguments,
                                      load_launch_file, parse_launch_arguments)

DDS_PROFILE_ENV = 'FASTDDS_DEFAULT_PROFILES_FILE'
SHUTDOWN_GRACE_S = 5.0
_POLL_INTERVAL_S = 0.05
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


class LaunchError(RuntimeError):
    """Something outside the launch file keeps it from running: a missing file, executable or install."""


# ---------------------------------------------------------------------------------------------
# From a launch plan to command lines

def find_launch_file(name_or_path: str) -> Path:
    """A path is used as is; a NAME means share/ssl_robot/launch/NAME.launch.xml."""
    if os.sep in name_or_path or Path(name_or_path).is_file():
        path = Path(name_or_path)
        if not path.is_file():
            raise LaunchError(f'launch file {path} does not exist')
        return path
    name = name_or_path.removesuffix('.launch.xml')
    try:
        path = share_path('launch', f'{name}.launch.xml')
    except FileNotFoundError as error:
        raise LaunchError(str(error)) from error
    if not path.is_file():
        available = sorted(p.name.removesuffix('.launch.xml') for p in path.parent.glob('*.launch.xml'))
        raise LaunchError(f'no launch file named {name!r} ({path} does not exist); '
                          f'available: {", ".join(available) or "none"}')
    return path


def node_entry_points() -> dict[str, EntryPoint]:
    """The console scripts of the installed ssl_robot distribution, by name."""
    try:
        installed = distribution(PACKAGE)
    except PackageNotFoundError as error:
        raise LaunchError(f'the {PACKAGE} distribution is not installed, so its node executables are unknown: '
                          f'run `pip install -e .` in the checkout first') from error
    return {entry.name: entry for entry in installed.entry_points if entry.group == 'console_scripts'}


def node_command(spec: NodeSpec, entry_points: Mapping[str, EntryPoint]) -> list[str]:
    entry_point = entry_points.get(spec.executable)
    if entry_point is None:
        raise LaunchError(f'{spec.location}: <node exec="{spec.executable}">: {PACKAGE} has no such executable '
                          f'(installed: {", ".join(sorted(entry_points)) or "none"}); if setup.py declares it, '
                          f'reinstall with `pip install -e .`')
    # Loading the entry point in the child runs exactly what the console script runs, also in editable
    # installs, without depending on where pip put the script or on PATH.
    literals = ', '.join(json.dumps(text) for text in (entry_point.name, entry_point.value, entry_point.group))
    bootstrap = f'import sys; from importlib.metadata import EntryPoint; sys.exit(EntryPoint({literals}).load()())'
    return [sys.executable, '-c', bootstrap, *spec.command_arguments()]


def node_environment_changes(spec: NodeSpec, dds_profile: str | None,
                             base: Mapping[str, str]) -> dict[str, str | None]:
    """What a node's environment changes relative to `base` (None: removed)."""
    changes: dict[str, str | None] = dict(spec.env)
    if dds_profile == 'none':
        changes[DDS_PROFILE_ENV] = None
    elif dds_profile is not None:
        if not Path(dds_profile).is_file():
            raise LaunchError(f'--dds-profile {dds_profile}: no such file')
        changes[DDS_PROFILE_ENV] = str(Path(dds_profile).resolve())
    elif DDS_PROFILE_ENV not in {**base, **spec.env}:
        with contextlib.suppress(FileNotFoundError):  # no share directory: no project profile either
            default = share_path('config', 'fastdds_shm.xml')
            if default.is_file():
                changes[DDS_PROFILE_ENV] = str(default)
    return {name: value for name, value in changes.items() if base.get(name) != value}


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


def plan_processes(nodes: tuple[NodeSpec, ...], entry_points: Mapping[str, EntryPoint],
                   dds_profile: str | None, base: Mapping[str, str]) -> list[NodeProcess]:
    processes = []
    labels: dict[str, int] = {}
    for spec in nodes:
        label = spec.name or spec.executable
        labels[label] = labels.get(label, 0) + 1
        processes.append(NodeProcess(
            label=label if labels[label] == 1 else f'{label}-{labels[label]}',
            command=node_command(spec, entry_points),
            environment_changes=node_environment_changes(spec, dds_profile, base),
            output=spec.output,
            shutdown_on_exit=spec.shutdown_on_exit,
        ))
    return processes


# ---------------------------------------------------------------------------------------------
# Supervision

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
            while self.shutdown_reason is None and self._running():
                self._report_exits()
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_shutdown(f'--duration {duration:g} s elapsed')
                time.sleep(_POLL_INTERVAL_S)
        finally:
            if self._running():
                self._stop_all()
            self._report_exits()
        return 1 if self._failed else 0

    def _start(self, process: NodeProcess) -> None:
        try:
            process.popen = subprocess.Popen(
                process.command, env=self._environment(process),
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


# ---------------------------------------------------------------------------------------------
# Command line

def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'expected a positive number of seconds, got {text}')
    return value


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('launch', metavar='NAME|PATH',
                        help='a launch file: NAME for share/ssl_robot/launch/NAME.launch.xml, or a path')
    parser.add_argument('launch_arguments', nargs='*', metavar='name:=value',
                        help='launch arguments, right after NAME|PATH (before any option)')
    parser.add_argument('--duration', type=_positive_seconds, metavar='S',
                        help='shut down after S seconds (default: run until Ctrl-C or every node has ended)')
    parser.add_argument('-s', '--show-args', action='store_true',
                        help='list the launch arguments with their defaults and descriptions, and exit')
    parser.add_argument('--print', action='store_true', help='print the node command lines without running them')
    parser.add_argument('--dds-profile', metavar='PATH|none',
                        help=f'Fast DDS profile for the nodes (default: ${DDS_PROFILE_ENV} if set, else the '
                             f"project's shared-memory profile config/fastdds_shm.xml); none: no profile")
    parser.add_argument('--grace-period', type=_positive_seconds, default=SHUTDOWN_GRACE_S, metavar='S',
                        help='on shutdown, seconds between SIGINT, SIGTERM and SIGKILL (default: %(default)s)')


def format_arguments(arguments: list[LaunchArgument]) -> str:
    if not arguments:
        return 'No arguments.'
    lines = ["Arguments (pass arguments as '<name>:=<value>'):"]
    for argument in arguments:
        lines += ['', f"    '{argument.name}':", f'        {argument.description or "no description given"}']
        if argument.choices is not None:
            lines.append(f'        Valid choices are: {", ".join(argument.choices)}')
        if argument.default is not None:
            lines.append(f"        (default: '{argument.default}')")
        elif argument.conditional:
            lines.append('        (required when its condition holds)')
        else:
            lines.append('        (required)')
    return '\n'.join(lines)


def _open_launch_log(processes: list[NodeProcess]) -> IO[str] | None:
    if all(process.output == 'screen' for process in processes):
        return None
    directory = ros_log_directory() / f'{time.strftime("%Y-%m-%d-%H-%M-%S")}-ssl-robot-launch-{os.getpid()}'
    directory.mkdir(parents=True, exist_ok=True)
    return open(directory / 'launch.log', 'a', encoding='utf-8')


def run_launch(args: argparse.Namespace) -> int:
    """`ssl-robot launch`: see the module docstring."""
    try:
        path = find_launch_file(args.launch)
        if args.show_args:
            print(format_arguments(declared_arguments(path)))
            return 0
        plan = load_launch_file(path, parse_launch_arguments(args.launch_arguments))
        processes = plan_processes(plan.nodes, node_entry_points(), args.dds_profile, os.environ)
    except (LaunchFileError, LaunchError) as error:
        print(f'ssl-robot launch: error: {error}', file=sys.stderr)
        return 2
    if args.print:
        for process in processes:
            print(f'[{process.label}] {process.describe()}')
        return 0
    if not processes:
        print(f'{path} starts no nodes with these arguments')
        return 0
    with contextlib.ExitStack() as stack:
        log = _open_launch_log(processes)
        if log is not None:
            stack.enter_context(log)
            print(f'[INFO] [launch]: node output log: {log.name}', flush=True)
        supervisor = Supervisor(processes, OutputSink(sys.stdout, log), args.grace_period)
        with supervisor.handling_signals():
            return supervisor.run(args.duration)
