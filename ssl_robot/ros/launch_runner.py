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
- Environment: the runner's own, plus set_env / <env>. The shipped launch files select the project's
  shared-memory Fast DDS profile (config/fastdds_shm.xml) themselves, with a <set_env> of
  FASTDDS_DEFAULT_PROFILES_FILE, so `ros2 launch` applies it too; this runner adds no profile of its own.
  ``--dds-profile PATH`` replaces the variable for every node, ``--dds-profile none`` removes it.
- Shutdown, on SIGINT (Ctrl-C) or SIGTERM to the runner, ``--duration`` elapsing, or the exit of a node
  marked ``on_exit="shutdown"``: every node gets SIGINT, then after the grace period SIGTERM, then
  SIGKILL; another Ctrl-C skips the rest of the current grace period. Nodes run in their own sessions,
  so a terminal's Ctrl-C reaches them only through the runner, once.
- A node that exits on its own is reported (``process has died [pid N, exit code C]`` when C != 0) and
  the others keep running, unless it is marked ``on_exit="shutdown"``. A node marked ``respawn="true"``
  is started again ``respawn_delay`` seconds later, unless the launch is shutting down by then. The
  runner ends when every node has ended and none is waiting to respawn.
- Nodes run in their own sessions and, on Linux, with a parent-death signal (SIGTERM): a runner killed
  even with SIGKILL takes its nodes with it.

Exit status: 0 when every node stopped cleanly (exit code 0, or ended by the SIGINT it was sent);
1 when a node failed, or needed SIGTERM or SIGKILL; 2 when the launch file or the command line is wrong.

Not done: composable nodes, `executable`, respawn_max_retries.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution
from pathlib import Path
from typing import IO

from ssl_robot.resources import PACKAGE, share_path
from ssl_robot.ros.launch_xml import (LaunchArgument, LaunchFileError, NodeSpec, declared_arguments,
                                      load_launch_file, parse_launch_arguments)
from ssl_robot.ros.process_supervision import SHUTDOWN_GRACE_S, NodeProcess, OutputSink, Supervisor, ros_log_directory

DDS_PROFILE_ENV = 'FASTDDS_DEFAULT_PROFILES_FILE'


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
    """What a node's environment changes relative to `base` (None: removed): the launch file's set_env and
    <env>, then the --dds-profile override, if given."""
    changes: dict[str, str | None] = dict(spec.env)
    if dds_profile == 'none':
        changes[DDS_PROFILE_ENV] = None
    elif dds_profile is not None:
        if not Path(dds_profile).is_file():
            raise LaunchError(f'--dds-profile {dds_profile}: no such file')
        changes[DDS_PROFILE_ENV] = str(Path(dds_profile).resolve())
    return {name: value for name, value in changes.items() if base.get(name) != value}


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
            respawn=spec.respawn,
            respawn_delay=spec.respawn_delay,
        ))
    return processes


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
                        help=f'Fast DDS profile for every node, replacing ${DDS_PROFILE_ENV} as the launch file '
                             f"sets it (the shipped files: the environment's, else config/fastdds_shm.xml); "
                             f'none: no profile')
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
