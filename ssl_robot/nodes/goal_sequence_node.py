"""goal_sequence_node: the main job's conductor. It sets goals one after another and lets policy_node reach each.

It runs the steps of ssl_robot.rl.goal_sequence (close the gripper, pose the arm, ask the goal node for a goal, enable
the policy, wait until /policy/status says the goal is done) and, for each goal reached for, publishes an event on
/goal_sequence/events (std_msgs/String JSON, kind 'goal_sequence'): the goal's index, the policy's goal_id, whether
it was 'imagined' (/goal/sample) or a 'scene' goal (/goal/from_scene) and, for a scene goal, the position the arm
was posed at (the ground truth of that goal), the stamp of the goal, the stamp of the status that said it was done,
and done (false for a reach given up after reach_timeout_s). It exits when the last goal is done, which ends a launch
that marks it on_exit="shutdown".

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
from ssl_robot.ros.services import RetriedCall
from ssl_robot.sim.config import rpy_to_quaternion

TICK_PERIOD_S = 0.05
RETRY_PERIOD_S = 1.0
ANSWER_TIMEOUT_S = 10.0
"""Wall seconds a service call may go unanswered before it is made again (ssl_robot.ros.services.RetriedCall)."""
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
        self._call: RetriedCall | None = None
        self._status: dict | None = None
        self._goal_id_before = 0
        self._goal_set_ns = 0
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
            if step.kind == 'goal':
                self._goal_set_ns = now_ns
            self._next += 1
            self._step_since_ns = None
            self._call = None

    def _run(self, step: Step, now_ns: int) -> bool:
        """Advance one step; True when it is finished."""
        if step.kind == 'move':
            self._send(step.argument, now_ns)
            return True
        if step.kind == 'settle':
            return now_ns - self._step_since_ns >= self._config.settle_s * 1e9
        if step.kind == 'close_gripper':
            return self._service('close_gripper', SetBool.Request(data=True))
        if step.kind == 'enable':
            return self._service('enable', SetBool.Request(data=bool(step.argument)))
        if step.kind == 'goal':
            if self._call is None and self._status is not None:
                self._goal_id_before = self._status['goal_id']
            return self._service(step.argument, Trigger.Request())
        return self._reached(step.argument, now_ns)

    def _service(self, name: str, request) -> bool:
        """Call a service until it answers success; True once it has."""
        if self._call is None:
            self._call = RetriedCall(self._service_clients[name], request, name,
                                     lambda line: self.get_logger().warning(line, throttle_duration_sec=5.0),
                                     retry_period_s=RETRY_PERIOD_S, answer_timeout_s=ANSWER_TIMEOUT_S)
        return self._call.poll(time.monotonic())

    def _reached(self, index: int, now_ns: int) -> bool:
        """True once the policy is done with the goal, or the reach is given up after reach_timeout_s; the goal's
        event goes out then."""
        status = self._status
        taken = status is not None and status['goal_id'] > self._goal_id_before
        done = taken and status['done']
        if not done and now_ns - self._step_since_ns < self._config.reach_timeout_s * 1e9:
            return False
        position = list(self._config.goal_positions[index]) if self._config.scene_goals else None
        # A goal the policy never took (or refused) is stamped when the goal node served it.
        goal_stamp_ns = status['goal_stamp_ns'] if taken and status['goal_stamp_ns'] is not None else \
            self._goal_set_ns
        self._events.publish(String(data=topics.encode_event(
            'goal_sequence', topics.stamp_from_dict(status['stamp']) if taken else now_ns, index=index,
            goal_id=status['goal_id'] if taken else None, source='scene' if self._config.scene_goals else 'imagined',
            goal_position=position, goal_stamp=topics.stamp_dict(goal_stamp_ns), steps=status['steps'] if taken else 0,
            reward=status['reward'] if taken else None, done=done)))
        if done:
            self.get_logger().info(f'goal {index + 1} (policy goal {status["goal_id"]}) done after {status["steps"]} '
                                   f'steps, latest reward {status["reward"]}')
        else:
            self.get_logger().warning(
                f'goal {index + 1} given up after {self._config.reach_timeout_s:g} s: ' +
                (f'policy goal {status["goal_id"]} at step {status["steps"]}, enabled {status["enabled"]}' if taken
                 else 'the policy never took the goal (see its diagnostics)'))
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
