"""goal_node: goals for goal-conditioned control in a CC-VAE's (or a β-VAE's) latent space, as in RIG and CC-RIG.

An imagined goal is z ~ N(0, I) decoded into the image it stands for (ssl_robot.inference.goals.GoalSampler). The CC-VAE
decodes it under the context s0 = the newest frame of the scene camera, so the goal shows the objects actually in front
of the robot; the β-VAE (vae_method 'betavae', config/models.yaml) decodes it from the prior alone. A goal is drawn

- on a /goal/sample request (std_srvs/Trigger), from the newest frame;
- at the start of each episode (/sim/episode), from the episode's first frame: the first frame stamped at or after
  the episode's stamp.

With imagine_method set, a second model imagines the goal (e.g. the RL task camera's CC-VAE, in the current scene)
and the node's own model encodes the goal image as it encodes a scene goal: /goal/latent then stays in the latent space
of /latent/scene, which a policy trained on the node's model (the reach policy: the task camera's β-VAE) understands.

A scene goal is the newest frame itself, made the goal on a /goal/from_scene request (std_srvs/Trigger): its latent is
the posterior mean e(g) = mu(g) (ssl_robot.inference.goals.scene_goal), encoded as the scene latents this node
publishes, a CC-VAE under the context of the episode's first frame, so that the latent-goal reward is 0 when the scene
looks like that frame again. A controller (or a test) shows the robot the goal state and asks for it.

Either service's response says why no goal was published (no model loaded yet, no camera frame yet).

Published on latched topics (reliable, transient local, keep last 1), so a node started later still gets the goal
in force: /goal/latent (sensor_msgs/Image 32FC1, 1 x latent_dim) and /goal/image (rgb8: an imagined goal at the
model's image size, a scene goal at the camera's). Both carry the stamp of the frame the goal comes from (the context
frame of an imagined goal, the goal frame of a scene goal; a β-VAE imagined goal: the newest frame's, or the node
clock's before any frame) and the model id as frame_id.

The latent of every scene frame goes out on /latent/scene (sensor_msgs/Image 32FC1, 1 x latent_dim, sensor-data QoS:
best effort, keep last 5, as the camera it comes from), stamped with the frame, the model id as frame_id: e(s | s0) for
the CC-VAE, s0 the episode's first frame, e(s) for the β-VAE (ssl_robot.inference.goals.scene_latent). The reward node
scores it against /goal/latent, so this node is the one place that holds the VAE and the episode context. A frame that
arrives before the model has loaded gets no latent (counted as scene_without_model).

Bad input never stops the node: an unusable image or stamp, an episode event that cannot be read (ssl_robot.events) and
a checkpoint that is missing or unloadable are dropped or ignored, warned about (rate-limited per kind) and reported on
/diagnostics (status 'ssl_robot/goal'), which runs on the wall clock so it goes on when /clock stops. The checkpoint is
loaded at start if it can be, else as soon as it can be; a changed checkpoint file is loaded without a restart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ssl_robot import topics
from ssl_robot.rewards.demonstration import EpisodeClock, StampRejected
from ssl_robot.events import EventError, decode_episode_event
from ssl_robot.inference.goals import Goal, GoalSampler, needs_context, scene_goal, scene_latent
from ssl_robot.inference.model_holder import ModelLoader, ModelUnavailable, set_torch_threads
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.ros.convert import MessageError, array_to_image, ns_to_stamp
from ssl_robot.ros.decoders import rgb_frame
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.goal import GoalParams
from ssl_robot.ros.parameters import declare_params, expand_topics
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.ros.services import answer_trigger

DIAGNOSTIC_NAME = 'ssl_robot/goal'
DIAGNOSTICS_PERIOD_S = 1.0
# Why a goal request can be refused: no model loaded yet (ModelUnavailable), or no frame to draw it from (LookupError).
GOAL_REFUSALS = (ModelUnavailable, LookupError)


class StampedFrame(NamedTuple):
    stamp_ns: int
    rgb: np.ndarray
    """(H, W, 3) uint8 RGB pixels."""


class GoalNode(Node):

    def __init__(self) -> None:
        super().__init__('goal')
        self.params = params = declare_params(self, GoalParams, read_only=True)
        set_torch_threads(params.torch_threads)
        self._camera = expand_topics(self, params.camera)
        self._needs_context = needs_context(params.vae_method)
        self._sampler = GoalSampler(params.seed if params.seed >= 0 else None)
        self._model = ModelLoader(params.vae_checkpoint, params.vae_method)
        # Imagined by a second model, encoded by this one: e.g. the task camera's CC-VAE imagines a goal in the current
        # scene, and the beta-VAE the reach policy was trained on gives its latent.
        self._imaginer = (ModelLoader(params.imagine_checkpoint, params.imagine_method) if params.imagine_method
                          else None)
        self._problems = ProblemLog(self.get_logger().warning)
        self._newest: StampedFrame | None = None
        # The episode's first frame: the context a CC-VAE encodes scene latents and scene goals under (an episode
        # starts at a /sim/episode event, or at the first frame). This node is the only owner of that context.
        self._episode = EpisodeClock()
        self._episode_first: StampedFrame | None = None
        self._goal_due = False  # an episode started: draw a goal from its first frame
        self._goals = 0
        self._scene_latents = 0

        self._latent_publisher = self.create_publisher(Image, topics.in_namespace(topics.GOAL_LATENT), LATCHED_QOS)
        self._image_publisher = self.create_publisher(Image, topics.in_namespace(topics.GOAL_IMAGE), LATCHED_QOS)
        self._scene_latent_publisher = self.create_publisher(Image, topics.in_namespace(topics.SCENE_LATENT),
                                                             SENSOR_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        self.create_subscription(Image, self._camera, self._on_image, SENSOR_QOS)
        self.create_subscription(String, topics.in_namespace(topics.EPISODES), self._on_episode, LATCHED_QOS)
        self.create_service(Trigger, topics.in_namespace(topics.GOAL_SAMPLE_SERVICE), self._on_sample)
        self.create_service(Trigger, topics.in_namespace(topics.GOAL_FROM_SCENE_SERVICE), self._on_from_scene)
        models = [self._model] + ([self._imaginer] if self._imaginer is not None else [])

        def reload() -> None:
            for model in models:
                model.refresh_reporting(self._problems, self.get_logger().info)

        reload()
        wall_timer(self, self.params.reload_check_period_s, reload)
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        imaginer = self._imaginer or self._model
        context = f'in the scene of {self._camera}' if needs_context(imaginer.method) else 'from the prior'
        encoded = f', encoded by {self._model.model_id}' if self._imaginer is not None else ''
        self.get_logger().info(f'{imaginer.method} goals {context} with {imaginer.model_id}{encoded}; '
                               f'{topics.GOAL_SAMPLE_SERVICE} '
                               f'draws one, {topics.GOAL_FROM_SCENE_SERVICE} makes the scene the goal')

    def _on_image(self, message: Image) -> None:
        try:
            stamp_ns, rgb, _ = rgb_frame(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{self._camera}: {error}; dropped')
            return
        self._newest = StampedFrame(stamp_ns, rgb)
        try:
            first = self._episode.observe(self._newest.stamp_ns).first
        except StampRejected as rejected:
            # A frame of the previous episode, arriving after the event: neither a context, a scene latent nor a goal.
            if rejected.kind == 'before_episode':
                self._problems.counts[rejected.kind] += 1  # normal at an episode boundary: counted, not a problem
            else:
                self._problems.report(rejected.kind, f'{self._camera}: {rejected}; no scene latent')
            return
        if first:
            self._episode_first = self._newest
        self._publish_scene_latent(self._newest)
        if first and self._goal_due:
            self._goal_due = False
            try:
                self._imagine_goal()
            except ModelUnavailable as error:
                self._problems.report('no_model', f'{error}; no goal for the new episode')

    def _publish_scene_latent(self, frame: StampedFrame) -> None:
        if self._model.loaded is None:
            self._problems.counts['scene_without_model'] += 1  # the checkpoint problem is reported by the reload
            return
        encoded = scene_latent(self._model.loaded, frame.rgb, self._episode_first.rgb if self._needs_context else None)
        if not np.isfinite(encoded.latent).all():  # a diverged checkpoint: a NaN latent would poison every reward
            self._problems.report('bad_model_output', f'{encoded.model_id}: a non-finite latent of the frame stamped '
                                                      f'{frame.stamp_ns} ns; not published')
            return
        self._scene_latent_publisher.publish(array_to_image(encoded.latent, '32FC1', ns_to_stamp(frame.stamp_ns),
                                                            encoded.model_id))
        self._scene_latents += 1

    def _on_episode(self, message: String) -> None:
        try:
            start_ns = decode_episode_event(message.data).stamp_ns
        except EventError as error:
            self._problems.report('bad_event', f'{error} in {message.data[:120]!r}; dropped')
            return
        if self._episode.start_episode(start_ns):
            self._goal_due = True

    def _require_frame(self, why: str) -> StampedFrame:
        if self._newest is None:
            raise LookupError(f'no frame from {self._camera} yet: {why}')
        return self._newest

    def _imagine_goal(self) -> str:
        """Draw and publish a goal; a line saying which. ModelUnavailable or LookupError saying why none was drawn."""
        loaded = self._model.require()
        imaginer = self._imaginer.require() if self._imaginer is not None else loaded
        in_scene = needs_context(imaginer.method)
        if in_scene:
            frame = self._require_frame(f'a {imaginer.method} goal needs the scene as context')
        else:
            frame = self._newest
        goal = self._sampler.sample(imaginer, frame.rgb if in_scene else None)
        if self._imaginer is not None:
            goal = scene_goal(loaded, goal.image, self._encoding_context(loaded))
        return self._publish(goal, frame.stamp_ns if frame is not None else self.get_clock().now().nanoseconds)

    def _encoding_context(self, loaded) -> np.ndarray | None:
        """What this node's model encodes a goal image under: the episode's first frame for a CC-VAE (LookupError
        before there is one), nothing for a β-VAE."""
        if not self._needs_context:
            return None
        if self._episode_first is None:
            raise LookupError(f'no frame from {self._camera} in this episode yet: a {loaded.method} goal latent is '
                              f'encoded under the context of the episode\'s first frame')
        return self._episode_first.rgb

    def _scene_as_goal(self) -> str:
        """Publish the newest frame as the goal; a line saying which. ModelUnavailable or LookupError saying why not."""
        loaded = self._model.require()
        frame = self._require_frame('the goal would be the newest frame')
        return self._publish(scene_goal(loaded, frame.rgb, self._encoding_context(loaded)), frame.stamp_ns)

    def _publish(self, goal: Goal, stamp_ns: int) -> str:
        stamp = ns_to_stamp(stamp_ns)
        self._latent_publisher.publish(array_to_image(goal.latent, '32FC1', stamp, goal.model_id))
        self._image_publisher.publish(array_to_image(goal.image, 'rgb8', stamp, goal.model_id))
        self._goals += 1
        return f'goal {self._goals} from {goal.model_id}, stamped {stamp_ns} ns'

    def _on_sample(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return answer_trigger(response, self._imagine_goal, GOAL_REFUSALS)

    def _on_from_scene(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return answer_trigger(response, self._scene_as_goal, GOAL_REFUSALS)

    def _publish_diagnostics(self) -> None:
        problems = self._problems.take_recent()
        values = {'model_id': self._model.model_id, 'camera': self._camera, 'goals_published': str(self._goals),
                  **({'imagine_model_id': self._imaginer.model_id} if self._imaginer is not None else {}),
                  'scene_latents_published': str(self._scene_latents),
                  **self._problems.count_values()}
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, self._model.device.type, problems, values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))


def main(args=None) -> int:
    return spin_node(GoalNode, 'goal_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
