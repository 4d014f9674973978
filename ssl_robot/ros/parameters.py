"""Node parameters from a frozen dataclass, the same way in every ssl_robot node.

A node's parameters are the fields of one dataclass (ssl_robot/params/): declare_params declares each as a ROS
parameter, its default the field's and its description the docstring under the field, then reads them all once
into the dataclass, whose __post_init__ refuses bad values naming the parameter and the value. The node hands the
dataclass (or its fields) to the pure code; the params files in config/ give the values.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

Params = TypeVar('Params')

# An empty list default says nothing of its element type, which ROS needs: the field's annotation says it.
_ARRAY_TYPES = {str: Parameter.Type.STRING_ARRAY, float: Parameter.Type.DOUBLE_ARRAY,
                int: Parameter.Type.INTEGER_ARRAY, bool: Parameter.Type.BOOL_ARRAY}


@functools.cache
def field_docs(params_class: type) -> dict[str, str]:
    """The docstring under each field of a dataclass and its bases, on one line; TypeError naming a field that has
    none, since it becomes the parameter's only description."""
    docs: dict[str, str] = {}
    for cls in reversed(params_class.__mro__[:-1]):
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        for statement, following in zip(body, body[1:]):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[statement.target.id] = ' '.join(following.value.value.split())
    undocumented = [f.name for f in dataclasses.fields(params_class) if f.name not in docs]
    if undocumented:
        raise TypeError(f'{params_class.__name__} fields {undocumented} have no docstring to describe them with')
    return docs


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f'parameter field {field.name} has no default: every node parameter needs one')


def _ros_default(field: dataclasses.Field, annotation: Any) -> Any:
    """The field's default as ROS takes it: a sequence as a list, an empty one as its array type."""
    default = _default(field)
    if not isinstance(default, (tuple, list)):
        return default
    if default:
        return list(default)
    element = typing.get_args(annotation)[0]
    return _ARRAY_TYPES[element]


def declare_params(node: Node, params_class: type[Params], *, read_only: bool) -> Params:
    """Declare every field of params_class as a parameter of node and read them all into one params_class.

    read_only: for nodes that build their topics, models and buffers from the parameters once at start, where a
    change accepted later would silently do nothing, so it is refused instead."""
    hints = typing.get_type_hints(params_class)
    docs = field_docs(params_class)
    values = {}
    for field in dataclasses.fields(params_class):
        descriptor = ParameterDescriptor(description=docs[field.name], read_only=read_only)
        node.declare_parameter(field.name, _ros_default(field, hints[field.name]), descriptor)
        values[field.name] = read_value(node, field.name)
    return params_class(**values)


def read_value(node: Node, name: str) -> Any:
    """The current value of a parameter, a ROS array as a tuple (an unset array as an empty one)."""
    value = node.get_parameter_or(name).value  # an unset array (declared by type) reads as None
    if value is None:
        return ()
    return tuple(value) if not isinstance(value, (str, bool, int, float)) else value


def expand_topics(node: Node, names: str | tuple[str, ...]) -> Any:
    """A topic-name parameter (or a tuple of them) as the full names they mean in this node's namespace: a relative
    name is expanded, remapping still applies where it is subscribed. What logs and diagnostics show."""
    if isinstance(names, str):
        return node.resolve_topic_name(names, only_expand=True)
    return tuple(node.resolve_topic_name(name, only_expand=True) for name in names)


