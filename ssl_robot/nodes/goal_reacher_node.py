"""goal_reacher_node: moves the arm toward a goal imagined by the goal node, guided by the latent-goal reward.

The main job's controller (launch/demo.launch.xml). It asks the goal node for a goal (/goal/sample), then runs
ssl_robot.goal_reaching.GoalReachingScript: a survey of end-effector positions over the tray scored by
/reward/latent_goal, then a straight approach from the worst-scoring position to the best one. It is a scripted
stand-in for a goal-conditioned RL policy, which would consume the same goal and reward topics.

Each waypoint is published on /arm/ee_target (geometry_msgs/PoseStamped, frame 'world') and announced on
/goal_reaching/status (std_msgs/String, JSON event 'goal_reaching' with the phase, index, position and, once its
hold is over, the mean reward the waypoint scored). The last status has phase 'done', every score, and the failure
reason if there was one. The node exits when the script is done, which ends a launch that marks it
on_exit="shutdown".

Time is the node clock, so with use_sim_time the holds count simulated seconds and a slow simulation is waited for.
"""

from __future__ import annotations

import math
import time

from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ssl_robot import topics
from ssl_robot.goal_reaching import GoalReachingScript, Waypoint, survey_grid
from ssl_robot.ros.convert import ns_to_stamp, stamp_to_ns
from ssl_robot.ros.node_main import spin_node
from ssl_robot.ros.parameters import NodeParameters
from ssl_robot.ros.qos import RELIABLE_QOS
from ssl_robot.sim.config import rpy_to_quaternion

CONTROL_PERIOD_S = 0.05
GOAL_RETRY_PERIOD_S = 1.0
ACK_TIMEOUT_S = 5.0
LINGER_S = 1.0


class GoalReacherNode(NodeParameters, Node):

    READ_ONLY_PARAMETERS = True

    def __init__(self) -> None:
        super().__init__('goal_reacher')
        self._declare('survey_center', [0.6, 0.0, 0.22], 'centre of the surveyed square of TCP positions (x, y, z; m)')
        self._declare('survey_half_extent_m', 0.1, 'the square spans the centre +- this in x and y')
        self._declare('survey_per_side', 3, 'positions per side of the square (>= 2)')
        self._declare('ee_rpy_deg', [0.0, 180.0, 0.0], 'TCP orientation at every waypoint (roll, pitch, yaw; deg)')
        self._declare('hold_s', 1.2, 'time at each waypoint: moving there, settling and scoring')
        self._declare('score_window_s', 0.4, 'a waypoint is scored by the rewards of the last this-many seconds of '
                                             'its hold')
        self._declare('approach_steps', 6, 'waypoints of the approach, its start and end included')
        self._declare('decision_delay_s', 0.5, 'wait after the survey for late rewards before choosing the approach')
        self._declare('reward_topic', topics.in_namespace(topics.reward_topic('latent_goal')),
                      'the reward that guides the reach')

        center = list(self._param('survey_center'))
        rpy = [math.radians(v) for v in self._param('ee_rpy_deg')]
        if len(rpy) != 3:
            raise ValueError(f'parameter ee_rpy_deg must hold 3 angles, got {self._param("ee_rpy_deg")}')
        self._orientation = rpy_to_quaternion(tuple(rpy))
        self._script = GoalReachingScript(
            survey_grid(center, self._param('survey_half_extent_m'), self._param('survey_per_side')),
            hold_s=self._param('hold_s'), score_window_s=self._param('score_window_s'),
            approach_steps=self._param('approach_steps'), decision_delay_s=self._param('decision_delay_s'))
        self.finished = Future()
        self._goal_request: Future | None = None
        self._last_goal_request_ns = None
        self._exit_at: float | None = None
        self._goal_since_ns: int | None = None
        self._newest_reward_ns: int | None = None

        self._ee_target = self.create_publisher(PoseStamped, topics.in_namespace(topics.EE_TARGET), RELIABLE_QOS)
        self._status = self.create_publisher(String, topics.in_namespace(topics.GOAL_REACHING_STATUS), RELIABLE_QOS)
        self._goal_client = self.create_client(Trigger, topics.in_namespace(topics.GOAL_SAMPLE_SERVICE))
        self.create_subscription(Vector3Stamped, self._param('reward_topic'), self._on_reward, RELIABLE_QOS)
        self.create_timer(CONTROL_PERIOD_S, self._on_control_tick)
        self.get_logger().info(f'waiting for {topics.GOAL_SAMPLE_SERVICE} to imagine a goal')

    def _on_reward(self, message: Vector3Stamped) -> None:
        stamp_ns = stamp_to_ns(message.header.stamp)
        self._newest_reward_ns = max(self._newest_reward_ns or 0, stamp_ns)
        self._script.add_reward(stamp_ns, message.vector.x)

    def _on_control_tick(self) -> None:
        if self._exit_at is not None:
            if time.monotonic() >= self._exit_at and not self.finished.done():
                self.finished.set_result(self._script.failure is None)
            return
        now_ns = self.get_clock().now().nanoseconds
        if now_ns == 0:  # no /clock yet under use_sim_time
            return
        if self._script.current is None:
            if self._goal_since_ns is None:
                self._request_goal(now_ns)
            else:
                self._start_when_rewarded(now_ns)
            return
        previous = self._script.current
        waypoint = self._script.update(now_ns)
        if waypoint is not None or self._script.done:
            self._report_scored(previous)
        if waypoint is not None:
            self._send(waypoint)
        if self._script.done:
            self._finish(now_ns)

    def _request_goal(self, now_ns: int) -> None:
        if self._goal_request is not None:
            if not self._goal_request.done():
                return
            response = self._goal_request.result()
            self._goal_request = None
            if response.success:
                self.get_logger().info(f'{response.message}; waiting for {self._param("reward_topic")}')
                self._goal_since_ns = now_ns
                return
            self.get_logger().warning(f'no goal yet: {response.message}', throttle_duration_sec=5.0)
        retry_ns = int(GOAL_RETRY_PERIOD_S * 1e9)
        if self._goal_client.service_is_ready() and (
                self._last_goal_request_ns is None or now_ns - self._last_goal_request_ns >= retry_ns):
            self._last_goal_request_ns = now_ns
            self._goal_request = self._goal_client.call_async(Trigger.Request())

    def _start_when_rewarded(self, now_ns: int) -> None:
        """Survey once the reward node scores frames taken after the goal: before that (still loading its models, or
        not yet matched with the goal topic) a survey position would go unscored."""
        if self._newest_reward_ns is not None and self._newest_reward_ns >= self._goal_since_ns:
            self.get_logger().info(f'rewarded; surveying {self._script.survey_size} positions')
            self._send(self._script.start(now_ns))

    def _send(self, waypoint: Waypoint) -> None:
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(waypoint.start_ns)
        message.header.frame_id = topics.WORLD_FRAME
        message.pose.position.x, message.pose.position.y, message.pose.position.z = waypoint.position
        q = message.pose.orientation
        q.x, q.y, q.z, q.w = self._orientation
        self._ee_target.publish(message)
        self._publish_status(waypoint.start_ns, phase=waypoint.phase, index=waypoint.index,
                             position=list(waypoint.position))

    def _report_scored(self, waypoint: Waypoint) -> None:
        score = self._script.score(waypoint)
        text = 'no reward' if score is None else f'mean reward {score:+.4f}'
        self.get_logger().info(f'{waypoint.phase} {waypoint.index} at {_format(waypoint.position)}: {text}')

    def _finish(self, now_ns: int) -> None:
        survey, approach = self._script.survey_scores(), self._script.approach_scores()
        self._publish_status(now_ns, phase='done', failure=self._script.failure,
                             survey=[{'position': list(p), 'score': s} for p, s in survey],
                             approach=[{'position': list(p), 'score': s} for p, s in approach])
        if self._script.failure:
            self.get_logger().error(f'goal reaching failed: {self._script.failure}')
        else:
            first, last = approach[0][1], approach[-1][1]
            self.get_logger().info(f'goal reached: reward {first:+.4f} at the approach start, {last:+.4f} at '
                                   f'{_format(approach[-1][0])}')
        # Exiting ends the launch, and every other node with it: first the last status must reach the recorder
        # (acknowledged) and be written (a linger, as the recorder's callback takes it from its queue in its time).
        self._status.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        self._exit_at = time.monotonic() + LINGER_S

    def _publish_status(self, stamp_ns: int, **fields) -> None:
        self._status.publish(String(data=topics.encode_event('goal_reaching', stamp_ns, **fields)))


def _format(position) -> str:
    return '(' + ', '.join(f'{v:.3f}' for v in position) + ')'


def main(args=None) -> int:
    return spin_node(GoalReacherNode, 'goal_reacher_node', args, until=lambda node: node.finished)


if __name__ == '__main__':
    raise SystemExit(main())
