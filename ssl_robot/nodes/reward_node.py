"""reward_node: rewards for controllers from learned embeddings, several kinds at once, each on its own topic.

Kinds (parameter `kinds`, any subset of them; reward = <kind>_scale * the formula, ssl_robot.rewards):
- imitation (TCN, Sermanet et al. 2018): r = -(|e - d|^2 + sqrt(gamma + |e - d|^2)) between the fused row (the last)
  of each /embeddings message and the demo frame it is aligned with. The demo is episode demo_episode of the bag
  demo_bag, embedded at start by this node from demo_camera_topics with the embedding node's model: the same
  embedding_method, embedding_checkpoint and clip_frame_period_s, which both nodes read from
  config/embedding_model.yaml. An /embeddings message whose model id names other weights is dropped. Alignment
  (imitation_alignment): 'time_index', the demo frame taken as long after its episode's start as the embedding's
  stamp is after the current episode's start; or 'nearest_neighbour', the nearest demo frame in embedding space
  (within imitation_window frames ahead of the previous match, if > 0).
- latent_goal (RIG, Nair et al. 2018): r = -|e(s) - e(g)|, e(s) the VAE posterior mean of each latent_goal_camera
  image, e(g) the latest goal latent. A CC-VAE (vae_method 'ccvae') encodes s under the context of the episode's first
  frame, the first image of latent_goal_camera this node received in the episode.
- grasp2vec (Jang et al. 2018): r = phi_o(g) . phi_o(o) (their cosine with grasp2vec_normalize) when a
  /sim/grasp_events message names the stamp of the object image o a grasp brought to the object camera; g is the
  goal object image. Object images are kept object_image_buffer_s seconds (at most frame_buffer_max_mb), since the
  event arrives at s_post, after the object has been dropped. A failed grasp (o null) brings no image and gets no reward.

Output, per kind: geometry_msgs/Vector3Stamped on /reward/<kind>, reliable. vector.x = the reward (scaled);
vector.y = the unscaled quantity it is made of: imitation |e - d| to the aligned demo frame, latent_goal
|e(s) - e(g)|, grasp2vec phi_o(g) . phi_o(o) (or the cosine); vector.z = 0. header.stamp = the stamp of the observation
scored (the embedded camera set, the scene image, the object image o), so a controller pairs the reward with the
step it scores; header.frame_id = the model id of the checkpoint that produced it. Vector3Stamped because it is a
standard message with a header and room for both numbers: std_msgs/Float32 has no header, and this single
ament_python package cannot define a message of its own.

Goal inputs (latched: reliable, transient local, depth 1, so a goal set before this node started still arrives):
- /goal/latent: sensor_msgs/Image, encoding 32FC1, height 1, width Z = the VAE's latent_dim: one goal latent.
  header.stamp = when the goal was chosen, header.frame_id = the model id of the VAE whose latent space it is in
  (reported on /diagnostics). An Image rather than std_msgs/Float32MultiArray, which has no header.
- /goal/object_image: sensor_msgs/Image (rgb8, bgr8 or mono8): the goal object as the object camera shows it. The
  grasp2vec_goal_image file, if given, is the goal until one arrives here.

Episodes start at the stamp of the latest /sim/episode event, or at the first observation while there is none; a
new one restarts the imitation alignment and the CC-VAE context (demo_trajectory.EpisodeClock).

Bad input never stops the node. An embedding of the wrong shape or encoding, with NaN, or from other weights; an
image with an unusable layout; a stamp that is negative (bad_stamp) or older than its stream's previous one; a
malformed event (ssl_robot.events) or goal (beyond ros.decoders.MAX_GOAL_LATENT_ABS, say); a grasp whose o image never
arrived; a checkpoint file that changed into something unloadable: each is dropped, logged with a warning rate-limited
per kind, and reported on /diagnostics (status 'ssl_robot/reward', on the wall clock: it goes on when /clock stops,
with received_<topic>, receive_hz_<topic> per input and <kind>_hz per reward). No goal, no reward of its kind. Checkpoints load at start and are reloaded
when their files change; a new imitation checkpoint re-embeds the demo.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, deque
from collections.abc import Sequence

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from torch import Tensor, nn

from ssl_robot import topics
from ssl_robot.data.reader import rgb_to_tensor
from ssl_robot.demo_trajectory import EmbeddedDemo, EpisodeClock, EpisodeTime, StampRejected, embed_demo
from ssl_robot.events import EventError, decode_episode_event, decode_grasp_event
from ssl_robot.frame_buffer import BYTES_PER_MB, StampedFrames
from ssl_robot.goals import GOAL_METHODS
from ssl_robot.input_monitor import InputMonitor
from ssl_robot.problem_log import ProblemLog
from ssl_robot.inference import EMBEDDING_METHODS, LoadedModel, default_checkpoint, preprocess
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.models.vae import CCVAE
from ssl_robot.nodes.embedding_node import DEFAULT_CAMERA_TOPICS
from ssl_robot.rewards import ALIGNMENTS, Grasp2VecReward, ImitationReward, LatentGoalReward
from ssl_robot.ros.convert import ImageFormatError, MessageError, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.decoders import RgbFrame, float_values, goal_latent, rgb_frame
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.ros.parameters import NodeParameters
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

IMITATION, LATENT_GOAL, GRASP2VEC = 'imitation', 'latent_goal', 'grasp2vec'
KINDS = (IMITATION, LATENT_GOAL, GRASP2VEC)
REWARD_TOPICS = {kind: topics.reward_topic(kind) for kind in KINDS}
DIAGNOSTIC_NAME = 'ssl_robot/reward'
DIAGNOSTICS_PERIOD_S = 1.0
MAX_PENDING_GRASPS = 16
NS_PER_S = 1_000_000_000


def model_input(model: LoadedModel, frames: Sequence[np.ndarray]) -> tuple[nn.Module, str, Tensor]:
    """The current model of a LoadedModel, its id, and frames as its (N, 3, S, S) input, resized as in training."""
    loaded = model.current  # one model for all frames, even if a reload swaps it meanwhile
    images = rgb_to_tensor(preprocess(frames, loaded.model.config.image_size)).to(model.device)
    return loaded.model, loaded.model_id, images


def read_rgb_file(path: str) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'parameter grasp2vec_goal_image: cannot read an image from {path!r}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class RewardNode(NodeParameters, Node):

    READ_ONLY_PARAMETERS = True

    def __init__(self) -> None:
        super().__init__('reward')
        self._declare('kinds', list(KINDS), f'rewards to publish, any of {list(KINDS)}; each on /reward/<kind>')
        for kind in KINDS:
            self._declare(f'{kind}_scale', 1.0, f'the {kind} reward is multiplied by this (> 0)')
        self._declare('demo_bag', '', 'imitation: bag holding the demonstration')
        self._declare('demo_episode', 0, 'imitation: the demonstration is this episode of demo_bag (0 = the first)')
        self._declare('demo_camera_topics', [topics.in_namespace(topic) for topic in DEFAULT_CAMERA_TOPICS],
                      "imitation: the demo's cameras, in the embedding node's camera_topics order; a relative name "
                      "is looked up in the bag as this node resolves it (in its namespace)")
        self._declare_embedding_model()   # imitation: the demo is embedded as the embedding node embeds frames
        self._declare('imitation_alignment', 'time_index', f'imitation: how a demo frame is chosen, one of '
                                                           f'{list(ALIGNMENTS)}')
        self._declare('imitation_window', 0, 'imitation, nearest_neighbour: frames the match may move ahead per '
                                             'embedding; 0 = any frame of the demo')
        self._declare('latent_goal_camera', topics.in_namespace(DEFAULT_CAMERA_TOPICS[0]),
                      'latent_goal: image topic of the scene camera')
        self._declare('vae_method', 'ccvae', f'latent_goal: method of the VAE checkpoint, one of {list(GOAL_METHODS)}')
        self._declare('vae_checkpoint', '', 'latent_goal: VAE checkpoint; empty = the shipped '
                                            'ssl_robot/checkpoints/<vae_method>.safetensors')
        self._declare('grasp2vec_checkpoint', '', 'grasp2vec: checkpoint; empty = the shipped '
                                                  'ssl_robot/checkpoints/grasp2vec.safetensors')
        self._declare('grasp2vec_goal_image', '', f'grasp2vec: image file of the goal object, used until one '
                                                  f'arrives on {topics.GOAL_OBJECT_IMAGE}; empty = wait for one')
        self._declare('grasp2vec_normalize', True, 'grasp2vec: score the cosine of the embeddings, not their dot '
                                                    'product')
        self._declare('object_camera_topic', topics.in_namespace(topics.camera_image(topics.OBJECT_CAMERA)),
                      'grasp2vec: image topic of the object camera')
        self._declare('object_image_buffer_s', 10.0, 'grasp2vec: object images are kept this long (stamp time) for '
                                                     'the grasp event that names one')
        self._declare('frame_buffer_max_mb', 256.0, 'grasp2vec: most memory (MiB) the object images may take; past it '
                                                    'the oldest go first')
        self._declare('reload_check_period_s', 2.0, 'how often the checkpoint files are checked for a new version')
        self._declare_torch_threads()

        self._kinds = self._kind_list()
        scales = {kind: self._positive(f'{kind}_scale') for kind in self._kinds}
        self._problems = ProblemLog(self.get_logger().warning)
        self._published: Counter[str] = Counter()
        self._models: dict[str, LoadedModel] = {}
        self._clocks: list[EpisodeClock] = []
        self._episode_start_ns: int | None = None
        self._input_topics: list[str] = []  # subscribed by _subscribe_input; counted by self._inputs
        self._reward_publishers = {
            kind: self.create_publisher(Vector3Stamped, topics.in_namespace(REWARD_TOPICS[kind]), RELIABLE_QOS)
            for kind in self._kinds}
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        if IMITATION in self._kinds:
            self._start_imitation(scales[IMITATION])
        if LATENT_GOAL in self._kinds:
            self._start_latent_goal(scales[LATENT_GOAL])
        if GRASP2VEC in self._kinds:
            self._start_grasp2vec(scales[GRASP2VEC])
        self._inputs = InputMonitor(self._input_topics)
        self.create_subscription(String, topics.in_namespace(topics.EPISODES), self._on_episode, LATCHED_QOS)
        wall_timer(self, self._positive('reload_check_period_s'), self._reload_models)
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info('rewards ' + ', '.join(f'{kind} from {model.model_id}'
                                                      for kind, model in self._models.items()))

    # --- parameters ---------------------------------------------------------------------------------------------

    def _kind_list(self) -> list[str]:
        kinds = list(self._param('kinds'))
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown or not kinds or len(set(kinds)) != len(kinds):
            raise ValueError(f'parameter kinds must list some of {list(KINDS)}, each once, got {kinds}')
        return kinds

    def _load(self, kind: str, checkpoint_parameter: str, method: str) -> LoadedModel:
        model = LoadedModel(self._param(checkpoint_parameter) or default_checkpoint(method), method)
        self._models[kind] = model
        return model

    def _subscribe_input(self, topic: str, callback) -> None:
        """Subscribe to an input (sensor QoS) whose messages are counted against the rewards published."""
        self._input_topics.append(topic)
        self.create_subscription(Image, topic, functools.partial(self._on_input, topic, callback), SENSOR_QOS)

    def _on_input(self, topic: str, callback, message: Image) -> None:
        self._inputs.arrived(topic)
        callback(message)

    def _new_clock(self) -> EpisodeClock:
        clock = EpisodeClock()
        self._clocks.append(clock)
        return clock

    # --- problems and diagnostics -------------------------------------------------------------------------------

    def _episode_time(self, clock: EpisodeClock, topic: str, stamp_ns: int) -> EpisodeTime | None:
        """The episode time of an observation on topic, or None if its stamp does not fit (counted or reported)."""
        try:
            return clock.observe(stamp_ns)
        except StampRejected as rejected:
            if rejected.kind == 'before_episode':
                self._problems.counts[rejected.kind] += 1  # normal at an episode boundary: counted, not a problem
            else:
                self._problems.report(rejected.kind, f'{topic}: {rejected}; dropped')
            return None

    def _publish_diagnostics(self) -> None:
        recent = self._problems.take_recent()
        values = {'kinds': ','.join(self._kinds), 'episode_start_ns': str(self._episode_start_ns)}
        for kind in self._kinds:
            values[f'{kind}_model_id'] = self._models[kind].model_id
            values[f'{kind}_published'] = str(self._published[kind])
        if LATENT_GOAL in self._kinds:
            values['latent_goal_from'] = self._latent_goal_from
        if GRASP2VEC in self._kinds:
            values['grasp2vec_goal_from'] = self._grasp2vec_goal_from
            values['pending_grasps'] = str(len(self._pending_grasps))
        values.update(self._inputs.rate_values(self._published))
        values.update(self._problems.count_values())
        devices = ','.join(sorted({model.device.type for model in self._models.values()}))
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, devices, recent, values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))

    def _publish(self, kind: str, stamp_ns: int, reward: float, unscaled: float, model_id: str) -> None:
        message = Vector3Stamped()
        message.header.stamp = ns_to_stamp(stamp_ns)
        message.header.frame_id = model_id
        message.vector.x, message.vector.y = float(reward), float(unscaled)
        self._reward_publishers[kind].publish(message)
        self._published[kind] += 1

    # --- shared inputs ------------------------------------------------------------------------------------------

    def _on_episode(self, message: String) -> None:
        try:
            stamp_ns = decode_episode_event(message.data).stamp_ns
        except EventError as error:
            self._problems.report('bad_event', f'{topics.EPISODES}: {error}; ignored')
            return
        self._episode_start_ns = stamp_ns
        for clock in self._clocks:
            clock.start_episode(stamp_ns)

    def _image(self, topic: str, message: Image) -> RgbFrame | None:
        """The stamp and RGB pixels of an image message, or None after reporting why they are unusable."""
        try:
            return rgb_frame(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{topic}: {error}; dropped')
            return None

    def _reload_models(self) -> None:
        for kind, model in self._models.items():
            previous = model.model_id
            try:
                if not model.reload_if_changed():
                    continue
            except (CheckpointError, FileNotFoundError) as error:
                self._problems.report('checkpoint', f'{kind}: {error}; still using {previous}')
                continue
            self.get_logger().info(f'{kind} checkpoint changed: {previous} -> {model.model_id}')
            if kind == IMITATION:
                self._embed_demo()

    # --- imitation ----------------------------------------------------------------------------------------------

    def _start_imitation(self, scale: float) -> None:
        self._demo_bag = self._param('demo_bag')
        if not self._demo_bag:
            raise ValueError('parameter demo_bag is empty: the imitation reward needs a demonstration bag (or leave '
                             'imitation out of kinds)')
        self._demo_episode = self._param('demo_episode')
        self._demo_cameras = [self.resolve_topic_name(topic) for topic in self._param('demo_camera_topics')]
        alignment = self._choice('imitation_alignment', ALIGNMENTS)
        window = self._param('imitation_window')
        if window < 0 or (window and alignment != 'nearest_neighbour'):
            raise ValueError(f'parameter imitation_window must be 0, or > 0 with imitation_alignment '
                             f'nearest_neighbour, got {window} with {alignment}')
        self._imitation_settings = {'alignment': alignment, 'scale': scale, 'window': window or None}
        self._load(IMITATION, 'embedding_checkpoint', self._choice('embedding_method', EMBEDDING_METHODS))
        self._demo: EmbeddedDemo = self._demo_from_bag()
        self._imitation = ImitationReward(self._demo.trajectory, **self._imitation_settings)
        self._imitation_clock = self._new_clock()
        self._subscribe_input(topics.in_namespace(topics.EMBEDDINGS), self._on_embeddings)

    def _demo_from_bag(self) -> EmbeddedDemo:
        demo = embed_demo(self._demo_bag, self._demo_episode, self._models[IMITATION], self._demo_cameras,
                          clip_frame_period_s=self._param('clip_frame_period_s'))
        self.get_logger().info(f'demo: episode {self._demo_episode} of {self._demo_bag}, {len(demo.trajectory)} '
                               f'frames embedded by {demo.model_id}')
        return demo

    def _embed_demo(self) -> None:
        """Embed the demo again after the imitation checkpoint changed; keep the old demo if that fails, so that
        embeddings from the new weights are reported as mismatched rather than scored against the old ones."""
        try:
            self._demo = self._demo_from_bag()
        except (ValueError, OSError) as error:
            self._problems.report('demo', f'{error}; the demo stays embedded by {self._demo.model_id}')
            return
        # The match starts over at the demo's first frame: nearest_neighbour alignment loses its place mid-episode.
        self._imitation = ImitationReward(self._demo.trajectory, **self._imitation_settings)

    def _on_embeddings(self, message: Image) -> None:
        rows = len(self._demo_cameras) + 1
        try:
            stamp_ns = stamp_to_ns(message.header.stamp)
            embeddings = float_values(message)
            if embeddings.shape != (rows, self._demo.trajectory.dim):
                raise ImageFormatError(f'shape is {embeddings.shape}, expected ({rows}, {self._demo.trajectory.dim}):'
                                       f' {len(self._demo_cameras)} cameras and their fusion, as the demo')
        except MessageError as error:
            kind = 'bad_embedding' if isinstance(error, ImageFormatError) else error.kind
            self._problems.report(kind, f'{topics.EMBEDDINGS}: {error}; dropped')
            return
        if not self._demo.matches(message.header.frame_id):
            self._problems.report('model_mismatch', f'{topics.EMBEDDINGS} from {message.header.frame_id!r}, but the '
                                                    f'demo is embedded by {self._demo.model_id!r}; dropped')
            return
        episode_time = self._episode_time(self._imitation_clock, topics.EMBEDDINGS, stamp_ns)
        if episode_time is None:
            return
        if episode_time.first:
            self._imitation.reset()
        step = self._imitation.step(embeddings[-1], self._demo.demo_time(episode_time.seconds))
        self._publish(IMITATION, stamp_ns, step.reward, math.sqrt(step.squared_distance), self._demo.model_id)

    # --- latent goal --------------------------------------------------------------------------------------------

    def _start_latent_goal(self, scale: float) -> None:
        self._vae = self._load(LATENT_GOAL, 'vae_checkpoint', self._choice('vae_method', GOAL_METHODS))
        self._latent_goal = LatentGoalReward(scale)
        self._latent_goal_from = 'none'
        self._scene_camera = self._topic_param('latent_goal_camera')
        self._scene_clock = self._new_clock()
        self._first_scene: np.ndarray | None = None
        self._subscribe_input(self._scene_camera, self._on_scene_image)
        self.create_subscription(Image, topics.in_namespace(topics.GOAL_LATENT), self._on_goal_latent, LATCHED_QOS)

    def _on_goal_latent(self, message: Image) -> None:
        try:
            goal = goal_latent(message, self._vae.config.latent_dim)
        except MessageError as error:
            self._problems.report(error.kind, f'{topics.GOAL_LATENT} for {self._vae.model_id}: {error}; the goal '
                                              f'stays {self._latent_goal_from}')
            return
        self._latent_goal.set_goal(goal)
        self._latent_goal_from = (f'{message.header.frame_id or "an unnamed model"} at '
                                  f'{stamp_to_ns(message.header.stamp)} ns')

    def _on_scene_image(self, message: Image) -> None:
        frame = self._image(self._scene_camera, message)
        if frame is None:
            return
        stamp_ns, scene = frame.stamp_ns, frame.rgb
        episode_time = self._episode_time(self._scene_clock, self._scene_camera, stamp_ns)
        if episode_time is None:
            return
        if episode_time.first:
            self._first_scene = np.array(scene)  # a copy: the message's buffer is not ours to keep
        goal = self._latent_goal.goal
        if goal is None:
            self._problems.report('no_latent_goal', f'no goal latent has arrived on {topics.GOAL_LATENT}; nothing '
                                                    f'published on {REWARD_TOPICS[LATENT_GOAL]}')
            return
        model, model_id, images = model_input(self._vae, [scene, self._first_scene])
        latent = model.encode(images[:1], images[1:]) if isinstance(model, CCVAE) else model.encode(images[:1])
        latent = latent[0].cpu().numpy()
        if len(latent) != len(goal):
            self._problems.report('bad_goal', f'the goal has {len(goal)} values, but {model_id} has latent_dim '
                                              f'{len(latent)}; waiting for a goal on {topics.GOAL_LATENT}')
            return
        try:
            reward = self._latent_goal.reward(latent)
        except ValueError as error:  # a diverged checkpoint's NaN latent, say
            self._problems.report('bad_model_output', f'{model_id}: {error}; nothing published')
            return
        self._publish(LATENT_GOAL, stamp_ns, reward, -reward / self._latent_goal.scale, model_id)

    # --- grasp2vec ----------------------------------------------------------------------------------------------

    def _start_grasp2vec(self, scale: float) -> None:
        self._grasp2vec = self._load(GRASP2VEC, 'grasp2vec_checkpoint', GRASP2VEC)
        self._grasp2vec_reward = Grasp2VecReward(scale, normalize=self._param('grasp2vec_normalize'))
        goal_file = self._param('grasp2vec_goal_image')
        self._goal_object = read_rgb_file(goal_file) if goal_file else None
        self._grasp2vec_goal_from = goal_file or 'none'
        self._object_camera = self._topic_param('object_camera_topic')
        buffer_ns = round(self._positive('object_image_buffer_s') * NS_PER_S)
        buffer_bytes = round(self._positive('frame_buffer_max_mb') * BYTES_PER_MB)
        self._object_images: StampedFrames[np.ndarray] = StampedFrames(buffer_ns, buffer_bytes)
        self._pending_grasps: deque[int] = deque()
        self._subscribe_input(self._object_camera, self._on_object_image)
        self.create_subscription(String, topics.in_namespace(topics.GRASP_EVENTS), self._on_grasp_event, RELIABLE_QOS)
        self.create_subscription(Image, topics.in_namespace(topics.GOAL_OBJECT_IMAGE), self._on_goal_object_image,
                                 LATCHED_QOS)

    def _on_goal_object_image(self, message: Image) -> None:
        goal = self._image(topics.GOAL_OBJECT_IMAGE, message)
        if goal is not None:
            self._goal_object = np.array(goal.rgb)
            self._grasp2vec_goal_from = f'{topics.GOAL_OBJECT_IMAGE} at {goal.stamp_ns} ns'

    def _on_object_image(self, message: Image) -> None:
        image = self._image(self._object_camera, message)
        if image is not None:
            self._object_images.add(image.stamp_ns, np.array(image.rgb))
            self._score_grasps()

    def _on_grasp_event(self, message: String) -> None:
        try:
            object_ns = decode_grasp_event(message.data).o_ns
        except EventError as error:
            self._problems.report('bad_event', f'{topics.GRASP_EVENTS}: {error}; ignored')
            return
        if object_ns is None:
            self._problems.counts['grasp_without_object'] += 1  # nothing to score, and nothing wrong
            return
        if len(self._pending_grasps) == MAX_PENDING_GRASPS:
            self._problems.report('missing_object_image', f'{MAX_PENDING_GRASPS} grasps wait for their image on '
                                                          f'{self._object_camera}; the oldest, o at '
                                                          f'{self._pending_grasps.popleft()} ns, is not scored')
        self._pending_grasps.append(object_ns)
        self._score_grasps()

    def _score_grasps(self) -> None:
        """Score every waiting grasp whose object image is here; give up on those whose image was passed by."""
        held = self._object_images.stamp_range()
        waiting: deque[int] = deque()
        for object_ns in self._pending_grasps:
            image = self._object_images.get(object_ns)
            if image is not None:
                self._score_grasp(object_ns, image)
            elif held is not None and held[1] > object_ns:  # images arrive in stamp order: this one never will
                self._problems.report('missing_object_image', f'no {self._object_camera} image stamped {object_ns} '
                                                              f'ns, the o of a grasp event, was received; the grasp '
                                                              f'is not scored')
            else:
                waiting.append(object_ns)
        self._pending_grasps = waiting

    def _score_grasp(self, object_ns: int, image: np.ndarray) -> None:
        if self._goal_object is None:
            self._problems.report('no_grasp2vec_goal', f'no goal object image on {topics.GOAL_OBJECT_IMAGE} (nor a '
                                                       f'grasp2vec_goal_image file); the grasp with o at {object_ns} '
                                                       f'ns is not scored')
            return
        model, model_id, images = model_input(self._grasp2vec, [self._goal_object, image])
        goal, grasped = model.object_embedding(images).cpu().numpy()
        try:
            self._grasp2vec_reward.set_goal(goal)
            reward = self._grasp2vec_reward.reward(grasped)
        except ValueError as error:  # a diverged checkpoint's NaN embedding, say
            self._problems.report('bad_model_output', f'{model_id}: {error}; the grasp with o at {object_ns} ns is '
                                                      f'not scored')
            return
        self._publish(GRASP2VEC, object_ns, reward, reward / self._grasp2vec_reward.scale, model_id)


def main(args=None) -> int:
    return spin_node(RewardNode, 'reward_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
