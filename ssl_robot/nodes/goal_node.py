"""goal_node: goals imagined by a CC-VAE (or a β-VAE) for goal-conditioned control, as in RIG and CC-RIG.

A goal is z ~ N(0, I) decoded into the image it stands for (ssl_robot.goals.GoalSampler). The CC-VAE decodes it
under the context s0 = the newest frame of the scene camera, so the goal shows the objects actually in front of the
robot; the β-VAE (method 'betavae') decodes it from the prior alone. A goal is drawn

- on a /goal/sample request (std_srvs/Trigger), from the newest frame; the response says why when no goal could be
  drawn (no model loaded yet, no camera frame yet);
- at the start of each episode (/sim/episode), from the episode's first frame: the first frame stamped at or after
  the episode's stamp.

Published on latched topics (reliable, transient local, keep last 1), so a node started later still gets the goal
in force: /goal/latent (sensor_msgs/Image 32FC1, 1 x latent_dim) and /goal/image (rgb8, the model's image size).
Both carry the context frame's stamp (a β-VAE goal: the newest frame's, or the node clock's before any frame) and
the model id as frame_id.

Bad input never stops the node: an unusable image, an episode event that cannot be read and a checkpoint that is
missing or unloadable are dropped or ignored, warned about (rate-limited per kind) and reported on /diagnostics
(status 'ssl_robot/goal'). The checkpoint is loaded at start if it can be, else as soon as it can be; a changed
checkpoint file is loaded without a restart.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ssl_robot import topics
from ssl_robot.goals import GoalSampler, ModelLoader, ModelUnavailable, needs_context
from ssl_robot.problem_log import ProblemLog
from ssl_robot.ros.convert import ImageFormatError, array_to_image, as_rgb, image_to_array, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.diagnostics import diagnostic_array
from ssl_robot.ros.node_main import spin_node
from ssl_robot.ros.parameters import NodeParameters
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

DIAGNOSTIC_NAME = 'ssl_robot/goal'
DEFAULT_CAMERA = topics.camera_image('front_left')
DIAGNOSTICS_PERIOD_S = 1.0


class StampedFrame(NamedTuple):
    stamp_ns: int
    rgb: np.ndarray
    """(H, W, 3) uint8 RGB pixels."""


class GoalNode(NodeParameters, Node):

    READ_ONLY_PARAMETERS = True

    def __init__(self) -> None:
        super().__init__('goal')
        self._declare('camera', DEFAULT_CAMERA, 'image topic of the scene camera whose newest frame is the context s0')
        self._declare('method', 'ccvae', 'ccvae (goals imagined in the current scene) or betavae (from the prior)')
        self._declare('checkpoint', '',
                      'checkpoint file; empty = the shipped ssl_robot/checkpoints/<method>.safetensors')
        self._declare('seed', -1, 'seed of the goal latents: the same seed draws the same sequence; < 0 = random')
        self._declare('reload_check_period_s', 2.0, 'how often the checkpoint file is checked for a new version')

        self._camera = self._param('camera')
        method = self._param('method')
        self._needs_context = needs_context(method)
        seed = self._param('seed')
        reload_period_s = self._param('reload_check_period_s')
        if not (reload_period_s > 0 and math.isfinite(reload_period_s)):
            raise ValueError(f'parameter reload_check_period_s must be a finite number > 0, got {reload_period_s}')
        self._sampler = GoalSampler(seed if seed >= 0 else None)
        self._model = ModelLoader(self._param('checkpoint'), method)
        self._problems = ProblemLog(self.get_logger().warning)
        self._newest: StampedFrame | None = None
        self._episode_start_ns: int | None = None  # an episode waiting for its first frame
        self._goals = 0

        self._latent_publisher = self.create_publisher(Image, topics.GOAL_LATENT, LATCHED_QOS)
        self._image_publisher = self.create_publisher(Image, topics.GOAL_IMAGE, LATCHED_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        self.create_subscription(Image, self._camera, self._on_image, SENSOR_QOS)
        self.create_subscription(String, topics.EPISODES, self._on_episode, LATCHED_QOS)
        self.create_service(Trigger, topics.GOAL_SAMPLE_SERVICE, self._on_sample)
        reload = functools.partial(self._model.refresh_reporting, self._problems, self.get_logger().info)
        reload()
        self.create_timer(reload_period_s, reload)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        context = f'in the scene of {self._camera}' if self._needs_context else 'from the prior'
        self.get_logger().info(f'{method} goals {context} with {self._model.model_id}; {topics.GOAL_SAMPLE_SERVICE} draws one')

    def _on_image(self, message: Image) -> None:
        try:
            rgb = as_rgb(image_to_array(message), message.encoding)
        except ImageFormatError as error:
            self._problems.report('bad_image', f'{self._camera}: {error}; dropped')
            return
        self._newest = StampedFrame(stamp_to_ns(message.header.stamp), rgb)
        if self._episode_start_ns is not None and self._newest.stamp_ns >= self._episode_start_ns:
            self._episode_start_ns = None
            try:
                self._publish_goal()
            except ModelUnavailable as error:
                self._problems.report('no_model', f'{error}; no goal for the new episode')

    def _on_episode(self, message: String) -> None:
        try:
            start_ns = topics.stamp_from_dict(topics.decode_event(message.data, 'episode')['stamp'])
        except (ValueError, KeyError, TypeError) as error:
            self._problems.report('bad_event', f'{error!r} in {message.data[:120]!r}; dropped')
            return
        self._episode_start_ns = start_ns

    def _publish_goal(self) -> str:
        """Draw and publish a goal; a line saying which. ModelUnavailable or LookupError saying why none was drawn."""
        loaded = self._model.require()
        frame = self._newest
        if frame is None and self._needs_context:
            raise LookupError(f'no frame from {self._camera} yet: a {loaded.method} goal needs the scene as context')
        goal = self._sampler.sample(loaded, frame.rgb if self._needs_context else None)
        stamp_ns = frame.stamp_ns if frame is not None else self.get_clock().now().nanoseconds
        stamp = ns_to_stamp(stamp_ns)
        self._latent_publisher.publish(array_to_image(goal.latent, '32FC1', stamp, goal.model_id))
        self._image_publisher.publish(array_to_image(goal.image, 'rgb8', stamp, goal.model_id))
        self._goals += 1
        return f'goal {self._goals} from {goal.model_id}, stamped {stamp_ns} ns'

    def _on_sample(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self._publish_goal()
            response.success = True
        except (ModelUnavailable, LookupError) as error:
            response.success, response.message = False, str(error)
        return response

    def _publish_diagnostics(self) -> None:
        problems = self._problems.take_recent()
        values = {'model_id': self._model.model_id, 'camera': self._camera, 'goals_published': str(self._goals),
                  **self._problems.count_values()}
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, self._model.device.type, problems, values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))


def main(args=None) -> int:
    return spin_node(GoalNode, 'goal_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
