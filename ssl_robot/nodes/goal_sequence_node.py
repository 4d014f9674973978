"""goal_sequence_node: the main job's conductor. It sets goals one after another and lets policy_node reach each.

It runs the steps of ssl_robot.rl.goal_sequence (close the gripper, pose the arm, ask the goal node for a goal, enable
the policy, wait until /policy/status says the goal is done) and, for each goal reached for, publishes an event on
/goal_sequence/events (std_msgs/String JSON, kind 'goal_sequence'): the goal's index, the policy's goal_id, whether
it was 'imagined' (/goal/sample) or a 'scene' goal (/goal/from_scene) and, for a scene goal, the position the arm
was posed at (the ground truth of that goal), the stamp of the goal and the stamp of the status that said it was done.
It exits when the last goal is done, which ends a launch that marks it on_exit="shutdown".

Time is the node clock, so with use_sim_time settling counts simulated seconds and a slow simulation is waited for.
"""

from __future__ import annotations

import json
import math
import time

from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ssl_robot import topics
from ssl_robot.rl.goal_sequence import Step, goal_sequence_plan
from ssl_robot.ros.convert import ns_to_stamp
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.goal_sequence import GoalSequenceParams
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import RELIABLE_QOS
from ssl_robot.sim.config import rpy_to_quaternion

TICK_PERIOD_S = 0.05
RETRY_PERIOD_S = 1.0
ACK_TIMEOUT_S = 5.0
LINGER_S = 5.0
"""Wall seconds between the last event being acked and the exit that ends the launch. The ack only says the message
is in the recorder's DDS queue; a recorder behind a loaded machine's camera streams takes it seconds later, and one
stopped before then loses it: on a loaded machine a main job's bag missed its last 3.7 s of /policy/status and the
last goal's event, so it reported 1 of 2 goals."""


class GoalSequenceNode(Node):

    def __init__(self) -> None:
        super().__init__('goal_sequence')
        self.params = declare_params(self, GoalSequenceParams, read_only=True)
        self._config = self.params.sequence()
        self._orientation = rpy_to_quaternion(tuple(math.radians(v) for v in self.params.ee_rpy_deg))
        self._plan = goal_sequence_plan(self._config)
        self._next = 0
        self._step_since_ns: int | None = None
        self._pending: Future | None = None
        self._last_request_ns: int | None = None
        self._status: dict | None = None
        self._goal_id_before = 0
        self._exit_at: float | None = None
        self.finished = Future()

        self._ee_target = self.create_publisher(PoseStamped, topics.in_namespace(topics.EE_TARGET), RELIABLE_QOS)
        self._events = self.create_publisher(String, topics.in_namespace(topics.GOAL_SEQUENCE_EVENTS), RELIABLE_QOS)
        self._service_clients = {
            'close_gripper': self.create_client(SetBool, topics.in_namespace(topics.GRIPPER_SET_CLOSED_SERVICE)),
            'enable': self.create_client(SetBool, topics.in_namespace(topics.POLICY_ENABLE_SERVICE)),
            'sample': self.create_client(Trigger, topics.in_namespace(topics.GOAL_SAMPLE_SERVICE)),
            'from_scene': self.create_client(Trigger, topics.in_namespace(topics.GOAL_FROM_SCENE_SERVICE)),
        }
        self.create_subscription(String, topics.in_namespace(topics.POLICY_STATUS), self._on_status, RELIABLE_QOS)
        self.create_timer(TICK_PERIOD_S, self._on_tick)
        kind = f'{len(self._config.goal_positions)} scene' if self._config.scene_goals else f'{self._config.goals} ' \
                                                                                             'imagined'
        self.get_logger().info(f'{kind} goals, {len(self._plan)} steps')

    def _on_status(self, message: String) -> None:
        try:
            self._status = json.loads(message.data)
        except ValueError:
            self.get_logger().warning(f'unreadable {topics.POLICY_STATUS}: {message.data[:120]!r}')

    def _on_tick(self) -> None:
        if self._exit_at is not None:
            if time.monotonic() >= self._exit_at and not self.finished.done():
                self.finished.set_result(True)
            return
        now_ns = self.get_clock().now().nanoseconds
        if now_ns == 0:  # no /clock yet under use_sim_time
            return
        if self._next == len(self._plan):
            self._finish()
            return
        step = self._plan[self._next]
        if self._step_since_ns is None:
            self._step_since_ns = now_ns
        if self._run(step, now_ns):
            self.get_logger().info(f'step {self._next + 1}/{len(self._plan)} done: {step.kind} {step.argument}')
            self._next += 1
            self._step_since_ns = None

    def _run(self, step: Step, now_ns: int) -> bool:
        """Advance one step; True when it is finished."""
        if step.kind == 'move':
            self._send(step.argument, now_ns)
            return True
        if step.kind == 'settle':
            return now_ns - self._step_since_ns >= self._config.settle_s * 1e9
        if step.kind == 'close_gripper':
            return self._service('close_gripper', SetBool.Request(data=True), now_ns)
        if step.kind == 'enable':
            return self._service('enable', SetBool.Request(data=bool(step.argument)), now_ns)
        if step.kind == 'goal':
            if self._pending is None and self._last_request_ns is None and self._status is not None:
                self._goal_id_before = self._status['goal_id']
            return self._service(step.argument, Trigger.Request(), now_ns)
        return self._reached(step.argument)

    def _service(self, name: str, request, now_ns: int) -> bool:
        """Call a service until it answers success (retried every RETRY_PERIOD_S: a goal node may have no model or
        frame yet); True once it has."""
        if self._pending is not None:
            if not self._pending.done():
                return False
            response, self._pending = self._pending.result(), None
            if response.success:
                self._last_request_ns = None
                return True
            self.get_logger().warning(f'{name}: {response.message}; retrying', throttle_duration_sec=5.0)
        client = self._service_clients[name]
        if client.service_is_ready() and (self._last_request_ns is None or
                                          now_ns - self._last_request_ns >= RETRY_PERIOD_S * 1e9):
            self._last_request_ns = now_ns
            self._pending = client.call_async(request)
        return False

    def _reached(self, index: int) -> bool:
        status = self._status
        if status is None or status['goal_id'] <= self._goal_id_before or not status['done']:
            return False
        goal_stamp_ns = status['goal_stamp_ns']
        position = list(self._config.goal_positions[index]) if self._config.scene_goals else None
        self._events.publish(String(data=topics.encode_event(
            'goal_sequence', topics.stamp_from_dict(status['stamp']), index=index, goal_id=status['goal_id'],
            source='scene' if self._config.scene_goals else 'imagined', goal_position=position,
            goal_stamp=topics.stamp_dict(goal_stamp_ns), steps=status['steps'], reward=status['reward'])))
        self.get_logger().info(f'goal {index + 1} (policy goal {status["goal_id"]}) done after {status["steps"]} steps, '
                               f'latest reward {status["reward"]}')
        return True

    def _send(self, position, now_ns: int) -> None:
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(now_ns)
        message.header.frame_id = topics.WORLD_FRAME
        message.pose.position.x, message.pose.position.y, message.pose.position.z = (float(v) for v in position)
        q = message.pose.orientation
        q.x, q.y, q.z, q.w = self._orientation
        self._ee_target.publish(message)

    def _finish(self) -> None:
        # Exiting ends the launch, and every other node with it: the last event must reach the recorder first.
        self._events.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        self._exit_at = time.monotonic() + LINGER_S
        self.get_logger().info('every goal done')


def main(args=None) -> int:
    return spin_node(GoalSequenceNode, 'goal_sequence_node', args, until=lambda node: node.finished)


if __name__ == '__main__':
    raise SystemExit(main())
