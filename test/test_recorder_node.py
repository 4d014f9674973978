"""recorder_node against a live graph: QoS matching, late topics, and the bag after SIGINT, SIGTERM, SIGKILL.

Runs only inside a loopback-only network namespace (conftest skips `ros` tests elsewhere):
scripts/loopback-run /tmp/probe/bin/python -m pytest -q test/test_recorder_node.py
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_harness import Probe, node_process
from ssl_robot.ros.convert import array_to_image, ns_to_stamp
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parent.parent
RECORDER = 'ssl_robot.nodes.recorder_node'
FAST_FLUSH = {'flush_period_s': 0.2}


def recorded(path: Path) -> dict[str, list[bytes]]:
    """The flushed messages of a bag that may still be being written, by topic; {} before it exists."""
    if not (path / 'metadata.yaml').exists():
        return {}
    with Reader(path) as reader:
        by_topic: dict[str, list[bytes]] = {c.topic: [] for c in reader.connections}
        for connection, _, data in reader.messages():
            by_topic[connection.topic].append(bytes(data))
    return by_topic


def texts(raw_messages: list[bytes]) -> list[str]:
    # Compared decoded: the bag holds the bytes as they came off the wire, CDR alignment padding included.
    return [deserialize_message(data, String).data for data in raw_messages]


def wait_for_subscriber(probe: Probe, publisher, what: str) -> None:
    probe.wait_for(lambda: publisher.get_subscription_count() > 0, 60, f'the recorder to subscribe to {what}')


def image(index: int) -> Image:
    return array_to_image(np.full((8, 10, 3), index, np.uint8), 'rgb8', ns_to_stamp(index), 'cam')


def stop(process: subprocess.Popen, signal_number: signal.Signals) -> int:
    process.send_signal(signal_number)
    return process.wait(timeout=30)


def test_records_what_publishers_offer_with_their_qos_and_closes_on_sigint(tmp_path, ros_domain_id):
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        latched = probe.node.create_publisher(String, '/episode', LATCHED_QOS)
        latched.publish(String(data='episode 1'))  # before the recorder exists: it must still get it
        events = probe.node.create_publisher(String, '/events', RELIABLE_QOS)
        with node_process(RECORDER, 'recorder', {'output': str(bag), **FAST_FLUSH}) as recorder:
            wait_for_subscriber(probe, events, '/events')
            # A topic that appears only after the recorder started.
            camera = probe.node.create_publisher(Image, '/camera/image_raw', SENSOR_QOS)
            wait_for_subscriber(probe, camera, '/camera/image_raw')
            for index in range(20):
                events.publish(String(data=f'event {index}'))
                camera.publish(image(index))
                time.sleep(0.02)
            # The latched sample comes once discovery has matched the latched publisher too (seconds).
            probe.wait_for(lambda: [len(recorded(bag).get(t, [])) for t in ('/events', '/episode')] == [20, 1], 30,
                           '20 events and the episode in the bag')
            assert stop(recorder, signal.SIGINT) == 0, ''.join(recorder.output)
    finally:
        probe.close()

    messages = recorded(bag)
    assert texts(messages['/episode']) == ['episode 1']
    assert texts(messages['/events']) == [f'event {i}' for i in range(20)]
    images = [deserialize_message(data, Image) for data in messages['/camera/image_raw']]
    assert len(images) >= 10, 'best effort over loopback lost most images'
    assert all(received == image(received.header.stamp.nanosec) for received in images)
    with Reader(bag) as reader:
        connections = {c.topic: c for c in reader.connections}
        assert not list(bag.glob('.*')), 'a partial MCAP split was left behind'
        assert reader.message_count == sum(len(v) for v in messages.values())
    offered = {topic: connections[topic].ext.offered_qos_profiles[0] for topic in
               ('/episode', '/events', '/camera/image_raw')}
    assert offered['/episode'].durability == QosDurability.TRANSIENT_LOCAL
    assert offered['/events'].reliability == QosReliability.RELIABLE
    assert offered['/camera/image_raw'].reliability == QosReliability.BEST_EFFORT
    assert all(connections[t].msgdef.data and connections[t].digest.startswith('RIHS01_') for t in offered)


def test_selected_topics_only_and_sigterm_closes_the_bag(tmp_path, ros_domain_id):
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        wanted = probe.node.create_publisher(String, '/wanted', RELIABLE_QOS)
        other = probe.node.create_publisher(String, '/other', RELIABLE_QOS)
        params = {'output': str(bag), 'storage': 'sqlite3', 'topics': '[/wanted]', **FAST_FLUSH}
        with node_process(RECORDER, 'recorder', params,
                          args=['--ros-args', '--params-file', str(REPO / 'config' / 'recorder.yaml')]) as recorder:
            wait_for_subscriber(probe, wanted, '/wanted')
            for index in range(5):
                wanted.publish(String(data=f'w{index}'))
                other.publish(String(data=f'o{index}'))
            probe.wait_for(lambda: len(recorded(bag).get('/wanted', [])) == 5, 30, '5 messages in the bag')
            assert other.get_subscription_count() == 0
            assert stop(recorder, signal.SIGTERM) == 0, ''.join(recorder.output)
    finally:
        probe.close()
    assert list(recorded(bag)) == ['/wanted']
    assert sorted(path.name for path in bag.iterdir()) == ['bag.db3', 'metadata.yaml']


def test_sigkilled_recorder_leaves_a_bag_that_opens(tmp_path, ros_domain_id):
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        events = probe.node.create_publisher(String, '/events', RELIABLE_QOS)
        with node_process(RECORDER, 'recorder', {'output': str(bag), **FAST_FLUSH}) as recorder:
            wait_for_subscriber(probe, events, '/events')
            published = 0

            def publish_and_count() -> bool:
                nonlocal published
                events.publish(String(data=f'event {published}'))
                published += 1
                return len(recorded(bag).get('/events', [])) >= 30

            probe.wait_for(publish_and_count, 60, '30 flushed events')
            stop(recorder, signal.SIGKILL)
    finally:
        probe.close()
    messages = recorded(bag)['/events']
    assert len(messages) >= 30
    assert texts(messages) == [f'event {i}' for i in range(len(messages))]
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic == '/events']
        assert connections[0].msgcount == len(messages)
        assert [reader.deserialize(data, c.msgtype).data for c, _, data in reader.messages(connections)] == texts(
            messages)


def test_existing_output_is_a_clear_error(tmp_path, ros_domain_id):
    (tmp_path / 'bag').mkdir()
    result = subprocess.run([sys.executable, '-m', RECORDER, '--ros-args', '-p', f'output:={tmp_path / "bag"}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'already exists' in result.stderr and 'Traceback' not in result.stderr


def test_cli_record_stops_after_its_duration(tmp_path, ros_domain_id):
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        events = probe.node.create_publisher(String, '/events', RELIABLE_QOS)
        recorder = subprocess.Popen([sys.executable, '-m', 'ssl_robot.cli', 'record', '-o', str(bag),
                                     '--duration', '5', '/events'], stderr=subprocess.PIPE, text=True)
        try:
            wait_for_subscriber(probe, events, '/events')
            for index in range(5):
                events.publish(String(data=f'event {index}'))
            assert recorder.wait(timeout=60) == 0, recorder.stderr.read()
        finally:
            recorder.kill()
            recorder.stderr.close()
    finally:
        probe.close()
    messages = recorded(bag)
    assert list(messages) == ['/events'] and texts(messages['/events']) == [f'event {i}' for i in range(5)]


def test_a_full_disk_closes_the_bag_and_exits_with_one_line(tmp_path, ros_domain_id):
    # A reserve larger than any disk: the first message finds the disk "full". How much of the stream survives
    # a disk filling up is test_bag_writer's; here, that the node stops cleanly, says why, and the bag opens.
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        events = probe.node.create_publisher(String, '/events', RELIABLE_QOS)
        # Only /events: a message of another topic (/rosout) would fill the "disk" before /events is subscribed.
        params = {'output': str(bag), 'topics': '[/events]', 'min_free_mb': 1e12}
        with node_process(RECORDER, 'recorder', params) as recorder:
            wait_for_subscriber(probe, events, '/events')
            events.publish(String(data='event 0'))
            assert recorder.wait(timeout=60) == 1
    finally:
        probe.close()
    output = ''.join(recorder.output)  # complete once node_process has joined its reader
    assert 'reserve that finishing the bag needs' in output and 'Traceback' not in output, output
    with AnyReader([bag]) as reader:
        assert reader.message_count == 0
