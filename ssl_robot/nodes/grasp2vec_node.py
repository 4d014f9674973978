"""grasp2vec_node: Grasp2Vec embeddings of every grasp attempt, and where the grasped object was in the scene.

Keeps the recent frames of the object camera and of one scene camera, looked up by stamp. On each /sim/grasp_events
message it takes the scene before the grasp (s_pre) and, for a successful grasp, the object shown to the object
camera (o), and publishes (ssl_robot.inference.grasp2vec.embed_grasp):

- /grasp2vec/scene_embedding: phi_s(s_pre), stamped with s_pre's stamp;
- /grasp2vec/object_embedding: phi_o(o), stamped with o's stamp (successful grasps only);
- /grasp2vec/heatmap: phi_o(o) . phi_s,spatial(s_pre), colour-mapped (blue low, red high) and blended over s_pre at
  s_pre's size, rgb8, stamped with s_pre's stamp and in s_pre's frame_id, for RViz or Foxglove (successful grasps
  only).

The embeddings are sensor_msgs/Image 32FC1, 1 x D, with the model id as frame_id (as /embeddings of embedding_node:
a header and a 2-D float array in a standard message).

The goal object of the Grasp2Vec reward comes from grasps too (posthoc labelling: an object the robot grasped is a
goal it has achieved): a /goal/object_from_grasp request (std_srvs/Trigger) makes the object image o of the latest
successful grasp the goal object, and with goal_from_first_grasp (default on) the first successful grasp of the
node's life does so by itself, so a graph brought up with the defaults has a goal object once it grasped something.
It is published on /goal/object_image (rgb8 as the object camera sent it, stamped with o's stamp, in its frame_id),
latched (reliable, transient local). A goal_object_file, if given, is the goal object from the start instead (then
no grasp makes itself the goal; a request still does), stamped with the node's clock at start.

This node holds the Grasp2Vec model, so it also embeds the goal object for the reward node: whatever arrives on
/goal/object_image (its own or another node's) is embedded and latched on /goal/object_embedding (32FC1, 1 x D,
phi_o(g), the goal image's stamp, the model id as frame_id), and embedded again whenever the checkpoint changes. The
reward node scores r = phi_o(g) . phi_o(o) from that and /grasp2vec/object_embedding, checking that both come from
the same weights.

A /grasp/request (std_srvs/Trigger) grasps the goal object: the learned instance-grasping policy (grasp_policy,
ssl-robot rl grasp-train) looks at the newest scene_camera frame and the latest /goal/object_image, and the grasp
place it chooses goes out on /sim/grasp_at (geometry_msgs/PointStamped, frame 'world', on the plane the policy aims
at, stamped with that scene frame's stamp), where the sim node grasps. The answer says where and how likely the
policy thinks the goal object is grasped there (its Q). The arm should be out of the scene camera's view, as in
training. A policy that cannot be loaded, or a frame that is not of the policy's size, refuses the request with the
reason; the node goes on.

Bad input never stops the node. An unusable image or stamp, an event that is not a well-formed grasp event
(ssl_robot.events), an event whose frames are no longer (or never were) in the buffers, and a checkpoint that is
missing or unloadable are dropped or ignored, warned about (rate-limited per kind) and reported on /diagnostics
(status 'ssl_robot/grasp2vec'), which runs on the wall clock so it goes on when /clock stops. Each camera's frames are
kept frame_buffer_s of stamp time but at most frame_buffer_max_mb, oldest evicted first. Without a loadable
checkpoint the node keeps running and loads it as soon as it can; a changed checkpoint file is loaded without a
restart.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ssl_robot import topics
from ssl_robot.events import EventError, decode_grasp_event
from ssl_robot.inference.frame_buffer import BYTES_PER_MB, StampedFrames
from ssl_robot.inference.grasp2vec import embed_grasp, embed_object
from ssl_robot.inference.model_holder import ModelLoader, ModelUnavailable, set_torch_threads
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.models.checkpoint import CheckpointError
from ssl_robot.rl.grasp_policy import LearnedGraspPolicy, load_grasp_policy
from ssl_robot.rl.instance_grasping import GRASP_PLANE_HEIGHT_M, GraspView
from ssl_robot.ros.convert import MessageError, array_to_image, ns_to_stamp
from ssl_robot.ros.decoders import rgb_frame
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.grasp2vec import Grasp2VecParams
from ssl_robot.ros.parameters import declare_params, expand_topics
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.ros.services import answer_trigger

DIAGNOSTIC_NAME = 'ssl_robot/grasp2vec'
DIAGNOSTICS_PERIOD_S = 1.0
NS_PER_S = 1_000_000_000


class Frame(NamedTuple):
    rgb: np.ndarray
    """(H, W, 3) uint8 RGB pixels."""
    frame_id: str


class StampedImage(NamedTuple):
    stamp_ns: int
    rgb: np.ndarray


def read_rgb_file(path: str) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'parameter goal_object_file: cannot read an image from {path!r}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class GraspedObject(NamedTuple):
    attempt: int
    o_ns: int
    image: Frame


class Grasp2VecNode(Node):

    def __init__(self) -> None:
        super().__init__('grasp2vec')
        self.params = params = declare_params(self, Grasp2VecParams, read_only=True)
        set_torch_threads(params.torch_threads)
        self._scene_camera = expand_topics(self, params.scene_camera)
        self._object_camera = expand_topics(self, params.object_camera)
        buffer_ns = round(params.frame_buffer_s * NS_PER_S)
        buffer_bytes = round(params.frame_buffer_max_mb * BYTES_PER_MB)
        self._frames = {self._scene_camera: StampedFrames[Frame](buffer_ns, buffer_bytes),
                        self._object_camera: StampedFrames[Frame](buffer_ns, buffer_bytes)}
        self._problems = ProblemLog(self.get_logger().warning)
        self._model = ModelLoader(params.grasp2vec_checkpoint, 'grasp2vec')
        self._grasps = 0
        self._latest_grasped: GraspedObject | None = None
        self._goal_object: GraspedObject | None = None
        self._goal_image: StampedImage | None = None  # the latest on /goal/object_image, from any node
        self._goal_embedded_by = 'none'
        self._grasp_policy: LearnedGraspPolicy | None = None
        self._grasps_requested = 0

        self._scene_publisher = self.create_publisher(
            Image, topics.in_namespace(topics.GRASP2VEC_SCENE_EMBEDDING), RELIABLE_QOS)
        self._object_publisher = self.create_publisher(
            Image, topics.in_namespace(topics.GRASP2VEC_OBJECT_EMBEDDING), RELIABLE_QOS)
        self._heatmap_publisher = self.create_publisher(
            Image, topics.in_namespace(topics.GRASP2VEC_HEATMAP), RELIABLE_QOS)
        self._goal_object_publisher = self.create_publisher(
            Image, topics.in_namespace(topics.GOAL_OBJECT_IMAGE), LATCHED_QOS)
        self._goal_embedding_publisher = self.create_publisher(
            Image, topics.in_namespace(topics.GOAL_OBJECT_EMBEDDING), LATCHED_QOS)
        self._grasp_at_publisher = self.create_publisher(
            PointStamped, topics.in_namespace(topics.GRASP_AT), RELIABLE_QOS)
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        for topic in self._frames:
            self.create_subscription(Image, topic, functools.partial(self._on_image, topic), SENSOR_QOS)
        self.create_subscription(String, topics.in_namespace(topics.GRASP_EVENTS), self._on_grasp_event, RELIABLE_QOS)
        self.create_subscription(Image, topics.in_namespace(topics.GOAL_OBJECT_IMAGE), self._on_goal_object_image,
                                 LATCHED_QOS)
        self.create_service(Trigger, topics.in_namespace(topics.GOAL_OBJECT_FROM_GRASP_SERVICE),
                            self._on_object_from_grasp)
        self.create_service(Trigger, topics.in_namespace(topics.GRASP_REQUEST_SERVICE), self._on_grasp_request)
        self._reload()
        wall_timer(self, self.params.reload_check_period_s, self._reload)
        if self.params.goal_object_file:
            self._goal_object_publisher.publish(array_to_image(read_rgb_file(self.params.goal_object_file), 'rgb8',
                                                               self.get_clock().now().to_msg(), 'goal_object_file'))
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        first = 'the first successful grasp\'s object, then ' if self.params.goal_from_first_grasp else ''
        self.get_logger().info(f'grasp2vec on s_pre from {self._scene_camera} and o from {self._object_camera} '
                               f'with {self._model.model_id}; goal object: {first}the latest grasped object on '
                               f'{topics.GOAL_OBJECT_FROM_GRASP_SERVICE}')

    def _on_image(self, topic: str, message: Image) -> None:
        try:
            stamp_ns, rgb, frame_id = rgb_frame(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{topic}: {error}; dropped')
            return
        self._frames[topic].add(stamp_ns, Frame(rgb, frame_id))

    def _missing_frame(self, role: str, topic: str, stamp_ns: int) -> str:
        held = self._frames[topic].stamp_range()
        return (f'no {topic} frame stamped {stamp_ns} ns for {role} (holding '
                f'{"none" if held is None else f"{held[0]} to {held[1]} ns"})')

    def _on_grasp_event(self, message: String) -> None:
        try:
            event = decode_grasp_event(message.data)
        except EventError as error:
            self._problems.report('bad_event', f'{error} in {message.data[:120]!r}; dropped')
            return
        s_pre_ns, o_ns, attempt = event.s_pre_ns, event.o_ns, event.attempt
        wanted = {'s_pre': (self._scene_camera, s_pre_ns)}
        if o_ns is not None:
            wanted['o'] = (self._object_camera, o_ns)
        frames = {role: self._frames[topic].get(stamp_ns) for role, (topic, stamp_ns) in wanted.items()}
        scene, grasped = frames['s_pre'], frames.get('o')
        if grasped is not None:  # the goal object needs no model: it is an image
            self._latest_grasped = GraspedObject(attempt, o_ns, grasped)
            if self.params.goal_from_first_grasp and self._goal_object is None and not self.params.goal_object_file:
                self.get_logger().info(f'{self._object_as_goal()} (goal_from_first_grasp)')
        missing = [self._missing_frame(role, *wanted[role]) for role, frame in frames.items() if frame is None]
        if missing:
            self._problems.report('missing_frame', f'{"; ".join(missing)}; grasp event dropped')
            return
        try:
            loaded = self._model.require()
        except ModelUnavailable as error:
            self._problems.report('no_model', f'{error}; grasp event dropped')
            return
        embeddings = embed_grasp(loaded, scene.rgb, None if grasped is None else grasped.rgb,
                                 self.params.heatmap_opacity)
        s_pre_stamp = ns_to_stamp(s_pre_ns)
        self._scene_publisher.publish(array_to_image(embeddings.scene, '32FC1', s_pre_stamp, embeddings.model_id))
        if o_ns is not None:
            self._object_publisher.publish(array_to_image(embeddings.grasped_object, '32FC1', ns_to_stamp(o_ns),
                                                          embeddings.model_id))
            self._heatmap_publisher.publish(array_to_image(embeddings.heatmap, 'rgb8', s_pre_stamp, scene.frame_id))
        self._grasps += 1

    def _object_as_goal(self) -> str:
        """Publish the object of the latest successful grasp as the goal object; a line saying which. LookupError
        when no successful grasp has brought an object image yet."""
        grasped = self._latest_grasped
        if grasped is None:
            raise LookupError(f'no successful grasp with its object image from {self._object_camera} yet: the goal '
                              f'object is the object of one')
        self._goal_object_publisher.publish(array_to_image(grasped.image.rgb, 'rgb8', ns_to_stamp(grasped.o_ns),
                                                           grasped.image.frame_id))
        self._goal_object = grasped
        return f'goal object: the object of grasp attempt {grasped.attempt}, o stamped {grasped.o_ns} ns'

    def _reload(self) -> None:
        previous = self._model.model_id
        self._model.refresh_reporting(self._problems, self.get_logger().info)
        if self._model.model_id != previous:
            self._publish_goal_embedding()  # the goal must be in the space of the weights that embed grasped objects

    def _on_goal_object_image(self, message: Image) -> None:
        try:
            stamp_ns, rgb, _ = rgb_frame(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{topics.GOAL_OBJECT_IMAGE}: {error}; the goal object stays as it was')
            return
        self._goal_image = StampedImage(stamp_ns, np.array(rgb))  # a copy: the message's buffer is not ours to keep
        self._publish_goal_embedding()

    def _publish_goal_embedding(self) -> None:
        if self._goal_image is None or self._model.loaded is None:
            return  # embedded once both are here: the goal image arrives, or the model loads
        embedding, model_id = embed_object(self._model.loaded, self._goal_image.rgb)
        if not np.isfinite(embedding).all():  # a diverged checkpoint
            self._problems.report('bad_model_output', f'{model_id}: a non-finite goal object embedding; not published')
            return
        stamp = ns_to_stamp(self._goal_image.stamp_ns)
        self._goal_embedding_publisher.publish(array_to_image(embedding, '32FC1', stamp, model_id))
        self._goal_embedded_by = model_id

    def _on_object_from_grasp(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return answer_trigger(response, self._object_as_goal, (LookupError,))

    def _policy(self) -> LearnedGraspPolicy:
        """The grasp policy, loaded at the first request (and again after a failed load); LookupError if it cannot
        be."""
        if self._grasp_policy is None:
            params = self.params
            try:
                # The policy loads a Grasp2Vec of its own, not self._model's: that one is swapped in place when its
                # file changes, and the policy must keep the Grasp2Vec it was trained with.
                self._grasp_policy = load_grasp_policy(params.grasp_policy or None,
                                                       params.grasp2vec_checkpoint or None, device=self._model.device)
            except (CheckpointError, FileNotFoundError, ValueError) as error:
                self._problems.report('grasp_policy', f'{error}')
                raise LookupError(f'no grasp policy: {error}') from None
            self.get_logger().info(f'grasp policy {self._grasp_policy.path} loaded')
        return self._grasp_policy

    def _grasp_goal_object(self) -> str:
        """Publish where the policy grasps the goal object in the newest scene frame; a line saying so. LookupError
        naming what is missing."""
        if self._goal_image is None:
            raise LookupError(f'no goal object yet on {topics.GOAL_OBJECT_IMAGE}')
        held = self._frames[self._scene_camera].stamp_range()
        if held is None:
            raise LookupError(f'no {self._scene_camera} frame yet')
        scene = self._frames[self._scene_camera].get(held[1])
        policy = self._policy()
        camera = policy.camera()
        if scene.rgb.shape[:2] != (camera.height, camera.width):
            raise LookupError(f'{self._scene_camera} frames are {scene.rgb.shape[1]}x{scene.rgb.shape[0]}, the grasp '
                              f'policy was trained on {camera.width}x{camera.height}')
        view = GraspView(scene.rgb, self._goal_image.rgb, camera, policy.tray_floor_z)
        (x, y), q = policy.choose(view)
        message = PointStamped()
        message.header.stamp = ns_to_stamp(held[1])
        message.header.frame_id = topics.WORLD_FRAME
        message.point.x, message.point.y, message.point.z = x, y, policy.tray_floor_z + GRASP_PLANE_HEIGHT_M
        self._grasp_at_publisher.publish(message)
        self._grasps_requested += 1
        return (f'grasp at ({x:.3f}, {y:.3f}) m for the goal object stamped {self._goal_image.stamp_ns} ns, from the '
                f'scene stamped {held[1]} ns; Q {q:.2f}')

    def _on_grasp_request(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return answer_trigger(response, self._grasp_goal_object, (LookupError,))

    def _publish_diagnostics(self) -> None:
        problems = self._problems.take_recent()
        goal = self._goal_object
        values = {'model_id': self._model.model_id, 'scene_camera': self._scene_camera,
                  'object_camera': self._object_camera, 'grasps_embedded': str(self._grasps),
                  'goal_object_o_ns': 'none' if goal is None else str(goal.o_ns),
                  'goal_object_embedded_by': self._goal_embedded_by, 'grasps_requested': str(self._grasps_requested),
                  **self._problems.count_values()}
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, self._model.device.type, problems, values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))


def main(args=None) -> int:
    return spin_node(Grasp2VecNode, 'grasp2vec_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
