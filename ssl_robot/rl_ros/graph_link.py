"""GraphLink: the ROS side of a RosGoalEnv. A node in a context of its own, spun in its own thread, that keeps the
newest scene latents, rewards, goal, joint states and episode events, sends hand targets and calls the sim's and the
goal node's services; every wait is bounded by RosEnvConfig.timeout_s and fails with one line naming the topic or
service that stayed quiet (lockstep.StreamTimeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ssl_robot import topics
from ssl_robot.events import EventError, decode_episode_event, decode_sim_step
from ssl_robot.rl.lockstep import RosEnvConfig, StampedStream, StreamTimeout, stream_timeout_message
from ssl_robot.ros.convert import ImageFormatError, MessageError, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.decoders import StampedReward, float_values, goal_latent, stamped_reward
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

Result = TypeVar('Result')


@dataclass(frozen=True)
class StampedLatent:
    stamp_ns: int
    values: np.ndarray
    """(latent_dim,) float32."""
    model_id: str


class GraphLink:
    """See the module docstring. Bad messages are counted in `problems` (kind -> count) and skipped."""

    def __init__(self, config: RosEnvConfig, latent_dim: int, domain_id: int | None = None) -> None:
        self.config = config
        self.latent_dim = latent_dim
        self.reward_topic = topics.reward_topic(config.reward_kind)
        self.problems: dict[str, int] = {}
        self.latents: StampedStream[StampedLatent] = StampedStream()
        self.rewards: StampedStream[StampedReward] = StampedStream()
        self.goal: StampedLatent | None = None
        self.goals_received = 0
        self.joint_stamp_ns: int | None = None
        self.joint_velocities = np.zeros(0)
        self.episode_stamp_ns: int | None = None
        self.changed = threading.Condition()

        self._context = Context()
        rclpy.init(context=self._context, domain_id=domain_id)
        self.node = Node('ros_goal_env', namespace=config.namespace or None, context=self._context,
                         parameter_overrides=[Parameter('use_sim_time', value=config.use_sim_time)])
        name = topics.in_namespace
        self.node.create_subscription(Image, name(topics.SCENE_LATENT), self._on_scene_latent, SENSOR_QOS)
        self.node.create_subscription(Vector3Stamped, name(self.reward_topic), self._on_reward, RELIABLE_QOS)
        self.node.create_subscription(Image, name(topics.GOAL_LATENT), self._on_goal, LATCHED_QOS)
        self.node.create_subscription(JointState, name(topics.JOINT_STATES), self._on_joints, SENSOR_QOS)
        self.node.create_subscription(String, name(topics.EPISODES), self._on_episode, LATCHED_QOS)
        self._target = self.node.create_publisher(PoseStamped, name(topics.EE_TARGET), RELIABLE_QOS)
        self._clients = {service: self.node.create_client(kind, name(service)) for service, kind in (
            (topics.RESET_SERVICE, Trigger), (topics.GRIPPER_SET_CLOSED_SERVICE, SetBool),
            (topics.STEP_SERVICE, Trigger), (topics.GOAL_SAMPLE_SERVICE, Trigger),
            (topics.GOAL_FROM_SCENE_SERVICE, Trigger))}
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        # spin() in a thread of its own: spin_once in a loop starves the caller's thread (ros2-from-pypi notes).
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()

    # --- callbacks (executor thread) ------------------------------------------------------------------------------

    def _problem(self, kind: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1

    def _latent(self, message: Image, decode: Callable[[Image], np.ndarray]) -> StampedLatent | None:
        try:
            return StampedLatent(stamp_to_ns(message.header.stamp), decode(message), message.header.frame_id)
        except MessageError as error:
            self._problem(error.kind)
            return None

    def _scene_values(self, message: Image) -> np.ndarray:
        values = float_values(message)
        if values.shape != (1, self.latent_dim):
            raise ImageFormatError(f'shape {values.shape}, not (1, {self.latent_dim})')
        return values[0]

    def _on_scene_latent(self, message: Image) -> None:
        latent = self._latent(message, self._scene_values)
        if latent is not None:
            with self.changed:
                self.latents.add(latent.stamp_ns, latent)
                self.changed.notify_all()

    def _on_reward(self, message: Vector3Stamped) -> None:
        try:
            received = stamped_reward(message)
        except MessageError as error:
            self._problem(error.kind)
            return
        with self.changed:
            self.rewards.add(received.stamp_ns, received)
            self.changed.notify_all()

    def _on_goal(self, message: Image) -> None:
        goal = self._latent(message, lambda m: goal_latent(m, self.latent_dim))
        if goal is not None:
            with self.changed:
                self.goal, self.goals_received = goal, self.goals_received + 1
                self.changed.notify_all()

    def _on_joints(self, message: JointState) -> None:
        try:
            stamp_ns = stamp_to_ns(message.header.stamp)
        except MessageError as error:
            self._problem(error.kind)
            return
        with self.changed:
            self.joint_stamp_ns = stamp_ns
            self.joint_velocities = np.array(message.velocity, float)
            self.changed.notify_all()

    def _on_episode(self, message: String) -> None:
        try:
            stamp_ns = decode_episode_event(message.data).stamp_ns
        except EventError:
            self._problem('bad_event')
            return
        with self.changed:
            self.episode_stamp_ns = stamp_ns
            self.changed.notify_all()

    # --- the env's side ---------------------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """The node's clock: the newest /clock with sim time, the system clock otherwise."""
        return self.node.get_clock().now().nanoseconds

    def wait(self, ready: Callable[[], Result | None], what: str, topic: str, after_ns: int | None = None,
             newest: Callable[[], int | None] = lambda: None) -> Result:
        """The first non-None ready() (called under the lock whenever a message arrives), or StreamTimeout after
        timeout_s wall seconds naming the topic, the stamp waited for and the newest one heard (newest())."""
        return self.wait_or_explain(ready, lambda: stream_timeout_message(what, topic, after_ns, newest(),
                                                                          self.config.timeout_s))

    def wait_or_explain(self, ready: Callable[[], Result | None], explain: Callable[[], str]) -> Result:
        """As wait, but the StreamTimeout's line is explain(), called under the lock when the time is up."""
        deadline = time.monotonic() + self.config.timeout_s
        with self.changed:
            while (result := ready()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamTimeout(explain())
                self.changed.wait(min(left, 0.1))  # the clock (sim time) moves without a notification
            return result

    def wait_for_clock(self) -> int:
        """The node's time once it runs (with sim time, 0 until the first /clock)."""
        return self.wait(lambda: self.now_ns() or None, 'waiting for the clock', topics.CLOCK)

    def publish_target(self, position: np.ndarray, orientation_xyzw: np.ndarray) -> None:
        message = PoseStamped()
        message.header.stamp = ns_to_stamp(self.now_ns())
        message.header.frame_id = topics.WORLD_FRAME
        message.pose.position.x, message.pose.position.y, message.pose.position.z = (float(v) for v in position)
        o = message.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in orientation_xyzw)
        self._target.publish(message)

    def wait_for_target_subscriber(self) -> None:
        """Targets published before discovery matched the sim's subscription would be lost."""
        self.wait(lambda: self._target.get_subscription_count() or None, 'sending hand targets', topics.EE_TARGET)

    def call(self, service: str, request: Any) -> Any:
        """The service's response; StreamTimeout if it is not there or does not answer, RuntimeError (one line,
        with its reason) if it refuses."""
        client = self._clients[service]
        if not client.wait_for_service(timeout_sec=self.config.timeout_s):
            raise StreamTimeout(f'service {service} is not available after {self.config.timeout_s:g} s; is its node '
                                f'running?')
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.config.timeout_s):
            raise StreamTimeout(f'service {service} did not answer within {self.config.timeout_s:g} s')
        response = future.result()
        if not response.success:
            raise RuntimeError(f'service {service} refused: {response.message}')
        return response

    def step_sim(self) -> tuple[int, int]:
        """Ask a stepped sim for one period (/sim/step); the period's start and end stamps. It answers once the
        period's messages are published."""
        message = self.call(topics.STEP_SERVICE, Trigger.Request()).message
        try:
            return decode_sim_step(message)
        except EventError as error:
            raise RuntimeError(f'service {topics.STEP_SERVICE} answered {message[:80]!r}: {error}') from None

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        self._spinner.join(timeout=5)
