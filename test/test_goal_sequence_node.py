"""Integration: goal_sequence_node runs as its own process against this test process, which plays the gripper, the
goal node and a policy that never finishes a reach. Each reach is given up after reach_timeout_s, reported with done
false, and the node still ends the sequence and exits. System clock (no use_sim_time).

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import json
import time

import pytest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ros_harness import node_process
from ssl_robot import topics
from ssl_robot.ros.qos import RELIABLE_QOS

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TIMEOUT_S = 90.0
GOAL_POSITIONS = [(0.5, 0.1, 0.115), (0.7, -0.1, 0.115)]


def test_reaches_the_policy_never_finishes_are_given_up_reported_and_the_node_exits(probe):
    node = probe.node
    calls: list[str] = []
    events: list[dict] = []
    status = node.create_publisher(String, topics.POLICY_STATUS, RELIABLE_QOS)

    def serve(name: str):
        def handler(request, response):
            with probe.lock:
                calls.append(name)
                scene_goals = calls.count('from_scene')
            if name == 'from_scene' and scene_goals == 2:
                # The policy takes the second goal but stops after 7 steps (say its scene latents went stale).
                status.publish(String(data=topics.encode_event(
                    'policy', time.time_ns(), goal_id=1, goal_stamp_ns=time.time_ns(), steps=7, reward=-0.2,
                    done=False, enabled=False, setpoint=[0.6, 0.0, 0.115])))
            response.success, response.message = True, f'{name} ok'
            return response
        return handler

    node.create_service(SetBool, topics.GRIPPER_SET_CLOSED_SERVICE, serve('close_gripper'))
    node.create_service(SetBool, topics.POLICY_ENABLE_SERVICE, serve('enable'))
    node.create_service(Trigger, topics.GOAL_FROM_SCENE_SERVICE, serve('from_scene'))

    def keep(message: String) -> None:
        with probe.lock:
            events.append(json.loads(message.data))

    node.create_subscription(String, topics.GOAL_SEQUENCE_EVENTS, keep, RELIABLE_QOS)
    positions = '[' + ', '.join(str(v) for position in GOAL_POSITIONS for v in position) + ']'
    with node_process('ssl_robot.nodes.goal_sequence_node', 'goal_sequence',
                      {'goal_positions': positions, 'settle_s': 0.0, 'reach_timeout_s': 1.0}) as process:
        probe.wait_for(lambda: len(events) == 2, TIMEOUT_S, 'both goals reported')
        process.wait(timeout=TIMEOUT_S)   # the last goal reported: the node ends the sequence by itself
        output = ''.join(process.output)
    assert process.returncode == 0, output
    assert [(e['index'], e['source'], e['goal_position'], e['done']) for e in events] == [
        (0, 'scene', list(GOAL_POSITIONS[0]), False), (1, 'scene', list(GOAL_POSITIONS[1]), False)], output
    assert (events[0]['goal_id'], events[0]['steps']) == (None, 0)    # the policy never took goal 1
    assert (events[1]['goal_id'], events[1]['steps'], events[1]['reward']) == (1, 7, -0.2)
    assert 'goal 1 given up after 1 s: the policy never took the goal' in output
    assert 'goal 2 given up after 1 s: policy goal 1 at step 7, enabled False' in output
    assert calls.count('close_gripper') == 1 and calls.count('from_scene') == 2
