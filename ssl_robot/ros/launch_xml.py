"""Read ROS 2 launch XML files without ROS: the subset of the format that ssl_robot's launch files use.

The launch/*.launch.xml files are the single description of the node graph. On a ROS install
`ros2 launch ssl_robot NAME.launch.xml` runs them; on a pip-only install `ssl-robot launch NAME` runs
the same files through this module (parsing and evaluation) and ssl_robot.ros.launch_runner
(processes). Anything outside the subset below is an error naming the file, the line and the item:
nothing is silently ignored, so a file that loads here means the same thing under `ros2 launch`.

Tags (attributes in brackets are optional; every action tag also takes [if] or [unless]):

- ``<launch>``: the root; holds actions.
- ``<arg name [default] [description]>``: declares a launch argument. Its value is the one already set
  (command line ``name:=value``, or an including file's ``<arg>``), else ``default``; with neither it
  is an error. Optional ``<choice value="..."/>`` children restrict the value: another one is an error
  where the argument is declared, before any node starts; a plain-text default must be one of them.
- ``<let name value>``: sets a launch configuration, read with ``$(var name)``.
- ``<node pkg exec [name] [namespace] [output] [args] [ros_args] [on_exit] [respawn] [respawn_delay]>``: one
  process.
  ``pkg`` must be ssl_robot; ``exec`` names one of its console scripts. ``output`` is ``log``
  (default: stdout and stderr to the launch log file, stderr also to the screen), ``screen`` or
  ``both``. ``args`` and ``ros_args`` are split like a shell command line, except that a substitution's
  value stays one argument. ``on_exit="shutdown"`` stops everything when this node exits.
  ``respawn="true"`` restarts the node whenever it exits, ``respawn_delay`` seconds later (default 0),
  unless the launch is shutting down; as in ROS 2 these two take plain values, not substitutions.
  Children:
  - ``<param name value>``, or ``<param name>`` holding nested ``<param>`` (names joined with ``.``),
    passed as ``-p name:=value`` and typed by rcl's YAML rules;
  - ``<param from>``: a parameters file, passed as ``--params-file`` (it must exist);
  - ``<remap from to>``;
  - ``<env name value>``: an environment variable for this node only.
- ``<set_parameter name value>``: a parameter for every node that follows in the current scope, given
  before the node's own parameters so that those override it.
- ``<push_ros_namespace namespace>`` (also spelled ``push-ros-namespace``): prefixes the namespace of
  the nodes that follow in the current scope; an absolute node namespace is not prefixed.
- ``<set_env name value>``: an environment variable for the nodes that follow in the current scope,
  also seen by later ``$(env ...)``.
- ``<group [scoped]>``: its children run in a scope (unless ``scoped="false"``): launch
  configurations, pushed namespaces, set_parameter and set_env made inside do not leak out.
- ``<include file>`` with ``<arg name value>`` children: runs another .launch.xml file. As in ROS 2,
  an include is not a scope: the given args, and the lets, namespaces, parameters and environment the
  included file sets, stay visible after it; wrap the include in a ``<group>`` to contain them. The
  file path must be absolute once substituted (use ``$(dirname)`` or ``$(find-pkg-share ssl_robot)``).

Substitutions, usable in every attribute value and nestable (``$(find-pkg-share $(var pkg))``):
``$(var NAME)``, ``$(env NAME [DEFAULT])``, ``$(find-pkg-share ssl_robot)`` (the share directory from
ssl_robot.resources; other packages need a ROS install), ``$(dirname)`` (the directory of the file
being read). Arguments are separated by spaces and may be quoted with ``'`` or ``"``.

Conditions: ``if``/``unless`` take ``true``, ``false``, ``1`` or ``0`` (any case) after substitution.

Command-line launch arguments must be declared by an ``<arg>`` in the file or in a file it includes;
undeclared ones are an error listing the declared ones, and missing required ones (no default, not
behind a condition, not given by an include) are reported together before anything runs.

Differences from ROS 2 launch, all stricter: a parameters file that does not exist is an error (ROS
warns and skips it); an include path must be absolute (ROS resolves a relative one against the
working directory); no backslash escapes in attribute values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ssl_robot.resources import PACKAGE, share_dir
from ssl_robot.ros.launch_substitutions import (SUBSTITUTIONS, Substitution, parse_template,
                                                split_command_line)
from ssl_robot.ros.launch_model import (NAME_TOKEN, LaunchArgument, LaunchPlan, NodeSpec, check_namespace,
                                        prefix_namespace)
from ssl_robot.ros.launch_xml_syntax import (CONDITIONS, LaunchFileError, Location, XmlElement, read_xml,
                                             respawn_attributes)

OUTPUT_MODES = ('log', 'screen', 'both')
_TRUE = ('true', '1')
_FALSE = ('false', '0')


# ---------------------------------------------------------------------------------------------
# Evaluation

@dataclass
class _Scope:
    """What a group scopes: launch configurations, environment, pushed namespace, global parameters."""
    configurations: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    global_parameters: tuple[tuple[str, str], ...] = ()

    def copy(self) -> _Scope:
        return replace(self, configurations=dict(self.configurations), environment=dict(self.environment))


class _Evaluator:
    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.visited_arguments: list[LaunchArgument] = []
        self.passed_by_include: set[str] = set()
        self._files: list[Path] = []
        self._actions = {
            'arg': self._arg, 'let': self._let, 'node': self._node, 'group': self._group,
            'include': self._include, 'set_env': self._set_env, 'set_parameter': self._set_parameter,
            'push_ros_namespace': self._push_ros_namespace, 'push-ros-namespace': self._push_ros_namespace,
        }

    # -- files

    def run_file(self, path: Path, scope: _Scope, where: Location | None = None) -> None:
        path = path.resolve()
        if path in self._files:
            chain = ' -> '.join(str(p) for p in [*self._files, path])
            raise LaunchFileError(f'{where}: include cycle: {chain}')
        root = read_xml(path)
        self._files.append(path)
        self._run_actions(root, scope, path)
        self._files.pop()

    def _run_actions(self, parent: XmlElement, scope: _Scope, path: Path) -> None:
        for element in parent:
            where = Location(path, element.line)
            if self._condition_holds(element, scope, where):
                self._actions[element.tag](element, scope, where)

    # -- substitutions

    def substitute(self, text: str, scope: _Scope, where: Location) -> str:
        return ''.join(self._evaluate_part(part, scope, where) for part in parse_template(text, where))

    def _evaluate_part(self, part: str | Substitution, scope: _Scope, where: Location) -> str:
        if isinstance(part, str):
            return part
        arguments = [''.join(self._evaluate_part(p, scope, where) for p in argument) for argument in part.arguments]
        if part.name not in SUBSTITUTIONS:
            raise LaunchFileError(
                f'{where}: substitution $({part.name} ...) is not supported (supported: '
                f'{", ".join(f"$({name})" for name in SUBSTITUTIONS)}); it needs a ROS install')
        low, high = SUBSTITUTIONS[part.name]
        if not low <= len(arguments) <= high:
            raise LaunchFileError(f'{where}: $({part.name}) takes {low}..{high} argument(s), got {arguments}')
        if part.name == 'var':
            name, = arguments
            if name not in scope.configurations:
                known = ', '.join(sorted(scope.configurations)) or 'none'
                raise LaunchFileError(f'{where}: $(var {name}): no launch argument or let named {name!r} '
                                      f'is set here (set: {known})')
            return scope.configurations[name]
        if part.name == 'env':
            return self._environment_variable(arguments, scope, where)
        if part.name == 'find-pkg-share':
            package, = arguments
            if package != PACKAGE:
                raise LaunchFileError(f'{where}: $(find-pkg-share {package}): only {PACKAGE} is available '
                                      f'without ROS; other packages need a ROS install (ros2 launch)')
            return str(share_dir())
        return str(where.file.parent)

    @staticmethod
    def _environment_variable(arguments: list[str], scope: _Scope, where: Location) -> str:
        name = arguments[0]
        value = scope.environment.get(name, os.environ.get(name))
        if value is not None:
            return value
        if len(arguments) == 2:
            return arguments[1]
        raise LaunchFileError(f'{where}: $(env {name}): environment variable {name} is not set '
                              f'and no default is given')

    def _attribute(self, element: XmlElement, name: str, scope: _Scope, where: Location) -> str | None:
        text = element.attrib.get(name)
        return None if text is None else self.substitute(text, scope, where)

    def _condition_holds(self, element: XmlElement, scope: _Scope, where: Location) -> bool:
        for attribute, expected in (('if', True), ('unless', False)):
            value = self._attribute(element, attribute, scope, where)
            if value is None:
                continue
            if value.lower() in _TRUE:
                return expected
            if value.lower() in _FALSE:
                return not expected
            raise LaunchFileError(f'{where}: <{element.tag} {attribute}="{element.attrib[attribute]}">: '
                                  f'{value!r} is not a boolean (true, false, 1 or 0)')
        return True

    # -- actions

    def _arg(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        argument = _declaration(element, where, conditional=False)
        self.visited_arguments.append(argument)
        if argument.name not in scope.configurations:
            if argument.default is None:
                raise LaunchFileError(f'{where}: required launch argument {argument.name!r} was not given '
                                      f'(pass {argument.name}:=VALUE)')
            scope.configurations[argument.name] = self.substitute(argument.default, scope, where)
        value = scope.configurations[argument.name]
        if argument.choices is not None and value not in argument.choices:
            raise LaunchFileError(f'{where}: launch argument {argument.name!r} is {value!r}, which is not one of '
                                  f'its choices: {", ".join(argument.choices)}')

    def _let(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        name = self._attribute(element, 'name', scope, where)
        scope.configurations[name] = self._attribute(element, 'value', scope, where)

    def _set_env(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        name = self._attribute(element, 'name', scope, where)
        scope.environment[name] = self._attribute(element, 'value', scope, where)

    def _set_parameter(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        name = self._attribute(element, 'name', scope, where)
        scope.global_parameters += ((name, self._attribute(element, 'value', scope, where)),)

    def _push_ros_namespace(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        pushed = self._attribute(element, 'namespace', scope, where)
        scope.namespace = check_namespace(prefix_namespace(scope.namespace, pushed), where)

    def _group(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        scoped = self._attribute(element, 'scoped', scope, where)
        if scoped is not None and scoped.lower() not in _TRUE + _FALSE:
            raise LaunchFileError(f'{where}: <group scoped={scoped!r}> is not a boolean')
        inner = scope if scoped is not None and scoped.lower() in _FALSE else scope.copy()
        self._run_actions(element, inner, where.file)

    def _include(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        path = Path(self._attribute(element, 'file', scope, where))
        if not path.is_absolute():
            raise LaunchFileError(f'{where}: include path {str(path)!r} is relative; start it with '
                                  f'$(dirname)/ or $(find-pkg-share {PACKAGE})/')
        if not path.name.endswith('.launch.xml'):
            raise LaunchFileError(f'{where}: can only include .launch.xml files without ROS, not {path.name}')
        if not path.is_file():
            raise LaunchFileError(f'{where}: included launch file {path} does not exist')
        for argument in element:
            argument_where = Location(where.file, argument.line)
            name = self._attribute(argument, 'name', scope, argument_where)
            scope.configurations[name] = self._attribute(argument, 'value', scope, argument_where)
            self.passed_by_include.add(name)
        self.run_file(path, scope, where)

    def _node(self, element: XmlElement, scope: _Scope, where: Location) -> None:
        def attribute(name: str) -> str | None:
            return self._attribute(element, name, scope, where)

        package = attribute('pkg')
        if package != PACKAGE:
            raise LaunchFileError(f'{where}: <node pkg="{package}">: only {PACKAGE} nodes can run without ROS; '
                                  f'nodes from other packages need a ROS install (ros2 launch)')
        name = attribute('name')
        if name is not None and not NAME_TOKEN.fullmatch(name):
            raise LaunchFileError(f'{where}: invalid ROS node name {name!r}')
        namespace = prefix_namespace(scope.namespace, attribute('namespace'))
        output = attribute('output') or 'log'
        if output not in OUTPUT_MODES:
            raise LaunchFileError(f'{where}: <node output="{output}">: expected one of {", ".join(OUTPUT_MODES)}')
        # ROS compares on_exit with "shutdown" before any substitution.
        on_exit = element.attrib.get('on_exit')
        if on_exit not in (None, 'shutdown'):
            raise LaunchFileError(f'{where}: <node on_exit="{on_exit}">: only "shutdown" is supported')
        parameters: list[Path | dict[str, str]] = [{name_: value} for name_, value in scope.global_parameters]
        remappings: list[tuple[str, str]] = []
        env = dict(scope.environment)
        for child in element:
            child_where = Location(where.file, child.line)
            if child.tag == 'param':
                parameters.append(self._parameters(child, scope, child_where))
            elif child.tag == 'remap':
                remappings.append((self._attribute(child, 'from', scope, child_where),
                                   self._attribute(child, 'to', scope, child_where)))
            else:
                env[self._attribute(child, 'name', scope, child_where)] = \
                    self._attribute(child, 'value', scope, child_where)
        self.nodes.append(NodeSpec(
            package=package,
            executable=attribute('exec'),
            name=name,
            namespace=None if namespace is None else check_namespace(namespace, where),
            parameters=tuple(parameters),
            remappings=tuple(remappings),
            arguments=tuple(self._command_line(element, 'args', scope, where)),
            ros_arguments=tuple(self._command_line(element, 'ros_args', scope, where)),
            output=output,
            env=env,
            shutdown_on_exit=on_exit == 'shutdown',
            location=where,
            **respawn_attributes(element, where),
        ))

    def _command_line(self, element: XmlElement, name: str, scope: _Scope, where: Location) -> list[str]:
        text = element.attrib.get(name)
        if text is None:
            return []
        return split_command_line(parse_template(text, where),
                                   lambda part: self._evaluate_part(part, scope, where), where)

    def _parameters(self, param: XmlElement, scope: _Scope, where: Location) -> Path | dict[str, str]:
        source = self._attribute(param, 'from', scope, where)
        if source is not None:
            path = Path(source).resolve()
            if not path.is_file():
                raise LaunchFileError(f'{where}: parameters file {path} does not exist')
            return path
        return dict(self._named_parameters(param, '', scope, where))

    def _named_parameters(self, param: XmlElement, prefix: str, scope: _Scope, where: Location):
        name = prefix + self._attribute(param, 'name', scope, where)
        if 'value' in param.attrib:
            yield name, self._attribute(param, 'value', scope, where)
            return
        for child in param:
            yield from self._named_parameters(child, name + '.', scope, Location(where.file, child.line))


def _declaration(element: XmlElement, where: Location, conditional: bool) -> LaunchArgument:
    choices = tuple(choice.attrib['value'] for choice in element) or None
    return LaunchArgument(
        name=element.attrib['name'],
        default=element.attrib.get('default'),
        description=element.attrib.get('description', ''),
        choices=choices,
        location=where,
        conditional=conditional or bool(CONDITIONS & set(element.attrib)),
    )


def declared_arguments(path: Path) -> list[LaunchArgument]:
    """The launch arguments a user can set for `path`, found without evaluating conditions: the
    <arg>s of the file and of the files it includes, minus those an <include> passes itself. Includes
    whose path needs a launch configuration ($(var ...)) are not followed."""
    found: dict[str, LaunchArgument] = {}
    _collect_declarations(path.resolve(), conditional=False, passed=frozenset(), found=found, files=())
    return list(found.values())


def _collect_declarations(path: Path, conditional: bool, passed: frozenset[str],
                          found: dict[str, LaunchArgument], files: tuple[Path, ...]) -> None:
    if path in files:
        return  # evaluation reports the cycle with its location
    root = read_xml(path)
    static = _Evaluator()

    def visit(parent: XmlElement, conditional: bool) -> None:
        for element in parent:
            where = Location(path, element.line)
            inner = conditional or bool(CONDITIONS & set(element.attrib))
            if element.tag == 'arg' and element.attrib['name'] not in passed:
                found.setdefault(element.attrib['name'], _declaration(element, where, conditional))
            elif element.tag == 'group':
                visit(element, inner)
            elif element.tag == 'include':
                try:
                    included = Path(static.substitute(element.attrib['file'], _Scope({}), where))
                except LaunchFileError:
                    continue
                if included.is_absolute() and included.is_file():
                    given = frozenset(argument.attrib['name'] for argument in element)
                    _collect_declarations(included.resolve(), inner, passed | given, found, files + (path,))

    visit(root, conditional)


def parse_launch_arguments(tokens: list[str]) -> dict[str, str]:
    """Command-line ``name:=value`` tokens to a dict."""
    arguments = {}
    for token in tokens:
        name, separator, value = token.partition(':=')
        if not separator or not name:
            raise LaunchFileError(f'launch arguments are written name:=value, got {token!r}')
        arguments[name] = value
    return arguments


def load_launch_file(path: Path, launch_args: dict[str, str]) -> LaunchPlan:
    """Evaluate a launch file with the given command-line launch arguments into the nodes it starts."""
    path = Path(path)
    declared = declared_arguments(path)
    missing = [argument for argument in declared if argument.required and argument.name not in launch_args]
    if missing:
        listing = '; '.join(f'{a.name} ({a.description or "no description"}, {a.location})' for a in missing)
        raise LaunchFileError(f'missing required launch argument(s): {listing}. Pass them as name:=value')
    evaluator = _Evaluator()
    evaluator.run_file(path, _Scope(dict(launch_args)))
    # An argument that an <include> passes is overwritten there, so it is not the user's to set.
    reachable = [a for a in evaluator.visited_arguments if a.name not in evaluator.passed_by_include]
    known = {argument.name for argument in [*declared, *reachable]}
    undeclared = sorted(set(launch_args) - known)
    if undeclared:
        raise LaunchFileError(f'{path}: launch argument(s) {", ".join(undeclared)} not declared; '
                              f'declared: {", ".join(sorted(known)) or "none"}')
    return LaunchPlan(path=path, nodes=tuple(evaluator.nodes))
