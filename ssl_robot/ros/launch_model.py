"""What a launch file evaluates to (ssl_robot.ros.launch_xml): its arguments, and the nodes it starts with their
command lines; ROS 2 name and namespace rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ssl_robot.ros.launch_xml_syntax import LaunchFileError, Location

# ROS 2 name rules (rcl validate_node_name / validate_namespace): tokens of letters, digits and
# underscores that do not start with a digit.
NAME_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


@dataclass(frozen=True)
class LaunchArgument:
    """An ``<arg>`` declaration as written (the default is not substituted)."""
    name: str
    default: str | None
    description: str
    choices: tuple[str, ...] | None
    location: Location
    conditional: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.conditional


@dataclass(frozen=True)
class NodeSpec:
    """One node process, fully substituted."""
    package: str
    executable: str
    name: str | None
    namespace: str | None
    parameters: tuple[Path | dict[str, str], ...]
    remappings: tuple[tuple[str, str], ...]
    arguments: tuple[str, ...]
    ros_arguments: tuple[str, ...]
    output: str
    env: dict[str, str]
    shutdown_on_exit: bool
    location: Location
    respawn: bool = False  # restart it when it exits, unless the launch is shutting down
    respawn_delay: float = 0.0  # seconds between its exit and its restart

    def command_arguments(self) -> list[str]:
        """The arguments after the executable, in the order launch_ros's Node builds them."""
        args = list(self.arguments)
        if self.ros_arguments:
            args += ['--ros-args', *self.ros_arguments]
        args.append('--ros-args')
        if self.name is not None:
            args += ['-r', f'__node:={self.name}']
        if self.namespace is not None:
            args += ['-r', f'__ns:={self.namespace}']
        for parameters in self.parameters:
            if isinstance(parameters, Path):
                args += ['--params-file', str(parameters)]
            else:
                for name, value in parameters.items():
                    args += ['-p', f'{name}:={value}']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args


@dataclass(frozen=True)
class LaunchPlan:
    path: Path
    nodes: tuple[NodeSpec, ...]


def prefix_namespace(base: str | None, namespace: str | None) -> str | None:
    """launch_ros semantics: a relative namespace is prefixed by the pushed one; the result is absolute."""
    if namespace is None:
        combined = base
    elif base is None or namespace.startswith('/'):
        combined = namespace
    else:
        combined = f'{base.rstrip("/")}/{namespace}'
    if combined is None:
        return None
    return '/' + combined.strip('/')


def check_namespace(namespace: str, where: Location) -> str:
    tokens = namespace.strip('/').split('/') if namespace != '/' else []
    if not all(NAME_TOKEN.fullmatch(token) for token in tokens):
        raise LaunchFileError(f'{where}: invalid ROS namespace {namespace!r}')
    return namespace
