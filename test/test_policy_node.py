"""Integration: policy_node runs as its own process with the shipped reach policy; this test process publishes scene
latents and goals as goal_node would, and checks the commands, the status, the enable service and what /diagnostics
counts. System clock (no use_sim_time), so latents are stamped with the time they are published.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool

from ros_harness import node_process
from ssl_robot import topics
from ssl_robot.nodes.policy_node import DIAGNOSTIC_NAME
from ssl_robot.rl.policy_runner import PolicyFile
from ssl_robot.ros.convert import array_to_image, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = 'ssl_robot.nodes.policy_node'
TIMEOUT_S = 90.0
WORKSPACE_MIN, WORKSPACE_MAX = (0.45, -0.15, 0.05), (0.75, 0.15, 0.3)


def latent_image(values, model_id: str, stamp_ns: int) -> Image:
    return array_to_image(np.asarray(values, np.float32).reshape(1, -1), '32FC1', ns_to_stamp(stamp_ns), model_id)


class Graph:
    """The probe's side: latent publishers, and what the node sends back."""

    def __init__(self, probe) -> None:
        self.probe = probe
        node = probe.node
        self.scene = node.create_publisher(Image, topics.in_namespace(topics.SCENE_LATENT), SENSOR_QOS)
        self.goal = node.create_publisher(Image, topics.in_namespace(topics.GOAL_LATENT), LATCHED_QOS)
        self.enable = node.create_client(SetBool, topics.in_namespace(topics.POLICY_ENABLE_SERVICE))
        self.commands: list[PoseStamped] = []
        self.status: list[dict] = []
        self.counts: dict[str, int] = {}
        self.published_ns: set[int] = set()
        node.create_subscription(PoseStamped, topics.in_namespace(topics.EE_TARGET), self._keep_command, RELIABLE_QOS)
        node.create_subscription(String, topics.in_namespace(topics.POLICY_STATUS), self._keep_status, RELIABLE_QOS)
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._keep_counts, RELIABLE_QOS)

    def _keep_command(self, message: PoseStamped) -> None:
        with self.probe.lock:
            self.commands.append(message)

    def _keep_status(self, message: String) -> None:
        with self.probe.lock:
            self.status.append(json.loads(message.data))

    def _keep_counts(self, message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name == DIAGNOSTIC_NAME:
                with self.probe.lock:
                    self.counts = {v.key: int(v.value) for v in status.values if v.key.startswith('count_')}

    def publish_scene(self, values, model_id: str, age_s: float = 0.0) -> int:
        stamp_ns = time.time_ns() - int(age_s * 1e9)
        self.scene.publish(latent_image(values, model_id, stamp_ns))
        self.published_ns.add(stamp_ns)
        return stamp_ns

    def feed_until(self, condition, what: str, node, values, model_id: str, age_s: float = 0.0) -> None:
        """Publish a scene latent every 50 ms until condition() holds (under the probe's lock)."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with self.probe.lock:
                if condition():
                    return
            assert node.poll() is None, f'the policy node died:\n{"".join(node.output)[-3000:]}'
            assert time.monotonic() < deadline, f'timed out waiting for {what}; node output:\n' \
                                                f'{"".join(node.output)[-3000:]}'
            self.publish_scene(values, model_id, age_s)
            time.sleep(0.05)


def test_policy_node_commands_refuses_bad_inputs_and_stops_when_disabled(probe):
    model_id = PolicyFile('').model_id
    graph = Graph(probe)
    with node_process(NODE, 'policy', {'enabled': 'true'}) as node:
        probe.wait_for(lambda: graph.goal.get_subscription_count() > 0 and graph.scene.get_subscription_count() > 0,
                       TIMEOUT_S, 'the policy node to subscribe')
        graph.goal.publish(latent_image([1.0, -0.5], model_id, time.time_ns()))
        graph.feed_until(lambda: len(graph.commands) >= 5, 'commands', node, [0.0, 0.0], model_id)
        with probe.lock:
            for command in graph.commands:
                assert stamp_to_ns(command.header.stamp) in graph.published_ns   # each answers one observation
                assert command.header.frame_id == topics.WORLD_FRAME
                p = command.pose.position
                assert all(lo <= v <= hi for lo, v, hi in zip(WORKSPACE_MIN, (p.x, p.y, p.z), WORKSPACE_MAX))
            assert graph.status[-1]['goal_id'] == 1 and graph.status[-1]['steps'] >= 5
            assert graph.status[-1]['reward'] == pytest.approx(-np.hypot(1.0, 0.5), abs=1e-5)

        # Stale observations, another model's latents, then valid latents after a NaN goal (which drops the goal in
        # force): each counted, none answered. Commands are counted once the refusals have begun, so that a command
        # answering an earlier good latent, still in flight, is not mistaken for one.
        def refused_without_command(kind: str, values, model_id_sent: str, age_s: float = 0.0) -> None:
            graph.feed_until(lambda: graph.counts.get(kind, 0) >= 1, kind, node, values, model_id_sent, age_s)
            with probe.lock:
                sent, counted = len(graph.commands), graph.counts[kind]
            graph.feed_until(lambda: graph.counts.get(kind, 0) >= counted + 3, f'more {kind}', node, values,
                             model_id_sent, age_s)
            with probe.lock:
                assert len(graph.commands) == sent, f'a command was sent despite {kind}'

        refused_without_command('count_stale_observation', [0.0, 0.0], model_id, age_s=5.0)
        refused_without_command('count_wrong_model', [0.0, 0.0], 'betavae:betavae.safetensors:step1:0123456789ab')
        graph.goal.publish(latent_image([np.nan, 0.0], model_id, time.time_ns()))
        graph.feed_until(lambda: graph.counts.get('count_bad_goal', 0) >= 1, 'the NaN goal counted', node,
                         [0.0, 0.0], model_id)
        with probe.lock:
            sent, status_at = len(graph.commands), len(graph.status)
        graph.feed_until(lambda: len(graph.status) >= status_at + 20, 'status without a goal', node, [0.0, 0.0],
                         model_id)
        with probe.lock:
            assert len(graph.commands) == sent, 'a command was sent without a usable goal'

        # A good goal again: commands resume; then disabled: none at all.
        graph.goal.publish(latent_image([0.5, 0.5], model_id, time.time_ns()))
        graph.feed_until(lambda: len(graph.commands) >= sent + 3, 'commands for the new goal', node, [0.0, 0.0],
                         model_id)
        response = probe.call(graph.enable, SetBool.Request(data=False), timeout=TIMEOUT_S)
        assert response.success
        with probe.lock:
            disabled_at = len(graph.commands)
            status_at = len(graph.status)
        graph.feed_until(lambda: len(graph.status) >= status_at + 20, 'status while disabled', node, [0.0, 0.0],
                         model_id)
        with probe.lock:
            # At most a command already in flight when the service answered.
            assert len(graph.commands) <= disabled_at + 1
            assert graph.status[-1]['enabled'] is False
        assert node.poll() is None
