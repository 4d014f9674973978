"""declare_params: a node's parameters declared from its dataclass (descriptions from the field docstrings) and read
once into it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from ssl_robot.params.recorder import RecorderParams
from ssl_robot.ros.parameters import declare_params

pytestmark = pytest.mark.ros


@dataclass(frozen=True, kw_only=True)
class ExampleParams:
    rate_hz: float = 10.0
    """how often, per second"""
    names: tuple[str, ...] = ('a', 'b')
    """which ones"""
    empty: tuple[float, ...] = ()
    """none by default"""

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f'parameter rate_hz must be > 0, got {self.rate_hz}')


@pytest.fixture
def make_node(ros_domain_id):
    context = Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    nodes = []

    def make(**overrides) -> Node:
        node = Node('params_test', context=context,
                    parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_defaults_and_overrides_are_read_into_the_dataclass_with_sequences_as_tuples(make_node):
    assert declare_params(make_node(), ExampleParams, read_only=True) == ExampleParams()
    node = make_node(rate_hz=2.5, names=['x'], empty=[1.0, 2.0])
    assert declare_params(node, ExampleParams, read_only=True) == ExampleParams(rate_hz=2.5, names=('x',),
                                                                                 empty=(1.0, 2.0))


def test_each_parameter_is_described_by_its_field_docstring_and_read_only_as_asked(make_node):
    node = make_node()
    declare_params(node, ExampleParams, read_only=True)
    descriptors = node.describe_parameters(['rate_hz', 'names', 'empty'])
    assert [d.description for d in descriptors] == ['how often, per second', 'which ones', 'none by default']
    assert all(d.read_only for d in descriptors)
    writable = make_node()
    declare_params(writable, RecorderParams, read_only=False)
    assert not writable.describe_parameter('storage').read_only
    assert writable.describe_parameter('topics').description.startswith('topics to record')


def test_a_bad_value_is_refused_by_the_dataclass_naming_it(make_node):
    with pytest.raises(ValueError, match='parameter rate_hz must be > 0, got -1.0'):
        declare_params(make_node(rate_hz=-1.0), ExampleParams, read_only=True)
