"""Integration: the Grasp2Vec node runs as its own process; this test process publishes scene and object camera
frames and grasp events that refer to them by stamp, and checks the embeddings and heatmaps it gets back.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.inference.grasp2vec import embed_grasp, embed_object
from ssl_robot.inference.model_holder import LoadedModel
from ssl_robot.models.grasp_q import GraspQConfig, GraspQNetwork
from ssl_robot.nodes.grasp2vec_node import DIAGNOSTIC_NAME
from ssl_robot.params.grasp2vec import DEFAULT_SCENE_CAMERA
from ssl_robot.rl.grasp_collection import cell_centre_pixel, view_of
from ssl_robot.rl.grasp_policy import save_grasp_policy
from ssl_robot.rl.instance_grasping import GRASP_PLANE_HEIGHT_M
from ssl_robot.sim.cameras import pixel_on_plane
from ssl_robot.sim.config import CameraSpec
from ssl_robot.topics import GRASP2VEC_HEATMAP, GRASP2VEC_OBJECT_EMBEDDING, GRASP2VEC_SCENE_EMBEDDING
from ssl_robot.ros.convert import array_to_image, as_rgb, image_to_array, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from test_goals import TINY_GRASP2VEC
from test_inference import camera_frames, write_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = 'ssl_robot.nodes.grasp2vec_node'
OBJECT_CAMERA = topics.camera_image(topics.OBJECT_CAMERA)
SCENE_FRAME_ID = 'front_left_optical_frame'
ATTEMPT_PERIOD_NS = 1_000_000_000
OPACITY = 0.6
TIMEOUT_S = 90.0


class GraspRig:
    """Publishes camera frames and grasp events from the probe and records what the node sends back, by stamp."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.cameras = {topic: probe.node.create_publisher(Image, topic, SENSOR_QOS)
                        for topic in (DEFAULT_SCENE_CAMERA, OBJECT_CAMERA)}
        self.events = probe.node.create_publisher(String, topics.GRASP_EVENTS, RELIABLE_QOS)
        self.stamps = itertools.count(100 * 1_000_000_000, ATTEMPT_PERIOD_NS)
        self.frames: dict[int, np.ndarray] = {}
        self.received: dict[str, dict[int, tuple[str, np.ndarray, str]]] = {}
        for topic in (GRASP2VEC_SCENE_EMBEDDING, GRASP2VEC_OBJECT_EMBEDDING, GRASP2VEC_HEATMAP):
            self.received[topic] = {}
            probe.node.create_subscription(Image, topic, lambda message, topic=topic: self._keep(topic, message),
                                           RELIABLE_QOS)
        self.diagnostics: list[str] = []
        probe.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)

    def _keep(self, topic: str, message: Image) -> None:
        with self.probe.lock:
            self.received[topic][stamp_to_ns(message.header.stamp)] = (
                message.header.frame_id, np.array(image_to_array(message)), message.encoding)

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        with self.probe.lock:
            self.diagnostics += [status.message for status in message.status if status.name == DIAGNOSTIC_NAME]

    def publish_frame(self, topic: str, stamp_ns: int) -> None:
        self.frames[stamp_ns] = camera_frames(stamp_ns % 10_007, views=1, shape=(24, 32))[0]
        frame_id = SCENE_FRAME_ID if topic == DEFAULT_SCENE_CAMERA else 'object_camera_optical_frame'
        self.cameras[topic].publish(array_to_image(self.frames[stamp_ns], 'rgb8', ns_to_stamp(stamp_ns), frame_id))

    def attempt(self, success: bool) -> tuple[int, int | None]:
        """Frames of s_pre (and o, for a success), then the grasp event naming them; their stamps."""
        s_pre_ns = next(self.stamps)
        o_ns = s_pre_ns + ATTEMPT_PERIOD_NS // 2 if success else None
        self.publish_frame(DEFAULT_SCENE_CAMERA, s_pre_ns)
        if o_ns is not None:
            self.publish_frame(OBJECT_CAMERA, o_ns)
        time.sleep(0.1)  # the event follows its frames, as the sim's does by seconds
        self.publish_event(s_pre_ns, o_ns)
        return s_pre_ns, o_ns

    def publish_event(self, s_pre_ns: int, o_ns: int | None) -> None:
        self.events.publish(String(data=topics.encode_event(
            'grasp', s_pre_ns + ATTEMPT_PERIOD_NS - 1, attempt=0, success=o_ns is not None, reason='test',
            object={'index': 0, 'name': 'cube'}, target_xy=[0.6, 0.0], s_pre=topics.stamp_dict(s_pre_ns),
            o=None if o_ns is None else topics.stamp_dict(o_ns), s_post=topics.stamp_dict(s_pre_ns + 1))))

    def repeat_until(self, condition: Callable[[], bool], what: str, node, publish: Callable[[], object]) -> None:
        """publish() every 100 ms until condition() holds; fail naming `what` after TIMEOUT_S or if the node dies.
        Repeating survives best-effort frame losses (the event of a lost frame is dropped by the node)."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert node.poll() is None, f'the grasp2vec node died:\n{"".join(node.output)[-3000:]}'
            publish()
            time.sleep(0.1)
            with self.probe.lock:
                if condition():
                    return
        raise AssertionError(f'timed out after {TIMEOUT_S:.0f} s waiting for {what}; diagnostics: '
                             f'{self.diagnostics[-3:]}; node output:\n{"".join(node.output)[-3000:]}')

    def diagnosed(self, *words: str) -> bool:
        return any(all(word in message for word in words) for message in self.diagnostics)


def test_embeds_each_grasp_with_its_heatmap_and_stamps_and_drops_bad_events(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    model = LoadedModel(checkpoint, 'grasp2vec', device='cpu')
    rig = GraspRig(probe)
    attempts: list[tuple[int, int | None]] = []

    def embedded(success: bool) -> list[tuple[int, int | None]]:
        """The attempts of this outcome whose every output has come back."""
        received = rig.received
        return [(s_pre, o) for s_pre, o in attempts
                if s_pre in received[GRASP2VEC_SCENE_EMBEDDING] and (o is not None) == success
                and (o is None or (o in received[GRASP2VEC_OBJECT_EMBEDDING] and s_pre in received[GRASP2VEC_HEATMAP]))]

    params = {'grasp2vec_checkpoint': checkpoint, 'heatmap_opacity': OPACITY, 'reload_check_period_s': 0.5}
    with node_process(NODE, 'grasp2vec', params) as node:
        rig.repeat_until(lambda: embedded(True), 'the embeddings and heatmap of a successful grasp', node,
                         lambda: attempts.append(rig.attempt(success=True)))
        with probe.lock:
            for s_pre_ns, o_ns in embedded(True):
                want = embed_grasp(model, rig.frames[s_pre_ns], rig.frames[o_ns], OPACITY)
                scene_id, scene, scene_encoding = rig.received[GRASP2VEC_SCENE_EMBEDDING][s_pre_ns]
                object_id, grasped, object_encoding = rig.received[GRASP2VEC_OBJECT_EMBEDDING][o_ns]
                assert scene_id == object_id == model.model_id and scene_encoding == object_encoding == '32FC1'
                assert scene.shape == grasped.shape == (1, TINY_GRASP2VEC['embedding_dim'])
                np.testing.assert_allclose(scene, want.scene, atol=1e-5)
                np.testing.assert_allclose(grasped, want.grasped_object, atol=1e-5)
                heatmap_frame_id, heatmap, heatmap_encoding = rig.received[GRASP2VEC_HEATMAP][s_pre_ns]
                assert heatmap_frame_id == SCENE_FRAME_ID and heatmap_encoding == 'rgb8'
                assert heatmap.shape == (24, 32, 3)
                assert np.abs(heatmap.astype(int) - want.heatmap).max() <= 1

        # A failed grasp (o null): the scene embedding alone. The node handles events in order and reliable topics
        # keep theirs, so once a later success has come back whole, an object embedding or heatmap of the failure
        # would have come back too.
        def failures_before_a_success() -> set[int]:
            successes = embedded(True)
            last_success_ns = max((s_pre for s_pre, _ in successes), default=-1)
            return {s_pre for s_pre, _ in embedded(False) if s_pre < last_success_ns}

        attempts.clear()
        rig.repeat_until(failures_before_a_success, 'a failed grasp embedded, then a successful one', node,
                         lambda: attempts.extend([rig.attempt(success=False), rig.attempt(success=True)]))
        with probe.lock:
            failed = failures_before_a_success()
            assert not failed & set(rig.received[GRASP2VEC_HEATMAP])

        rig.repeat_until(lambda: rig.diagnosed('bad_event', 'not valid JSON'), 'a diagnostics entry on a bad event',
                         node, lambda: rig.events.publish(String(data='{not json')))
        unseen_ns = next(rig.stamps)
        rig.repeat_until(lambda: rig.diagnosed('missing_frame', f'no {DEFAULT_SCENE_CAMERA} frame stamped {unseen_ns}'),
                         'a diagnostics entry on a grasp event whose frames never came', node,
                         lambda: rig.publish_event(unseen_ns, unseen_ns + 1))
        attempts.clear()
        rig.repeat_until(lambda: embedded(True), 'a grasp embedded after the bad events', node,
                         lambda: attempts.append(rig.attempt(success=True)))


class GoalObjects:
    """Subscribes (transient local, so also late) to /goal/object_image; every goal object received, by stamp."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.images: dict[int, tuple[str, np.ndarray]] = {}
        probe.node.create_subscription(Image, topics.GOAL_OBJECT_IMAGE, self._keep, LATCHED_QOS)

    def _keep(self, message: Image) -> None:
        with self.probe.lock:
            rgb = np.array(as_rgb(image_to_array(message), message.encoding))
            self.images[stamp_to_ns(message.header.stamp)] = (message.header.frame_id, rgb)


def test_the_object_of_a_grasp_becomes_the_goal_object_first_by_itself_then_on_request(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    rig = GraspRig(probe)
    client = probe.node.create_client(Trigger, topics.GOAL_OBJECT_FROM_GRASP_SERVICE)
    attempts: list[tuple[int, int | None]] = []

    def embedded_objects() -> list[int]:
        return [o for _, o in attempts if o in rig.received[GRASP2VEC_OBJECT_EMBEDDING]]

    with node_process(NODE, 'grasp2vec', {'grasp2vec_checkpoint': checkpoint}) as node:
        response = probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)
        assert not response.success
        assert response.message == (f'no successful grasp with its object image from {OBJECT_CAMERA} yet: the goal '
                                    f'object is the object of one')
        rig.repeat_until(lambda: embedded_objects(), 'a successful grasp embedded', node,
                         lambda: attempts.append(rig.attempt(success=True)))
        goals = GoalObjects(probe)  # subscribed after the goal object was published: the latched copy must come
        probe.wait_for(lambda: len(goals.images) == 1, TIMEOUT_S, 'the goal object of the first successful grasp')
        with probe.lock:
            [(first_ns, (frame_id, image))] = goals.images.items()
        # The goal needs only o, the embeddings s_pre too: a lost s_pre frame may leave the goal's grasp unembedded.
        assert first_ns in rig.frames and first_ns <= embedded_objects()[0]
        assert frame_id == 'object_camera_optical_frame'
        np.testing.assert_array_equal(image, rig.frames[first_ns])

        # Later grasps leave the goal object alone, until a request makes the latest one's object the goal.
        rig.repeat_until(lambda: len(embedded_objects()) >= 2, 'a second successful grasp embedded', node,
                         lambda: attempts.append(rig.attempt(success=True)))
        response = probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)
        latest_ns = embedded_objects()[-1]
        assert response.success and response.message.endswith(f'o stamped {latest_ns} ns'), response.message
        probe.wait_for(lambda: latest_ns in goals.images, TIMEOUT_S, 'the requested goal object')
        with probe.lock:
            assert sorted(goals.images) == [first_ns, latest_ns]
            np.testing.assert_array_equal(goals.images[latest_ns][1], rig.frames[latest_ns])


def test_without_goal_from_first_grasp_only_a_request_sets_the_goal_object(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    rig = GraspRig(probe)
    goals = GoalObjects(probe)
    client = probe.node.create_client(Trigger, topics.GOAL_OBJECT_FROM_GRASP_SERVICE)
    attempts: list[tuple[int, int | None]] = []
    with node_process(NODE, 'grasp2vec', {'grasp2vec_checkpoint': checkpoint, 'goal_from_first_grasp': False}) as node:
        rig.repeat_until(lambda: any(o in rig.received[GRASP2VEC_OBJECT_EMBEDDING] for _, o in attempts),
                         'a successful grasp embedded', node, lambda: attempts.append(rig.attempt(success=True)))
        # The node publishes the goal object before it embeds the grasp: none has come by now, none was sent.
        with probe.lock:
            assert not goals.images
        assert probe.call(client, Trigger.Request(), timeout=TIMEOUT_S).success
        probe.wait_for(lambda: len(goals.images) == 1, TIMEOUT_S, 'the requested goal object')


@pytest.mark.parametrize('text, problem', [
    ('[' * 100_000, 'nests 100000 deep'),
    ('{"kind": "grasp", "stamp": {"sec": Infinity, "nanosec": 0}}', 'non-finite number Infinity'),
    ('{"kind": "grasp", "stamp": {"sec": 1, "nanosec": 0}, "attempt": 1e400}', 'overflows a float'),
    ('{"kind": "grasp", "stamp": {"sec": 1, "nanosec": 0}, "success": true, "s_pre": {"sec": -4, "nanosec": 0}, '
     '"o": null, "s_post": {"sec": 1, "nanosec": 0}}', "'s_pre' {sec: -4, nanosec: 0} is outside"),
])
def test_a_hostile_grasp_event_is_reported_and_the_next_grasp_is_embedded(probe, tmp_path: Path, text, problem):
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    rig = GraspRig(probe)
    attempts: list[tuple[int, int | None]] = []
    with node_process(NODE, 'grasp2vec', {'grasp2vec_checkpoint': checkpoint}) as node:
        rig.repeat_until(lambda: rig.diagnosed('bad_event', problem), f'a diagnostics entry on {problem}', node,
                         lambda: rig.events.publish(String(data=text)))
        rig.repeat_until(lambda: any(o in rig.received[GRASP2VEC_OBJECT_EMBEDDING] for _, o in attempts),
                         'a grasp embedded after the hostile event', node,
                         lambda: attempts.append(rig.attempt(success=True)))
    assert 'Traceback' not in ''.join(node.output)


def test_the_goal_object_is_embedded_by_the_node_model_and_latched_for_the_reward_node(probe, tmp_path: Path):
    """Whatever arrives on /goal/object_image (a file given at start, another node's image) is embedded here, where the
    model runs, and latched on /goal/object_embedding with the image's stamp and the model id."""
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    model = LoadedModel(checkpoint, 'grasp2vec', device='cpu')
    goal_file, goal_image = camera_frames(5, views=2, shape=(24, 32))
    cv2.imwrite(str(tmp_path / 'goal.png'), cv2.cvtColor(goal_file, cv2.COLOR_RGB2BGR))
    embeddings: dict[int, tuple[str, np.ndarray]] = {}

    def keep(message: Image) -> None:
        with probe.lock:
            embeddings[stamp_to_ns(message.header.stamp)] = (message.header.frame_id, np.array(image_to_array(message)))

    params = {'grasp2vec_checkpoint': checkpoint, 'goal_object_file': tmp_path / 'goal.png'}
    with node_process(NODE, 'grasp2vec', params) as node:
        probe.node.create_subscription(Image, topics.GOAL_OBJECT_EMBEDDING, keep, LATCHED_QOS)
        probe.wait_for(lambda: embeddings, TIMEOUT_S, 'the embedding of the goal object file')
        with probe.lock:
            [(frame_id, embedding)] = embeddings.values()
        assert frame_id == model.model_id
        np.testing.assert_allclose(embedding, embed_object(model, goal_file)[0], atol=1e-5)

        goal_publisher = probe.node.create_publisher(Image, topics.GOAL_OBJECT_IMAGE, LATCHED_QOS)
        goal_publisher.publish(array_to_image(goal_image, 'rgb8', ns_to_stamp(7_000_000_000), 'elsewhere'))
        probe.wait_for(lambda: 7_000_000_000 in embeddings, TIMEOUT_S, 'the embedding of the published goal object')
        assert node.poll() is None
    with probe.lock:
        frame_id, embedding = embeddings[7_000_000_000]
    assert frame_id == model.model_id
    np.testing.assert_allclose(embedding, embed_object(model, goal_image)[0], atol=1e-5)


def test_a_grasp_request_sends_the_policy_grasp_for_the_goal_object_stamped_with_its_scene(probe, tmp_path: Path):
    """/grasp/request: the learned policy's grasp place, for the newest scene frame and the goal object, goes out on
    /sim/grasp_at with that frame's stamp. A policy whose reach mask allows one cell must grasp there."""
    checkpoint = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    camera = CameraSpec('front_left', 32, 32, 36.0, (1.15, 0.45, 0.55), (0.6, 0.0, 0.05))
    network = GraspQNetwork(GraspQConfig(image_size=16, trunk_widths=(4, 8), head_width=8,
                                         goal_dim=TINY_GRASP2VEC['embedding_dim']))
    mask = np.zeros((4, 4), bool)
    mask[3, 1] = True
    policy = save_grasp_policy(tmp_path / 'grasp_policy.safetensors', network, mask, view_of(camera), 0.015,
                               LoadedModel(checkpoint, 'grasp2vec', device='cpu').model_id)
    expected = pixel_on_plane(camera, cell_centre_pixel(np.array([3, 1]), 8), 0.015 + GRASP_PLANE_HEIGHT_M)
    rig = GraspRig(probe)
    client = probe.node.create_client(Trigger, topics.GRASP_REQUEST_SERVICE)
    grasps: list[PointStamped] = []
    probe.node.create_subscription(PointStamped, topics.GRASP_AT, grasps.append, RELIABLE_QOS)  # list.append is atomic
    scene_stamps = itertools.count(50 * 1_000_000_000, 100_000_000)
    params = {'grasp2vec_checkpoint': checkpoint, 'grasp_policy': policy, 'goal_from_first_grasp': False}
    with node_process(NODE, 'grasp2vec', params) as node:
        response = probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)
        assert not response.success and response.message == f'no goal object yet on {topics.GOAL_OBJECT_IMAGE}'
        goal = probe.node.create_publisher(Image, topics.GOAL_OBJECT_IMAGE, LATCHED_QOS)
        goal.publish(array_to_image(camera_frames(3, views=1, shape=(32, 32))[0], 'rgb8', ns_to_stamp(9), 'object'))
        scene = rig.cameras[DEFAULT_SCENE_CAMERA]

        def publish_scene(shape: tuple[int, int]) -> int:
            stamp_ns = next(scene_stamps)
            frame = camera_frames(stamp_ns % 101, views=1, shape=shape)[0]
            scene.publish(array_to_image(frame, 'rgb8', ns_to_stamp(stamp_ns), SCENE_FRAME_ID))
            return stamp_ns

        sent: list[int] = []
        answers: list[Trigger.Response] = []

        def request() -> None:
            sent.append(publish_scene((32, 32)))
            answers.append(probe.call(client, Trigger.Request(), timeout=TIMEOUT_S))

        rig.repeat_until(lambda: grasps, 'a grasp on /sim/grasp_at', node, request)
        with probe.lock:
            grasp = grasps[0]
        assert stamp_to_ns(grasp.header.stamp) in sent and grasp.header.frame_id == topics.WORLD_FRAME
        np.testing.assert_allclose([grasp.point.x, grasp.point.y, grasp.point.z], expected, atol=1e-6)
        answered = next(a for a in answers if a.success)
        assert answered.message.startswith(f'grasp at ({expected[0]:.3f}, {expected[1]:.3f}) m for the goal object '
                                           f'stamped 9 ns'), answered.message

        # Frames of another size than the policy's: the newest one held is refused, by name, until one comes.
        deadline = time.monotonic() + TIMEOUT_S
        while (response := probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)).success:
            assert time.monotonic() < deadline, 'no request refused for a 32x24 scene frame'
            publish_scene((24, 32))
            time.sleep(0.1)
        assert 'the grasp policy was trained on 32x32' in response.message, response.message
        assert node.poll() is None
    assert 'Traceback' not in ''.join(node.output)
