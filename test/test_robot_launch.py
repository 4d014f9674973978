"""robot.launch.xml brings the learning nodes up on a robot's own camera topics and the system clock.

The sim stands in for the robot: its camera topics are remapped to driver-like names, which only the launch
arguments tell the learning nodes about, and nobody follows its /clock. The policy node runs, disabled: it reports its
status and sends no command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ros_harness import node_process
from ssl_robot import topics
from ssl_robot.events import decode_event
from ssl_robot.ros.convert import image_to_array, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sim.config import load_sim_config

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DRIVER_TOPICS = {camera: f'/robot/{camera}/color/image_raw' for camera in ('front_left', 'front_right', 'high_side')}
OBJECT_TOPIC = '/robot/wrist/color/image_raw'
NS_PER_S = 1_000_000_000
TICK_NS = round(NS_PER_S / load_sim_config().tick_rate_hz)   # as ssl_robot.sim.runner stamps its ticks


def test_robot_launch_runs_every_learning_node_on_remapped_cameras(probe, tmp_path):
    received: dict[str, list] = {'embeddings': [], 'reward': [], 'goal': [], 'policy_status': [], 'command': []}
    camera_stamps: set[int] = set()

    def keep(kind):
        def on_message(message) -> None:
            with probe.lock:
                received[kind].append(message)
        return on_message

    def on_camera(message: Image) -> None:
        with probe.lock:
            camera_stamps.add(stamp_to_ns(message.header.stamp))

    node = probe.node
    node.create_subscription(Image, topics.EMBEDDINGS, keep('embeddings'), SENSOR_QOS)
    node.create_subscription(Vector3Stamped, topics.reward_topic('latent_goal'), keep('reward'), RELIABLE_QOS)
    node.create_subscription(Image, topics.GOAL_LATENT, keep('goal'), LATCHED_QOS)
    node.create_subscription(String, topics.POLICY_STATUS, keep('policy_status'), RELIABLE_QOS)
    node.create_subscription(PoseStamped, topics.EE_TARGET, keep('command'), RELIABLE_QOS)
    node.create_subscription(Image, DRIVER_TOPICS['front_left'], on_camera, SENSOR_QOS)
    remaps = [f'{topics.camera_image(camera)}:={topic}' for camera, topic in DRIVER_TOPICS.items()]
    remaps.append(f'{topics.camera_image(topics.OBJECT_CAMERA)}:={OBJECT_TOPIC}')
    camera_list = '[' + ', '.join(DRIVER_TOPICS.values()) + ']'
    launch = [sys.executable, '-m', 'ssl_robot.cli', 'launch', 'robot', f'camera_topics:={camera_list}',
              f'scene_camera:={DRIVER_TOPICS["front_left"]}', f'object_camera:={OBJECT_TOPIC}', '--duration', '600']
    ros_args = ['--ros-args'] + [arg for remap in remaps for arg in ('-r', remap)]
    with node_process('ssl_robot.nodes.sim_node', 'sim', args=ros_args), \
            open(tmp_path / 'launch.log', 'w') as log:
        graph = subprocess.Popen(launch, stdout=log, stderr=subprocess.STDOUT)
        try:
            probe.wait_for(lambda: len(received['embeddings']) >= 5, 240, '/embeddings from the remapped cameras')
            sample = node.create_client(Trigger, topics.GOAL_SAMPLE_SERVICE)
            # The goal node subscribes on its own schedule: embeddings arriving do not mean it has a scene frame
            # yet, and until it has one it answers 'no frame ... yet'. Ask again until it imagines a goal.
            for _ in range(60):
                response = probe.call_idempotent(sample, Trigger.Request(), timeout=120)
                if response.success or not response.message.startswith('no frame'):
                    break
                time.sleep(1.0)
            assert response.success, response.message
            probe.wait_for(lambda: len(received['goal']) >= 1 and len(received['reward']) >= 5, 240,
                           'a goal and latent-goal rewards')
            probe.wait_for(lambda: len(received['policy_status']) >= 5, 240, "the policy node's status")
            assert graph.poll() is None, 'the launch ended early'
        finally:
            graph.send_signal(signal.SIGINT)
            graph.wait(timeout=60)
    output = (tmp_path / 'launch.log').read_text()
    assert graph.returncode == 0, output[-3000:]
    with probe.lock:
        embeddings, rewards = list(received['embeddings']), list(received['reward'])
        statuses, commands = list(received['policy_status']), list(received['command'])
        stamps = set(camera_stamps)
    rows = image_to_array(embeddings[-1])
    assert rows.shape[0] == len(DRIVER_TOPICS) + 1 and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
    assert embeddings[-1].header.frame_id.startswith('tcn:')
    # Every output carries the stamp of the camera frames it came from: a tick of the robot's (the sim's) clock, not
    # the nodes' own system clock. The probe's best-effort copy of the cameras may miss a frame the nodes got, so the
    # stamps are checked as sim ticks rather than looked up among the frames the probe happened to receive.
    output_stamps = {stamp_to_ns(m.header.stamp) for m in embeddings + rewards}
    assert stamps and all(stamp % TICK_NS == 0 for stamp in stamps), 'the camera stamps are not sim ticks'
    assert all(stamp % TICK_NS == 0 and 0 < stamp <= max(stamps) + NS_PER_S for stamp in output_stamps), \
        sorted(output_stamps)[-5:]
    assert all(m.header.frame_id.startswith('ccvae:') for m in rewards)
    # Disabled: status at the control rate, not a single command.
    assert all(decode_event(status.data, 'policy')['enabled'] is False for status in statuses)
    assert commands == []
    for node_name in ('embedding', 'reward', 'grasp2vec', 'goal', 'policy'):
        assert f'[{node_name}]' in output
