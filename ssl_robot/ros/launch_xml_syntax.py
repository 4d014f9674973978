"""Reading a launch XML file: the XML itself (with line numbers for every error) and the structure
rules of the supported subset (which tags, attributes and children are allowed where). Evaluation is in
ssl_robot.ros.launch_xml; the supported subset is documented there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree
from xml.parsers import expat


class LaunchFileError(ValueError):
    """A launch file that cannot be read, is outside the supported subset, or cannot be evaluated."""


@dataclass(frozen=True)
class Location:
    file: Path
    line: int | None = None

    def __str__(self) -> str:
        return f'{self.file}:{self.line}' if self.line is not None else str(self.file)



class XmlElement(ElementTree.Element):
    line: int | None = None


def read_xml(path: Path) -> XmlElement:
    # ElementTree's own parser does not keep line numbers; driving its TreeBuilder from expat (the
    # parser ElementTree uses underneath) does, so every error can point at its line.
    builder = ElementTree.TreeBuilder(element_factory=XmlElement)
    parser = expat.ParserCreate()

    def start(tag: str, attributes: dict[str, str]) -> None:
        builder.start(tag, attributes).line = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LaunchFileError(f'cannot read launch file {path}: {error.strerror}') from error
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise LaunchFileError(
            f'{Location(path, error.lineno)}: not well-formed XML: {expat.ErrorString(error.code)}') from error
    root = builder.close()
    if root.tag != 'launch':
        raise LaunchFileError(f'{Location(path, root.line)}: the root element must be <launch>, not <{root.tag}>')
    if root.attrib:
        raise LaunchFileError(f'{Location(path, root.line)}: <launch> takes no attributes, got '
                              f'{", ".join(sorted(root.attrib))}')
    _check_structure(root, path, ACTIONS)
    return root


@dataclass(frozen=True)
class _TagRule:
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    children: frozenset[str] = frozenset()


ACTIONS = frozenset({'arg', 'let', 'node', 'group', 'include', 'set_env', 'set_parameter',
                      'push_ros_namespace', 'push-ros-namespace'})
CONDITIONS = frozenset({'if', 'unless'})


def _action(required: set[str], optional: set[str] = frozenset(), children: frozenset[str] = frozenset()) -> _TagRule:
    return _TagRule(frozenset(required), frozenset(optional) | CONDITIONS, children)


_PUSH_NAMESPACE = _action({'namespace'})
# Keyed by (parent tag, tag): <arg> and <param> mean different things under different parents.
_RULES: dict[tuple[str, str], _TagRule] = {
    ('launch', 'arg'): _action({'name'}, {'default', 'description'}, frozenset({'choice'})),
    ('arg', 'choice'): _TagRule(frozenset({'value'})),
    ('launch', 'let'): _action({'name', 'value'}),
    ('launch', 'node'): _action({'pkg', 'exec'}, {'name', 'namespace', 'output', 'args', 'ros_args', 'on_exit',
                                                  'respawn', 'respawn_delay'},
                                frozenset({'param', 'remap', 'env'})),
    ('node', 'param'): _TagRule(frozenset(), frozenset({'name', 'value', 'from'}), frozenset({'param'})),
    ('param', 'param'): _TagRule(frozenset({'name'}), frozenset({'value'}), frozenset({'param'})),
    ('node', 'remap'): _TagRule(frozenset({'from', 'to'})),
    ('node', 'env'): _TagRule(frozenset({'name', 'value'})),
    ('launch', 'set_parameter'): _action({'name', 'value'}),
    ('launch', 'push_ros_namespace'): _PUSH_NAMESPACE,
    ('launch', 'push-ros-namespace'): _PUSH_NAMESPACE,
    ('launch', 'set_env'): _action({'name', 'value'}),
    ('launch', 'group'): _action(set(), {'scoped'}, ACTIONS),
    ('launch', 'include'): _action({'file'}, set(), frozenset({'arg'})),
    ('include', 'arg'): _TagRule(frozenset({'name', 'value'})),
}


def _rule_for(parent: str, tag: str) -> _TagRule | None:
    # Actions mean the same at the top of a file and inside a group.
    return _RULES.get(('launch' if parent == 'group' else parent, tag))


def _check_structure(element: XmlElement, path: Path, allowed: frozenset[str]) -> None:
    """Reject unknown tags, unknown or missing attributes and stray text, in every branch, taken or not."""
    if (element.text or '').strip():
        raise LaunchFileError(f'{Location(path, element.line)}: unexpected text in <{element.tag}>')
    for child in element:
        where = Location(path, child.line)
        rule = _rule_for(element.tag, child.tag) if child.tag in allowed else None
        if rule is None:
            raise LaunchFileError(
                f'{where}: <{child.tag}> is not supported inside <{element.tag}> '
                f'(supported: {", ".join(sorted(allowed)) or "no children"})')
        attributes = set(child.attrib)
        missing = rule.required - attributes
        if missing:
            raise LaunchFileError(f'{where}: <{child.tag}> needs attribute(s) {", ".join(sorted(missing))}')
        unknown = attributes - rule.required - rule.optional
        if unknown:
            raise LaunchFileError(
                f'{where}: <{child.tag}> attribute(s) {", ".join(sorted(unknown))} not supported '
                f'(supported: {", ".join(sorted(rule.required | rule.optional))})')
        if CONDITIONS <= attributes:
            raise LaunchFileError(f'{where}: <{child.tag}> cannot have both if and unless')
        if (child.tail or '').strip():
            raise LaunchFileError(f'{where}: unexpected text after <{child.tag}>')
        if child.tag == 'param':
            _check_param(child, where)
        if child.tag == 'arg' and len(child):
            _check_choices(child, where)
        _check_structure(child, path, rule.children)


def _check_choices(arg: XmlElement, where: Location) -> None:
    # As DeclareLaunchArgument's constructor: a plain-text default must be one of the choices.
    default = arg.attrib.get('default')
    choices = [choice.attrib['value'] for choice in arg]
    if default is not None and '$(' not in default and default not in choices:
        raise LaunchFileError(f'{where}: <arg name="{arg.attrib["name"]}">: its default {default!r} is not one of '
                              f'its choices: {", ".join(choices)}')


def _check_param(param: XmlElement, where: Location) -> None:
    has_children = len(param) > 0
    if 'from' in param.attrib:
        if 'name' in param.attrib or 'value' in param.attrib or has_children:
            raise LaunchFileError(f'{where}: <param from=...> takes no name, value or nested <param>')
    elif 'name' not in param.attrib:
        raise LaunchFileError(f'{where}: <param> needs either name or from')
    elif ('value' in param.attrib) == has_children:
        raise LaunchFileError(f'{where}: <param name=...> needs either value or nested <param> (not both)')


def respawn_attributes(node: XmlElement, where: Location) -> dict[str, bool | float]:
    """A <node>'s respawn and respawn_delay, checked."""
    # As launch's ExecuteProcess.parse: respawn is read as a bool and respawn_delay as a float >= 0, neither
    # through substitutions.
    respawn = node.attrib.get('respawn', 'false')
    if respawn not in ('true', 'false'):
        raise LaunchFileError(f'{where}: <node respawn="{respawn}">: expected true or false (no substitutions)')
    text = node.attrib.get('respawn_delay', '0')
    try:
        delay = float(text)
    except ValueError:
        delay = float('nan')
    if not delay >= 0:
        raise LaunchFileError(f'{where}: <node respawn_delay="{text}">: expected a non-negative number of seconds')
    return {'respawn': respawn == 'true', 'respawn_delay': delay}
