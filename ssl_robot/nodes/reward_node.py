"""reward_node: rewards for controllers from what the model nodes publish, several kinds at once, each on its own topic.

This node holds no model and imports no torch: each model runs in the one node that owns it and publishes its
outputs with its model id, and a reward compares an input with its goal only when both come from the same weights
(ModelId.same_weights; a mismatch or an unreadable model id is counted as model_mismatch on /diagnostics and dropped).

Kinds (parameter `kinds`, any subset of them; reward = <kind>_scale * the formula, ssl_robot.rewards.functions):
- imitation (TCN, Sermanet et al. 2018): r = -(|e - d|^2 + sqrt(gamma + |e - d|^2)) between the fused row (the last)
  of each /embeddings message and the demo frame it is aligned with. The demo comes latched on /embeddings/demo from
  the embedding node, which embeds its demo_bag with the model it runs (demo_trajectory.EmbeddedDemo.from_rows).
  Alignment (imitation_alignment): 'time_index', the demo frame taken as long after its episode's start as the
  embedding's stamp is after the current episode's start (episodes start at the stamp of the latest /sim/episode
  event, or at the first embedding while there is none: demo_trajectory.EpisodeClock); or 'nearest_neighbour', the
  nearest demo frame in embedding space (within imitation_window frames ahead of the previous match, if > 0).
- latent_goal (RIG, Nair et al. 2018): r = -|z - z_g|, z each latent on /latent/scene (the goal node's e(s | s0) or
  e(s), stamped with its scene frame), z_g the latest goal latent on /goal/latent.
- grasp2vec (Jang et al. 2018): r = phi_o(g) . phi_o(o) (their cosine with grasp2vec_normalize), phi_o(o) each
  /grasp2vec/object_embedding (stamped with the object image o of a successful grasp), phi_o(g) the latest
  /goal/object_embedding; the grasp2vec node publishes both.

Output, per kind: geometry_msgs/Vector3Stamped on /reward/<kind>, reliable. vector.x = the reward (scaled);
vector.y = the unscaled quantity it is made of: imitation |e - d| to the aligned demo frame, latent_goal |z - z_g|,
grasp2vec phi_o(g) . phi_o(o) (or the cosine); vector.z = 0. header.stamp = the stamp of the observation scored (the
embedded camera set, the scene frame, the object image o), so a controller pairs the reward with the step it scores;
header.frame_id = the model id of the input. Vector3Stamped because it is a standard message with a header and room
for both numbers: std_msgs/Float32 has no header, and this single ament_python package cannot define a message.

Goals and the demo are latched (reliable, transient local, depth 1), so one set before this node started still
arrives. Goals are sensor_msgs/Image 32FC1, 1 x D, the model id as frame_id (an Image rather than
std_msgs/Float32MultiArray, which has no header).

Bad input never stops the node. An input of the wrong shape or encoding, with NaN, or from other weights than its
goal's; a stamp that is negative (bad_stamp), or an embedding older than the previous one; a malformed episode event
(ssl_robot.events), goal (beyond ros.decoders.MAX_GOAL_LATENT_ABS, say) or demo: each is dropped, logged with a
warning rate-limited per kind, and reported on /diagnostics (status 'ssl_robot/reward', on the wall clock: it goes on
when /clock stops, with received_<topic>, receive_hz_<topic> per input and <kind>_hz per reward). No goal (or demo),
no reward of its kind.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ssl_robot import topics
from ssl_robot.rewards.demonstration import EmbeddedDemo, EpisodeClock, StampRejected
from ssl_robot.events import EventError, decode_episode_event
from ssl_robot.health.input_monitor import InputMonitor
from ssl_robot.model_ids import ModelId
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.params.reward import GRASP2VEC, IMITATION, KINDS, LATENT_GOAL, RewardParams
from ssl_robot.rewards.functions import Grasp2VecReward, ImitationReward, LatentGoalReward
from ssl_robot.ros.convert import ImageFormatError, MessageError, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.decoders import float_values, goal_latent
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.ros.parameters import declare_params
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

REWARD_TOPICS = {kind: topics.reward_topic(kind) for kind in KINDS}
DIAGNOSTIC_NAME = 'ssl_robot/reward'
DIAGNOSTICS_PERIOD_S = 1.0


@dataclass
class GoalKind:
    """A reward of each input against the latest goal, both published by the node that runs their model."""

    kind: str
    goal_name: str
    """What the goal is called in problem kinds (no_<goal_name>) and diagnostics values (<goal_name>_from)."""
    reward: LatentGoalReward | Grasp2VecReward
    goal_topic: str
    unscaled: Callable[[float], float]
    """The quantity a reward is made of (the latent distance, the Grasp2Vec score), from the reward."""
    goal_model_id: str = 'none'
    goal_from: str = 'none'


class RewardNode(Node):

    def __init__(self) -> None:
        super().__init__('reward')
        self.params = declare_params(self, RewardParams, read_only=True)
        scales = {kind: self.params.scale(kind) for kind in self.params.kinds}
        self._problems = ProblemLog(self.get_logger().warning)
        self._published: Counter[str] = Counter()
        self._goal_kinds: dict[str, GoalKind] = {}
        self._input_topics: list[str] = []  # subscribed by _subscribe_input; counted by self._inputs
        self._reward_publishers = {
            kind: self.create_publisher(Vector3Stamped, topics.in_namespace(REWARD_TOPICS[kind]), RELIABLE_QOS)
            for kind in self.params.kinds}
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        if IMITATION in self.params.kinds:
            self._start_imitation(scales[IMITATION])
        if LATENT_GOAL in self.params.kinds:
            latent_goal = GoalKind(LATENT_GOAL, 'latent_goal', LatentGoalReward(scales[LATENT_GOAL]),
                                   topics.GOAL_LATENT, lambda reward: -reward / scales[LATENT_GOAL])
            self._start_goal_kind(latent_goal, topics.SCENE_LATENT, SENSOR_QOS)
        if GRASP2VEC in self.params.kinds:
            grasp2vec_reward = Grasp2VecReward(scales[GRASP2VEC], self.params.grasp2vec_normalize)
            grasp2vec = GoalKind(GRASP2VEC, 'grasp2vec_goal', grasp2vec_reward, topics.GOAL_OBJECT_EMBEDDING,
                                 lambda reward: reward / scales[GRASP2VEC])
            self._start_goal_kind(grasp2vec, topics.GRASP2VEC_OBJECT_EMBEDDING, RELIABLE_QOS)
        self._inputs = InputMonitor(self._input_topics)
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(f'rewards {", ".join(self.params.kinds)} from {", ".join(self._input_topics)}')

    # --- inputs, outputs and diagnostics ------------------------------------------------------------------------

    def _subscribe_input(self, topic: str, callback: Callable[[Image], None], qos: QoSProfile) -> None:
        """Subscribe to an input whose messages are counted against the rewards published."""
        topic = topics.in_namespace(topic)
        self._input_topics.append(topic)
        self.create_subscription(Image, topic, functools.partial(self._on_input, topic, callback), qos)

    def _on_input(self, topic: str, callback: Callable[[Image], None], message: Image) -> None:
        self._inputs.arrived(topic)
        callback(message)

    def _floats(self, topic: str, message: Image) -> tuple[int, np.ndarray] | None:
        """The stamp and values of a 32FC1 input, or None after reporting why they are unusable."""
        try:
            return stamp_to_ns(message.header.stamp), float_values(message)
        except MessageError as error:
            kind = 'bad_embedding' if isinstance(error, ImageFormatError) else error.kind
            self._problems.report(kind, f'{topic}: {error}; dropped')
            return None

    def _same_weights(self, topic: str, model_id: str, expected: str, goal: str) -> bool:
        try:
            if ModelId.parse(model_id).same_weights(ModelId.parse(expected)):
                return True
            why = ''
        except ValueError as error:
            why = f' ({error})'
        self._problems.report('model_mismatch', f'{topic} from {model_id!r}, but the {goal} is from {expected!r}'
                                                f'{why}; dropped')
        return False

    def _publish(self, kind: str, stamp_ns: int, reward: float, unscaled: float, model_id: str) -> None:
        message = Vector3Stamped()
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.header.frame_id = model_id
        message.vector.x, message.vector.y = float(reward), float(unscaled)
        self._reward_publishers[kind].publish(message)
        self._published[kind] += 1

    def _publish_diagnostics(self) -> None:
        recent = self._problems.take_recent()
        values = {'kinds': ','.join(self.params.kinds)}
        for kind in self.params.kinds:
            values[f'{kind}_published'] = str(self._published[kind])
        if IMITATION in self.params.kinds:
            values['episode_start_ns'] = str(self._episode_start_ns)
            values['imitation_demo_from'] = 'none' if self._demo is None else self._demo.model_id
        for goal_kind in self._goal_kinds.values():
            values[f'{goal_kind.goal_name}_from'] = goal_kind.goal_from
        values.update(self._inputs.rate_values(self._published))
        values.update(self._problems.count_values())
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, 'cpu', recent, values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))

    # --- imitation ----------------------------------------------------------------------------------------------

    def _start_imitation(self, scale: float) -> None:
        self._imitation_settings = {'alignment': self.params.imitation_alignment, 'scale': scale,
                                    'window': self.params.imitation_window or None}
        self._demo: EmbeddedDemo | None = None
        self._imitation: ImitationReward | None = None
        self._episode_clock = EpisodeClock()
        self._episode_start_ns: int | None = None
        self.create_subscription(Image, topics.in_namespace(topics.DEMO_EMBEDDINGS), self._on_demo, LATCHED_QOS)
        self.create_subscription(String, topics.in_namespace(topics.EPISODES), self._on_episode, LATCHED_QOS)
        self._subscribe_input(topics.EMBEDDINGS, self._on_embeddings, SENSOR_QOS)

    def _on_demo(self, message: Image) -> None:
        try:
            stamp_to_ns(message.header.stamp)
            demo = EmbeddedDemo.from_rows(float_values(message), message.header.frame_id)
        except ValueError as error:  # MessageError is one
            self._problems.report('bad_demo', f'{topics.DEMO_EMBEDDINGS}: {error}; the demo stays '
                                              f'{"none" if self._demo is None else self._demo.model_id}')
            return
        self._demo = demo
        # The match starts over at the demo's first frame: nearest_neighbour alignment loses its place mid-episode.
        self._imitation = ImitationReward(demo.trajectory, **self._imitation_settings)
        self.get_logger().info(f'demo: {len(demo.trajectory)} frames embedded by {demo.model_id}')

    def _on_episode(self, message: String) -> None:
        try:
            stamp_ns = decode_episode_event(message.data).stamp_ns
        except EventError as error:
            self._problems.report('bad_event', f'{topics.EPISODES}: {error}; ignored')
            return
        self._episode_start_ns = stamp_ns
        self._episode_clock.start_episode(stamp_ns)

    def _on_embeddings(self, message: Image) -> None:
        decoded = self._floats(topics.EMBEDDINGS, message)
        if decoded is None:
            return
        stamp_ns, embeddings = decoded
        demo = self._demo
        if demo is None:
            self._problems.report('no_demo', f'no demo has arrived on {topics.DEMO_EMBEDDINGS} (the embedding node '
                                             f'publishes it when given demo_bag); nothing published on '
                                             f'{REWARD_TOPICS[IMITATION]}')
            return
        if embeddings.shape[0] < 2 or embeddings.shape[1] != demo.trajectory.dim:
            self._problems.report('bad_embedding', f'{topics.EMBEDDINGS}: shape is {embeddings.shape}, expected '
                                                   f'(K + 1 >= 2, {demo.trajectory.dim}): K cameras and their fusion,'
                                                   f' as the demo; dropped')
            return
        if not self._same_weights(topics.EMBEDDINGS, message.header.frame_id, demo.model_id, 'demo'):
            return
        try:
            episode_time = self._episode_clock.observe(stamp_ns)
        except StampRejected as rejected:
            if rejected.kind == 'before_episode':
                self._problems.counts[rejected.kind] += 1  # normal at an episode boundary: counted, not a problem
            else:
                self._problems.report(rejected.kind, f'{topics.EMBEDDINGS}: {rejected}; dropped')
            return
        if episode_time.first:
            self._imitation.reset()
        step = self._imitation.step(embeddings[-1], demo.demo_time(episode_time.seconds))
        self._publish(IMITATION, stamp_ns, step.reward, math.sqrt(step.squared_distance), message.header.frame_id)

    # --- latent goal and grasp2vec: an input against the latest goal ----------------------------------------------

    def _start_goal_kind(self, goal_kind: GoalKind, input_topic: str, input_qos: QoSProfile) -> None:
        self._goal_kinds[goal_kind.kind] = goal_kind
        self.create_subscription(Image, topics.in_namespace(goal_kind.goal_topic),
                                 functools.partial(self._on_goal, goal_kind), LATCHED_QOS)
        self._subscribe_input(input_topic, functools.partial(self._on_scored_input, goal_kind, input_topic), input_qos)

    def _on_goal(self, goal_kind: GoalKind, message: Image) -> None:
        try:
            goal = goal_latent(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{goal_kind.goal_topic}: {error}; the goal stays {goal_kind.goal_from}')
            return
        goal_kind.reward.set_goal(goal)
        goal_kind.goal_model_id = message.header.frame_id
        model = message.header.frame_id or 'an unnamed model'
        goal_kind.goal_from = f'{model} at {stamp_to_ns(message.header.stamp)} ns'

    def _on_scored_input(self, goal_kind: GoalKind, topic: str, message: Image) -> None:
        decoded = self._floats(topic, message)
        if decoded is None:
            return
        stamp_ns, values = decoded
        goal = goal_kind.reward.goal
        if goal is None:
            self._problems.report(f'no_{goal_kind.goal_name}', f'no goal has arrived on {goal_kind.goal_topic}; '
                                                               f'nothing published on {REWARD_TOPICS[goal_kind.kind]}')
            return
        if not self._same_weights(topic, message.header.frame_id, goal_kind.goal_model_id, 'goal'):
            return
        if values.shape != (1, len(goal)):
            self._problems.report('bad_embedding', f'{topic}: shape is {values.shape}, but the goal is (1, '
                                                   f'{len(goal)}); dropped')
            return
        reward = goal_kind.reward.reward(values[0])
        self._publish(goal_kind.kind, stamp_ns, reward, goal_kind.unscaled(reward), message.header.frame_id)


def main(args=None) -> int:
    return spin_node(RewardNode, 'reward_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
