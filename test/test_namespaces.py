"""Two robots side by side: pushed into namespaces (launch argument `namespace`), each keeps its topics and
services to itself. The nodes use relative names (ssl_robot.topics.in_namespace); /clock and /diagnostics stay
ROS-wide by convention."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ros_harness import running
from ssl_robot import topics
from ssl_robot.ros.launch_xml import load_launch_file

REPOSITORY = Path(__file__).resolve().parent.parent
LAUNCH = REPOSITORY / 'launch'
# What a topic-valued parameter would start with if it escaped the namespace.
ABSOLUTE_PREFIXES = ('/cameras/', '/object_camera/', '/reward/', '/goal', '/grasp2vec/', '/sim/', '/arm/',
                     '/gripper/', '/embeddings', '/joint_states')


def test_in_namespace_makes_names_relative_except_the_ros_wide_ones():
    assert topics.in_namespace(topics.camera_image('front_left')) == 'cameras/front_left/image_raw'
    assert topics.in_namespace(topics.GOAL_SAMPLE_SERVICE) == 'goal/sample'
    assert topics.in_namespace(topics.CLOCK) == '/clock'
    assert topics.in_namespace(topics.DIAGNOSTICS) == '/diagnostics'


def strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize('path', sorted((REPOSITORY / 'config').glob('*.yaml')), ids=lambda p: p.name)
def test_config_files_name_topics_relative_to_the_node_namespace(path):
    absolute = [text for text in strings(yaml.safe_load(path.read_text())) if text.startswith(ABSOLUTE_PREFIXES)]
    assert not absolute, absolute


@pytest.mark.parametrize('name', ['sim.launch.xml', 'robot.launch.xml', 'main_job.launch.xml'])
def test_the_namespace_argument_pushes_every_node_and_no_topic_parameter_escapes_it(monkeypatch, name):
    monkeypatch.setenv('SSL_ROBOT_SHARE', str(REPOSITORY))
    nodes = load_launch_file(LAUNCH / name, {'namespace': 'robot_a'}).nodes
    assert nodes and {node.namespace for node in nodes} == {'/robot_a'}
    for node in nodes:
        values = [value for group in node.parameters if isinstance(group, dict) for value in group.values()]
        for text in values:
            assert not any(prefix in text for prefix in ABSOLUTE_PREFIXES), (node.name, text)


# ---------------------------------------------------------------------------------------------
# Two sim robots on one graph

WAIT_S = 120.0


@pytest.mark.ros
@pytest.mark.slow
def test_two_sim_robots_in_namespaces_keep_their_topics_and_commands_apart(probe):
    from sensor_msgs.msg import Image
    from std_msgs.msg import Int64, String

    from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    robots = ('robot_a', 'robot_b')
    images = {robot: 0 for robot in robots}
    seeds: dict[str, list[int]] = {robot: [] for robot in robots}

    def count_image(robot: str, _message: Image) -> None:
        with probe.lock:
            images[robot] += 1

    def record_episode(robot: str, message: String) -> None:
        with probe.lock:
            seeds[robot].append(json.loads(message.data)['seed'])

    resets = {}
    for robot in robots:
        probe.node.create_subscription(Image, f'/{robot}/cameras/front_left/image_raw',
                                       lambda m, r=robot: count_image(r, m), SENSOR_QOS)
        probe.node.create_subscription(String, f'/{robot}/sim/episode', lambda m, r=robot: record_episode(r, m),
                                       LATCHED_QOS)
        resets[robot] = probe.node.create_publisher(Int64, f'/{robot}/sim/reset_with_seed', RELIABLE_QOS)

    common = ['learning:=false', 'seed:=5', 'real_time_factor:=0.5']
    launch = [sys.executable, '-m', 'ssl_robot.cli', 'launch', 'sim']
    with running([*launch, 'namespace:=robot_a', *common]), running([*launch, 'namespace:=robot_b', *common]):
        probe.wait_for(lambda: all(images[robot] > 0 for robot in robots), WAIT_S, 'images from both robots')
        names = {name for name, _ in probe.node.get_topic_names_and_types()}
        assert '/robot_a/cameras/front_left/image_raw' in names and '/robot_b/cameras/front_left/image_raw' in names
        assert not any(name.startswith(('/cameras/', '/sim/', '/joint_states')) for name in names), sorted(names)
        for robot, seed in (('robot_a', 77), ('robot_b', 88)):
            probe.wait_for(lambda r=robot: resets[r].get_subscription_count() > 0, WAIT_S, f'{robot} to listen')
            resets[robot].publish(Int64(data=seed))
            probe.wait_for(lambda r=robot, s=seed: s in seeds[r], WAIT_S, f'{robot} to reset with seed {seed}')
    with probe.lock:
        assert 88 not in seeds['robot_a'] and 77 not in seeds['robot_b'], seeds
