"""Integration: the embedding node runs as its own process; this test process publishes camera images and checks
the embeddings and diagnostics it gets back.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.inference.demo_embedding import embed_demo
from ssl_robot.rewards.demonstration import EmbeddedDemo
from ssl_robot.inference.embedder import MultiViewEmbedder
from ssl_robot.inference.model_holder import LoadedModel
from ssl_robot.nodes.embedding_node import DIAGNOSTIC_NAME
from ssl_robot.params.embedding import DEFAULT_CAMERA_TOPICS
from ssl_robot.topics import EMBEDDINGS
from ssl_robot.ros.convert import array_to_image, image_to_array, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from test_demo_trajectory import write_demo_bag
from test_inference import camera_frames, write_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = 'ssl_robot.nodes.embedding_node'
CAMERAS = DEFAULT_CAMERA_TOPICS
FRAME_PERIOD_NS = 100_000_000
TIMEOUT_S = 90.0


class CameraRig:
    """Publishes synthetic camera sets from the probe and records what the node sends back."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.publishers = {topic: probe.node.create_publisher(Image, topic, SENSOR_QOS) for topic in CAMERAS}
        self.stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)
        self.published: dict[int, list[np.ndarray]] = {}
        self.embeddings: dict[int, tuple[str, np.ndarray]] = {}
        self.diagnostics: list[str] = []
        self.values: list[dict[str, str]] = []
        probe.node.create_subscription(Image, EMBEDDINGS, self._on_embeddings, SENSOR_QOS)
        probe.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)

    def _on_embeddings(self, message: Image) -> None:
        with self.probe.lock:
            self.embeddings[stamp_to_ns(message.header.stamp)] = (message.header.frame_id,
                                                                  np.array(image_to_array(message)))

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        with self.probe.lock:
            self.diagnostics += [status.message for status in message.status if status.name == DIAGNOSTIC_NAME]
            self.values += [{value.key: value.value for value in status.values} for status in message.status
                            if status.name == DIAGNOSTIC_NAME]

    def image(self, topic: str, stamp_ns: int, pixels: np.ndarray) -> Image:
        return array_to_image(pixels, 'rgb8', ns_to_stamp(stamp_ns), topic)

    def publish_set(self, cameras: list[str] = CAMERAS) -> int:
        stamp_ns = next(self.stamps)
        self.published[stamp_ns] = camera_frames(stamp_ns % 10_007)
        for topic, pixels in zip(CAMERAS, self.published[stamp_ns]):
            if topic in cameras:
                self.publishers[topic].publish(self.image(topic, stamp_ns, pixels))
        return stamp_ns

    def publish_until(self, condition: Callable[[], bool], what: str, node, cameras: list[str] = CAMERAS,
                      also: Callable[[int], None] | None = None) -> None:
        """Publish a set (then `also(stamp)`) every 50 ms until condition() holds; fail naming `what` if it does not
        within TIMEOUT_S or if the node dies. Repeating the input survives best-effort losses."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert node.poll() is None, f'the embedding node died:\n{"".join(node.output)[-3000:]}'
            stamp_ns = self.publish_set(cameras)
            if also is not None:
                also(stamp_ns)
            time.sleep(0.05)
            with self.probe.lock:
                if condition():
                    return
        raise AssertionError(f'timed out after {TIMEOUT_S:.0f} s waiting for {what}; diagnostics: '
                             f'{self.diagnostics[-3:]}; node output:\n{"".join(node.output)[-3000:]}')

    def publish_until_reported(self, node, words: tuple[str, ...], what: str,
                               also: Callable[[int], None] | None = None) -> int:
        """Publish until a diagnostics entry holds all of `words` and the node has embedded more sets since; returns
        the stamp of the last embedding before."""
        with self.probe.lock:
            start = max(self.embeddings)
        self.publish_until(lambda: self.diagnosed(*words) and len(self.embedded_since(start)) > 3,
                           f'a diagnostics entry about {what}, and embeddings after it', node, also=also)
        return start

    def embedded_since(self, stamp_ns: int) -> list[int]:
        return [stamp for stamp in self.embeddings if stamp > stamp_ns]

    def diagnosed(self, *words: str) -> bool:
        return any(all(word in message for word in words) for message in self.diagnostics)


def test_embeds_synchronized_cameras_survives_bad_input_and_reloads_the_checkpoint(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'tcn.safetensors', seed=0, step=1)
    expected = MultiViewEmbedder(LoadedModel(checkpoint, 'tcn', device='cpu'), len(CAMERAS))
    rig = CameraRig(probe)
    params = {'embedding_checkpoint': checkpoint, 'reload_check_period_s': 0.5, 'silent_camera_timeout_s': 5.0}
    with node_process(NODE, 'embedding', params) as node:
        rig.publish_until(lambda: len(rig.embeddings) >= 3, 'the first embeddings', node)
        with probe.lock:
            for stamp_ns, (frame_id, vectors) in rig.embeddings.items():
                assert stamp_ns in rig.published, f'embedding stamped {stamp_ns}, which no camera set carried'
                want = expected.embed(stamp_ns, rig.published[stamp_ns])
                assert frame_id == want.model_id and frame_id.startswith('tcn:tcn.safetensors:step1:')
                assert vectors.shape == (len(CAMERAS) + 1, 6)
                np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
                np.testing.assert_allclose(vectors, want.vectors, atol=1e-5)

        def publish_bad_step(stamp_ns: int) -> None:
            bad = rig.image(CAMERAS[0], stamp_ns, rig.published[stamp_ns][0])
            bad.step -= 1
            rig.publishers[CAMERAS[0]].publish(bad)
        rig.publish_until_reported(node, ('bad_image', CAMERAS[0], 'step'), 'the wrong step', publish_bad_step)

        def publish_backwards(stamp_ns: int) -> None:
            older = stamp_ns - FRAME_PERIOD_NS // 2
            rig.publishers[CAMERAS[1]].publish(rig.image(CAMERAS[1], older, rig.published[stamp_ns][1]))
        rig.publish_until_reported(node, ('stamp_backwards', CAMERAS[1]), 'the backwards stamp', publish_backwards)

        rig.publish_until(lambda: rig.diagnosed('silent_camera', f'no frame from {CAMERAS[2]} for'),
                          f'{CAMERAS[2]} reported silent', node, cameras=CAMERAS[:2])
        with probe.lock:
            silent = [message for message in rig.diagnostics if 'silent_camera' in message]
        assert not any(camera in message for message in silent for camera in CAMERAS[:2]), silent

        old_id = expected.model.model_id
        checkpoint.write_bytes(b'half-copied checkpoint')
        start = rig.publish_until_reported(
            node, ('checkpoint', 'is not a safetensors checkpoint', f'still using {old_id}'), 'the broken checkpoint')
        with probe.lock:
            assert {rig.embeddings[stamp][0] for stamp in rig.embedded_since(start)} == {old_id}

        write_checkpoint(checkpoint, seed=1, step=2)
        new_id = LoadedModel(checkpoint, 'tcn', device='cpu').model_id
        rig.publish_until(lambda: any(frame_id == new_id for frame_id, _ in rig.embeddings.values()),
                          f'embeddings from the replaced checkpoint ({new_id})', node)
        assert new_id.startswith('tcn:tcn.safetensors:step2:') and new_id != old_id
    log = ''.join(node.output)
    assert f'-> {new_id}' in log, log[-3000:]


def test_a_checkpoint_of_another_method_is_reported_and_the_right_one_is_served_once_it_is_there(probe, tmp_path: Path):
    """The embedding node holds its model as every model node does: a checkpoint it cannot use is reported, the node
    keeps running without embedding, and serves the file once it holds a usable checkpoint."""
    rig = CameraRig(probe)
    checkpoint = write_checkpoint(tmp_path / 'model.safetensors', 'mftcn')
    params = {'embedding_checkpoint': checkpoint, 'embedding_method': 'tcn', 'reload_check_period_s': 0.5}
    with node_process(NODE, 'embedding', params) as node:
        rig.publish_until(lambda: rig.diagnosed('checkpoint', "holds a 'mftcn' checkpoint, not 'tcn'")
                          and rig.diagnosed('no_model'), 'the wrong checkpoint and the sets it left unembedded', node)
        with probe.lock:
            assert not rig.embeddings
        write_checkpoint(checkpoint, seed=1, step=3)
        rig.publish_until(lambda: any(frame_id.startswith('tcn:model.safetensors:step3:')
                                      for frame_id, _ in rig.embeddings.values()),
                          'embeddings of the tcn checkpoint', node)
    assert 'Traceback' not in ''.join(node.output)


def test_the_demo_is_embedded_by_the_node_model_and_latched_for_the_reward_node(probe, tmp_path: Path):
    """The imitation reward's demo is embedded where the model runs, and reaches a subscriber that comes later."""
    bag = write_demo_bag(tmp_path / 'demo')
    checkpoint = write_checkpoint(tmp_path / 'tcn.safetensors')
    expected = embed_demo(bag, 0, LoadedModel(checkpoint, 'tcn', device='cpu'), CAMERAS)
    demos: list[tuple[int, EmbeddedDemo]] = []

    def keep(message: Image) -> None:
        with probe.lock:
            demos.append((stamp_to_ns(message.header.stamp),
                          EmbeddedDemo.from_rows(image_to_array(message), message.header.frame_id)))

    with node_process(NODE, 'embedding', {'embedding_checkpoint': checkpoint, 'demo_bag': bag}) as node:
        probe.node.create_subscription(Image, topics.DEMO_EMBEDDINGS, keep, LATCHED_QOS)
        probe.wait_for(lambda: demos, TIMEOUT_S, f'the latched demo on {topics.DEMO_EMBEDDINGS}')
        assert node.poll() is None
    [(stamp_ns, demo)] = demos
    assert stamp_ns == expected.trajectory.stamps_ns[0] and demo.model_id == expected.model_id
    assert demo.first_frame_s == pytest.approx(expected.first_frame_s, abs=1e-6)
    np.testing.assert_allclose(demo.trajectory.embeddings, expected.trajectory.embeddings, atol=1e-6)
    np.testing.assert_allclose(demo.trajectory.times_s, expected.trajectory.times_s, atol=1e-5)


def test_a_demo_bag_that_cannot_be_read_stops_the_node_with_one_line(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'tcn.safetensors')
    missing = tmp_path / 'no_such_bag'
    with node_process(NODE, 'embedding', {'embedding_checkpoint': checkpoint, 'demo_bag': missing}) as node:
        assert node.wait(timeout=TIMEOUT_S) == 1
    log = ''.join(node.output)
    assert 'embedding_node: ' in log and str(missing) in log and 'Traceback' not in log, log


def test_negative_stamps_are_counted_and_dropped_and_the_node_embeds_the_next_sets(probe, tmp_path: Path):
    rig = CameraRig(probe)
    params = {'embedding_checkpoint': write_checkpoint(tmp_path / 'tcn.safetensors')}
    with node_process(NODE, 'embedding', params) as node:
        rig.publish_until(lambda: len(rig.embeddings) >= 1, 'the first embeddings', node)

        def publish_negative_set(stamp_ns: int) -> None:  # a whole set, which the node would republish the stamp of
            for topic, pixels in zip(CAMERAS, rig.published[stamp_ns]):
                bad = rig.image(topic, stamp_ns, pixels)
                bad.header.stamp.sec = -1 - bad.header.stamp.sec
                rig.publishers[topic].publish(bad)
        rig.publish_until_reported(node, ('bad_stamp', 'is not a time since the epoch'), 'the negative stamps',
                                   publish_negative_set)
        rig.publish_until(lambda: any(all(int(values.get(f'received_{topic}', '0')) > 5
                                          and f'receive_hz_{topic}' in values for topic in CAMERAS)
                                      and 'published_hz' in values for values in rig.values),
                          'receive and embedding rates on /diagnostics', node)
        assert node.poll() is None
    assert 'Traceback' not in ''.join(node.output)


def test_a_camera_with_far_off_stamps_is_not_silent_and_its_clock_jumps_are_warned_about(probe, tmp_path: Path):
    rig = CameraRig(probe)
    # Stamps 1000 s apart would make a stamp-judged camera silent under any timeout below that; 10 s of wall time
    # keeps a loaded machine, which can stall this process's publishing for a second, from looking silent.
    params = {'embedding_checkpoint': write_checkpoint(tmp_path / 'tcn.safetensors'), 'silent_camera_timeout_s': 10.0}
    with node_process(NODE, 'embedding', params) as node:
        rig.publish_until(lambda: len(rig.embeddings) >= 1, 'the first embeddings', node)
        with probe.lock:
            seen = len(rig.diagnostics)

        def publish_far_off(stamp_ns: int) -> None:  # the third camera's clock is 1000 s ahead of the others'
            far_ns = stamp_ns + 1000 * 1_000_000_000
            rig.publishers[CAMERAS[2]].publish(rig.image(CAMERAS[2], far_ns, rig.published[stamp_ns][2]))
        rig.publish_until(lambda: rig.diagnosed('clock_jump', 'jumped back', 'flushed')
                          and len(rig.diagnostics) >= seen + 4, 'clock jumps warned about', node,
                          cameras=CAMERAS[:2], also=publish_far_off)
        with probe.lock:
            assert not [message for message in rig.diagnostics if 'silent_camera' in message], rig.diagnostics
    assert 'Traceback' not in ''.join(node.output)


def test_diagnostics_go_on_on_the_wall_clock_when_sim_time_stops(probe, tmp_path: Path):
    """With use_sim_time and no /clock (the sim died), the node still reports its cameras silent."""
    rig = CameraRig(probe)
    params = {'embedding_checkpoint': write_checkpoint(tmp_path / 'tcn.safetensors'), 'silent_camera_timeout_s': 1.0,
              'use_sim_time': 'true'}
    with node_process(NODE, 'embedding', params) as node:
        probe.wait_for(lambda: rig.diagnosed('silent_camera', *CAMERAS), TIMEOUT_S, 'silent cameras on /diagnostics')
        assert node.poll() is None
