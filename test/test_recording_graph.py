"""Integration: record the live sim graph for 10 seconds and reopen the bag with rosbags."""

from __future__ import annotations

import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.data.bag_summary import summarize_bag
from ssl_robot.sim.config import load_sim_config

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CAMERAS = [camera.name for camera in load_sim_config().cameras]
RECORD_SECONDS = 10


def test_ten_second_recording_reopens_with_topics_counts_and_definitions(tmp_path, ros_domain_id):
    bag = tmp_path / 'bag'
    probe = Probe(ros_domain_id)
    try:
        with node_process('ssl_robot.nodes.sim_node', 'sim'):
            # The recorder starts once the sim's topics exist, so the whole window has a publisher.
            probe.wait_for(lambda: any(t == topics.camera_image(CAMERAS[-1])
                                       for t, _ in probe.node.get_topic_names_and_types()), 120, 'sim topics')
            with node_process('ssl_robot.nodes.recorder_node', 'recorder',
                              {'output': str(bag), 'max_duration_s': float(RECORD_SECONDS)}) as recorder:
                recorder.wait(timeout=RECORD_SECONDS + 60)
                assert recorder.returncode == 0, ''.join(recorder.output)[-3000:]
    finally:
        probe.close()

    summary = {row.topic: row for row in summarize_bag(bag)}
    expected = {topics.camera_image(c) for c in CAMERAS} | {topics.camera_info(c) for c in CAMERAS} | {
        topics.camera_image(topics.OBJECT_CAMERA), topics.CLOCK, topics.JOINT_STATES, topics.GROUND_TRUTH,
        topics.OBJECT_POSES, topics.GRIPPER_STATE, topics.EPISODES}
    assert expected <= set(summary), f'missing topics: {sorted(expected - set(summary))}'
    assert all(row.has_definition for row in summary.values())
    image_counts = [summary[topics.camera_image(c)].count for c in CAMERAS]
    clock_count = summary[topics.CLOCK].count
    assert min(image_counts) >= 30, f'too few images recorded: {image_counts}'
    # Every tick publishes one image per camera and one /clock message: the counts agree up to the
    # few messages in flight when the recording window opened and closed.
    assert max(image_counts) - min(image_counts) <= 0.05 * clock_count + 5, image_counts
    assert abs(max(image_counts) - clock_count) <= 0.05 * clock_count + 5, (image_counts, clock_count)
    assert summary[topics.EPISODES].count == 1  # latched: delivered to the late-joining recorder

    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        assert RECORD_SECONDS - 2 <= reader.duration / 1e9 <= RECORD_SECONDS + 1
        image = next(c for c in reader.connections if c.topic == topics.camera_image(CAMERAS[0]))
        _, _, raw = next(reader.messages(connections=[image]))
        message = typestore.deserialize_cdr(raw, image.msgtype)
        assert message.encoding == 'rgb8' and message.height == 128 and message.width == 128
