"""embedding_node: live TCN / mfTCN embeddings of K synchronized cameras.

Subscribes to K camera image topics, groups their frames into synchronized sets (ssl_robot.sync, message_filters
semantics), embeds each set with a trained checkpoint (ssl_robot.inference.embedder) and publishes the result on
/embeddings, stamped with the set's stamp.

Output message: sensor_msgs/Image, encoding 32FC1, height K + 1, width D (the embedding size). Row k is the
unit-norm embedding of camera_topics[k]; the last row fuses the views (their mean, re-normalised). header.stamp is
the set's stamp, so an embedding is matched to the frames it came from; header.frame_id is the model id
('<method>:<checkpoint file>:step<step>:<sha256 prefix>'), which changes whenever the weights do. Image is used
because it is a standard interface that carries both a header and a 2-D float array: std_msgs/Float32MultiArray
has no header, and this single ament_python package cannot define a message of its own.

The imitation demonstration is embedded here too, by the same model (ssl_robot.inference.demo_embedding): with demo_bag
set, episode demo_episode of that bag, from demo_camera_topics (the bag's names of the cameras, in camera_topics order),
at start and again whenever the checkpoint changes. It is published latched (reliable, transient local) on
/embeddings/demo: sensor_msgs/Image 32FC1, T rows x (1 + D), per demo frame the seconds since the start of the demo's
episode and the fused embedding (demo_trajectory.EmbeddedDemo.to_rows), stamped with the demo's first frame, the model
id as frame_id. The reward node scores /embeddings against it without a model of its own. A demo that cannot be
embedded when the node starts with its checkpoint loaded stops the node with one line (a configuration error); after a
checkpoint change, the demo embedded before stays published and the failure is reported.

The model is held as every model node holds one (inference.model_holder.ModelLoader): a checkpoint that is missing,
unloadable or of another method is reported ('checkpoint') and the node keeps running, embedding nothing (camera sets
counted as 'no_model') until the file loads; a changed checkpoint file is loaded without a restart.

Bad input never stops the node. An image with an unusable layout (wrong encoding, size or step, empty data, NaN
in a float image) or an unusable stamp (negative sec, nanosec >= 1e9: bad_stamp), a stamp older than the camera's
previous one, a camera falling silent, time jumping back (the synchronizer flushes its queues: clock_jump), or a
checkpoint file that changed into something unloadable is dropped or ignored, logged with a warning rate-limited per
kind, and reported on /diagnostics (status 'ssl_robot/embedding'). A changed checkpoint file is loaded without a
restart. Diagnostics and checkpoint checks run on the wall clock, so they go on when /clock stops; a camera is silent
when no frame of it has arrived for silent_camera_timeout_s of wall time, whatever the other cameras' stamps say.
Diagnostics values received_<topic> and receive_hz_<topic> (frames received per camera) beside published_hz (sets
embedded per second) show input lost to overload.
"""

from __future__ import annotations

import functools

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from ssl_robot import topics
from ssl_robot.inference.demo_embedding import embed_demo
from ssl_robot.health.input_monitor import InputMonitor
from ssl_robot.inference.embedder import MultiViewEmbedder
from ssl_robot.inference.model_holder import ModelLoader, set_torch_threads
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.ros.convert import MessageError, array_to_image, ns_to_stamp
from ssl_robot.ros.decoders import rgb_frame
from ssl_robot.ros.diagnostics import diagnostic_array, wall_timer
from ssl_robot.ros.node_main import spin_node
from ssl_robot.params.embedding import EmbeddingParams
from ssl_robot.ros.parameters import declare_params, expand_topics
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ssl_robot.sync import ApproximateTimeSynchronizer, SyncedSet

DIAGNOSTIC_NAME = 'ssl_robot/embedding'
WARN_PERIOD_S = 1.0
DIAGNOSTICS_PERIOD_S = 1.0
NS_PER_MS = 1_000_000


class EmbeddingNode(Node):

    def __init__(self) -> None:
        super().__init__('embedding')
        self.params = params = declare_params(self, EmbeddingParams, read_only=True)
        set_torch_threads(params.torch_threads)
        self._camera_topics = list(expand_topics(self, params.camera_topics))
        self._sync = ApproximateTimeSynchronizer(
            self._camera_topics, queue_size=params.sync_queue_size,
            max_interval_ns=round(params.sync_max_interval_ms * NS_PER_MS))
        self._silent_timeout_s = params.silent_camera_timeout_s
        self._model = ModelLoader(params.embedding_checkpoint, params.embedding_method)
        self._embedder: MultiViewEmbedder | None = None  # made from the first model that loads

        self._last_stamp_ns: dict[str, int] = {}
        self._inputs = InputMonitor(self._camera_topics)
        self._problems = ProblemLog(self.get_logger().warning, WARN_PERIOD_S)
        self._published = 0

        self._publisher = self.create_publisher(Image, topics.in_namespace(topics.EMBEDDINGS), SENSOR_QOS)
        self._demo_publisher = self.create_publisher(Image, topics.in_namespace(topics.DEMO_EMBEDDINGS), LATCHED_QOS)
        self._demo_cameras = [self.resolve_topic_name(topic) for topic in params.demo_camera_topics]
        self._refresh_model(at_start=True)
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        for topic in self._camera_topics:
            self.create_subscription(Image, topic, functools.partial(self._on_image, topic), SENSOR_QOS)
        wall_timer(self, params.reload_check_period_s, self._refresh_model)
        wall_timer(self, DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(f'embedding {len(self._camera_topics)} cameras {self._camera_topics} with '
                               f'{self._model.model_id} on {self._model.device}')

    def _on_image(self, topic: str, message: Image) -> None:
        self._inputs.arrived(topic)
        try:
            stamp_ns, rgb, _ = rgb_frame(message)
        except MessageError as error:
            self._problems.report(error.kind, f'{topic}: {error}; dropped')
            return
        previous_ns = self._last_stamp_ns.get(topic)
        # A jump back further than the synchronizer's clock_jump_ns is a new timeline (a simulator reset, a looping
        # bag), on which the synchronizer and the mfTCN frame buffers start over; a smaller one is a stale frame.
        if previous_ns is not None and 0 < previous_ns - stamp_ns <= self._sync.clock_jump_ns:
            self._problems.report('stamp_backwards', f'{topic}: stamp {stamp_ns} ns is older than the previous frame '
                                            f'{previous_ns} ns; dropped')
            return
        self._last_stamp_ns[topic] = stamp_ns
        for synced in self._sync.add(topic, stamp_ns, rgb):
            self._publish(synced)

    def _publish(self, synced: SyncedSet) -> None:
        if self._embedder is None:
            self._problems.report('no_model',
                                  f'{self._model.require_error()}; set at {synced.stamp_ns} ns not embedded')
            return
        embeddings = self._embedder.embed(synced.stamp_ns, [synced.items[topic] for topic in self._camera_topics])
        if embeddings is None:
            return
        self._publisher.publish(array_to_image(embeddings.vectors, '32FC1', ns_to_stamp(synced.stamp_ns),
                                               embeddings.model_id))
        self._published += 1

    def _publish_demo(self) -> None:
        demo = embed_demo(self.params.demo_bag, self.params.demo_episode, self._model.require(), self._demo_cameras,
                          clip_frame_period_s=self.params.clip_frame_period_s)
        first_ns = int(demo.trajectory.stamps_ns[0])
        self._demo_publisher.publish(array_to_image(demo.to_rows(), '32FC1', ns_to_stamp(first_ns), demo.model_id))
        self.get_logger().info(f'demo: episode {self.params.demo_episode} of {self.params.demo_bag}, '
                               f'{len(demo.trajectory)} frames embedded by {demo.model_id}, latched on '
                               f'{topics.DEMO_EMBEDDINGS}')

    def _refresh_model(self, at_start: bool = False) -> None:
        previous = self._model.model_id
        if not self._model.refresh_reporting(self._problems, self.get_logger().info):
            return
        if self._embedder is None:
            self._embedder = MultiViewEmbedder(self._model.require(), len(self._camera_topics),
                                               self.params.clip_frame_period_s)
        if self.params.demo_bag:
            try:
                self._publish_demo()
            except (ValueError, OSError) as error:
                if at_start:
                    raise  # stops the node with one line: the demo it was started with cannot be embedded
                # The reward node then drops embeddings of the new weights as mismatched, rather than score them
                # against a demo the old weights embedded.
                self._problems.report('demo', f'{error}; the demo embedded by {previous} stays published')

    def _check_silent_cameras(self) -> None:
        silent = self._inputs.silent(self._silent_timeout_s)
        if silent:
            waited = ', '.join(f'{topic} for {seconds:.0f} s' for topic, seconds in silent.items())
            self._problems.report('silent_camera', f'no frame from {waited} (wall time); no embeddings without them')

    def _publish_diagnostics(self) -> None:
        self._check_silent_cameras()
        for drop in self._sync.drain_drops():
            # Counted, not warned: the synchronizer drops frames in normal operation too.
            self._problems.counts[f'sync_{drop.reason}'] += 1
        for jump in self._sync.drain_clock_jumps():
            self._problems.report('clock_jump', f'{jump.name}: stamps jumped back from {jump.from_ns} to {jump.to_ns} '
                                                f'ns; the synchronizer started over and flushed {jump.flushed} frames')
        values = {'model_id': self._model.model_id, 'cameras': ','.join(self._camera_topics),
                  'published': str(self._published), **self._inputs.rate_values({'published': self._published}),
                  **self._problems.count_values()}
        self._diagnostics.publish(diagnostic_array(DIAGNOSTIC_NAME, self._model.device.type,
                                                   self._problems.take_recent(), values,
                                                   ns_to_stamp(self.get_clock().now().nanoseconds)))


def main(args=None) -> int:
    return spin_node(EmbeddingNode, 'embedding_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
