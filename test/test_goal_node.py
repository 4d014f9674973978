"""Integration: the goal node runs as its own process; this test process publishes camera frames and episode events,
calls /goal/sample and checks the latched goals it gets back.

Runs only inside a loopback-only network namespace (conftest), each test with its own domain id.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.inference.model_holder import LoadedModel
from ssl_robot.params.goal import DEFAULT_CAMERA
from ssl_robot.topics import GOAL_FROM_SCENE_SERVICE, GOAL_IMAGE, GOAL_LATENT, GOAL_SAMPLE_SERVICE
from ssl_robot.ros.convert import array_to_image, image_to_array, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, SENSOR_QOS
from test_goals import TINY_BETAVAE, TINY_CCVAE, model_input
from test_inference import camera_frames, write_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = 'ssl_robot.nodes.goal_node'
FRAME_PERIOD_NS = 100_000_000
TIMEOUT_S = 90.0
SEED = 7


class LatchedGoals:
    """Subscribes (transient local) to the goal topics and keeps every goal received, by stamp."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.latents: dict[int, tuple[str, np.ndarray]] = {}
        self.images: dict[int, tuple[str, np.ndarray]] = {}
        probe.node.create_subscription(Image, GOAL_LATENT, lambda m: self._keep(self.latents, m), LATCHED_QOS)
        probe.node.create_subscription(Image, GOAL_IMAGE, lambda m: self._keep(self.images, m), LATCHED_QOS)

    def _keep(self, goals: dict, message: Image) -> None:
        with self.probe.lock:
            goals[stamp_to_ns(message.header.stamp)] = (message.header.frame_id, np.array(image_to_array(message)))

    def complete(self) -> list[int]:
        """Stamps of the goals whose latent and image have both arrived."""
        return sorted(set(self.latents) & set(self.images))


def sample(probe: Probe, client, node) -> Trigger.Response:
    assert node.poll() is None, f'the goal node died:\n{"".join(node.output)[-3000:]}'
    return probe.call(client, Trigger.Request(), timeout=TIMEOUT_S)


def sample_until(probe: Probe, client, node, accept, what: str, before=lambda: None) -> Trigger.Response:
    """Call /goal/sample (after before()) every 100 ms until accept(response); fail naming `what` after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        before()
        response = sample(probe, client, node)
        if accept(response):
            return response
        time.sleep(0.1)
    raise AssertionError(f'timed out waiting for {what}; last response: {response.message!r}; node output:\n'
                         f'{"".join(node.output)[-3000:]}')


def expected_image(model: LoadedModel, latent: torch.Tensor, context: np.ndarray | None) -> np.ndarray:
    contexts = [] if context is None else [model_input(context)]
    return model.model.decode(latent, *contexts)[0].movedim(0, -1).numpy() * 255


def assert_goal(goals: LatchedGoals, stamp_ns: int, model: LoadedModel, latent: torch.Tensor,
                context: np.ndarray | None) -> None:
    (latent_id, latent_pixels), (image_id, image_pixels) = goals.latents[stamp_ns], goals.images[stamp_ns]
    assert latent_id == image_id == model.model_id
    np.testing.assert_allclose(latent_pixels, latent.numpy(), atol=1e-6)
    assert image_pixels.shape == (16, 16, 3) and image_pixels.dtype == np.uint8
    assert np.abs(image_pixels - expected_image(model, latent, context)).max() <= 0.5 + 1e-3


def test_ccvae_goals_wait_for_model_and_frame_then_latch_in_the_context_of_the_scene(probe, tmp_path: Path):
    checkpoint = tmp_path / 'ccvae.safetensors'
    client = probe.node.create_client(Trigger, GOAL_SAMPLE_SERVICE)
    camera = probe.node.create_publisher(Image, DEFAULT_CAMERA, SENSOR_QOS)
    episodes = probe.node.create_publisher(String, topics.EPISODES, LATCHED_QOS)
    latents = torch.randn(2, TINY_CCVAE['latent_dim'], generator=torch.Generator().manual_seed(SEED))
    stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)
    published: dict[int, np.ndarray] = {}

    def publish_frame() -> None:
        stamp_ns = next(stamps)
        published[stamp_ns] = camera_frames(stamp_ns % 10_007, views=1, shape=(24, 32))[0]
        camera.publish(array_to_image(published[stamp_ns], 'rgb8', ns_to_stamp(stamp_ns), 'front_left_optical_frame'))

    params = {'vae_checkpoint': checkpoint, 'seed': SEED, 'reload_check_period_s': 0.5}
    with node_process(NODE, 'goal', params) as node:
        response = sample(probe, client, node)
        assert not response.success
        assert response.message.startswith('no ccvae model loaded: checkpoint') and 'does not exist' in response.message

        write_checkpoint(checkpoint, 'ccvae', TINY_CCVAE)
        model = LoadedModel(checkpoint, 'ccvae', device='cpu')
        response = sample_until(probe, client, node, lambda r: 'no ccvae model' not in r.message, 'the model to load')
        assert not response.success
        assert response.message == f'no frame from {DEFAULT_CAMERA} yet: a ccvae goal needs the scene as context'

        sample_until(probe, client, node, lambda r: r.success, 'a goal once frames arrive', before=publish_frame)
        goals = LatchedGoals(probe)  # subscribed after the goal was published: the latched copy must reach it
        probe.wait_for(lambda: len(goals.complete()) == 1, TIMEOUT_S, 'the latched goal latent and image')
        with probe.lock:
            [first_ns] = goals.complete()
            assert first_ns in published, f'goal stamped {first_ns}, which no camera frame carried'
            assert_goal(goals, first_ns, model, latents[:1], published[first_ns])

        # A new episode: the next goal is drawn from the episode's first frame, not from an older one.
        episode_ns = next(stamps) + FRAME_PERIOD_NS // 2
        episodes.publish(String(data=topics.encode_event('episode', episode_ns, episode=1, seed=1, mode='motion',
                                                          behaviour='reach')))
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with probe.lock:
                if len(goals.complete()) == 2:
                    break
            assert time.monotonic() < deadline, 'timed out waiting for the goal of the new episode'
            assert node.poll() is None, f'the goal node died:\n{"".join(node.output)[-3000:]}'
            publish_frame()
            time.sleep(0.1)
        with probe.lock:
            second_ns = goals.complete()[1]
            assert second_ns >= episode_ns and second_ns in published
            assert_goal(goals, second_ns, model, latents[1:], published[second_ns])


def test_betavae_goals_come_from_the_prior_without_any_camera_frame(probe, tmp_path: Path):
    checkpoint = write_checkpoint(tmp_path / 'betavae.safetensors', 'betavae', TINY_BETAVAE)
    model = LoadedModel(checkpoint, 'betavae', device='cpu')
    client = probe.node.create_client(Trigger, GOAL_SAMPLE_SERVICE)
    with node_process(NODE, 'goal', {'vae_checkpoint': checkpoint, 'vae_method': 'betavae', 'seed': SEED}) as node:
        response = sample(probe, client, node)
        assert response.success, response.message
        goals = LatchedGoals(probe)
        probe.wait_for(lambda: len(goals.complete()) == 1, TIMEOUT_S, 'the latched β-VAE goal')
        with probe.lock:
            [stamp_ns] = goals.complete()
            assert f'stamped {stamp_ns} ns' in response.message
            latent = torch.randn(1, TINY_BETAVAE['latent_dim'], generator=torch.Generator().manual_seed(SEED))
            assert_goal(goals, stamp_ns, model, latent, None)


def test_a_second_model_imagines_in_the_scene_and_the_node_model_encodes_the_goal_image(probe, tmp_path: Path):
    """imagine_method: the CC-VAE imagines in the current scene, the β-VAE's latent of that image is the goal (the
    main job: goals for a policy trained on the β-VAE)."""
    encoder = LoadedModel(write_checkpoint(tmp_path / 'betavae.safetensors', 'betavae', TINY_BETAVAE), 'betavae',
                          device='cpu')
    imaginer = LoadedModel(write_checkpoint(tmp_path / 'ccvae.safetensors', 'ccvae', TINY_CCVAE), 'ccvae',
                           device='cpu')
    client = probe.node.create_client(Trigger, GOAL_SAMPLE_SERVICE)
    camera = probe.node.create_publisher(Image, DEFAULT_CAMERA, SENSOR_QOS)
    scene = camera_frames(5, views=1, shape=(24, 32))[0]
    stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)
    params = {'vae_checkpoint': encoder.path, 'vae_method': 'betavae', 'imagine_method': 'ccvae',
              'imagine_checkpoint': imaginer.path, 'seed': SEED}
    with node_process(NODE, 'goal', params) as node:
        response = sample_until(probe, client, node, lambda r: r.success, 'a goal once frames arrive',
                                before=lambda: camera.publish(array_to_image(scene, 'rgb8', ns_to_stamp(next(stamps)),
                                                                             'front_left_optical_frame')))
        goals = LatchedGoals(probe)
        probe.wait_for(lambda: len(goals.complete()) == 1, TIMEOUT_S, 'the latched goal')
        with probe.lock:
            [stamp_ns] = goals.complete()
            (latent_id, latent), (image_id, image) = goals.latents[stamp_ns], goals.images[stamp_ns]
        assert f'stamped {stamp_ns} ns' in response.message
        assert latent_id == image_id == encoder.model_id
        imagined = torch.randn(1, TINY_CCVAE['latent_dim'], generator=torch.Generator().manual_seed(SEED))
        assert np.abs(image - expected_image(imaginer, imagined, scene)).max() <= 0.5 + 1e-3
        expected = encoder.model.encode(model_input(image)).numpy()
        np.testing.assert_allclose(latent, expected, atol=1e-5)


def test_a_method_that_imagines_no_goals_stops_the_node_with_one_line(probe):
    with node_process(NODE, 'goal', {'vae_method': 'tcn'}) as node:
        assert node.wait(timeout=TIMEOUT_S) == 1
    log = ''.join(node.output)
    assert "goal_node: method 'tcn' does not imagine goals: expected one of ['betavae', 'ccvae']" in log, log
    assert 'Traceback' not in log, log


def test_the_scene_becomes_the_goal_encoded_under_the_context_of_its_episode(probe, tmp_path: Path):
    checkpoint = tmp_path / 'ccvae.safetensors'
    client = probe.node.create_client(Trigger, GOAL_FROM_SCENE_SERVICE)
    camera = probe.node.create_publisher(Image, DEFAULT_CAMERA, SENSOR_QOS)
    episodes = probe.node.create_publisher(String, topics.EPISODES, LATCHED_QOS)
    first_scene, later_scene, goal_scene = camera_frames(11, views=3, shape=(24, 32))
    stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)
    sent: list[int] = []

    def send(frame: np.ndarray) -> None:
        sent.append(next(stamps))
        camera.publish(array_to_image(frame, 'rgb8', ns_to_stamp(sent[-1]), 'front_left_optical_frame'))

    def scene_made_goal(node, frame: np.ndarray) -> int:
        """Send frame until the goal node makes a copy of it the goal (frames are best effort); that copy's stamp."""
        sample_until(probe, client, node, lambda r: r.success and f'stamped {sent[-1]} ns' in r.message,
                     'the newest frame as the goal', before=lambda: send(frame))
        return sent[-1]

    def assert_scene_goal(stamp_ns: int, model: LoadedModel, context: np.ndarray) -> np.ndarray:
        probe.wait_for(lambda: stamp_ns in goals.complete(), TIMEOUT_S, 'the latched scene goal')
        with probe.lock:
            (latent_id, latent), (image_id, image) = goals.latents[stamp_ns], goals.images[stamp_ns]
        assert latent_id == image_id == model.model_id
        np.testing.assert_array_equal(image, goal_scene)
        expected = model.model.encode(model_input(goal_scene), model_input(context)).numpy()
        np.testing.assert_allclose(latent, expected, atol=1e-5)
        return latent

    with node_process(NODE, 'goal', {'vae_checkpoint': checkpoint, 'reload_check_period_s': 0.5}) as node:
        response = sample(probe, client, node)
        assert not response.success and response.message.startswith('no ccvae model loaded: checkpoint')
        write_checkpoint(checkpoint, 'ccvae', TINY_CCVAE)
        model = LoadedModel(checkpoint, 'ccvae', device='cpu')
        response = sample_until(probe, client, node, lambda r: 'no ccvae model' not in r.message, 'the model to load')
        assert not response.success
        assert response.message == f'no frame from {DEFAULT_CAMERA} yet: the goal would be the newest frame'

        goals = LatchedGoals(probe)
        # Without an episode event, the episode starts at the first frame received: a copy of first_scene.
        scene_made_goal(node, first_scene)
        first_goal = assert_scene_goal(scene_made_goal(node, goal_scene), model, first_scene)

        # A new episode: the node imagines a goal at its first frame, a copy of later_scene, which is from then on
        # the context of scene goals.
        episode_ns = next(stamps)
        episodes.publish(String(data=topics.encode_event('episode', episode_ns, episode=1, seed=1, mode='idle',
                                                          behaviour='idle')))
        deadline = time.monotonic() + TIMEOUT_S
        while not any(stamp >= episode_ns for stamp in goals.complete()):
            assert time.monotonic() < deadline, 'timed out waiting for the goal imagined at the new episode'
            send(later_scene)
            time.sleep(0.1)
        second_goal = assert_scene_goal(scene_made_goal(node, goal_scene), model, later_scene)
        assert not np.allclose(first_goal, second_goal, atol=1e-4), 'the context of the new episode changed nothing'


def test_a_hostile_latched_episode_event_and_a_negative_stamp_leave_the_node_answering(probe, tmp_path: Path):
    """/sim/episode is latched: a hostile one killed the node at every start. Latched before the node starts here."""
    client = probe.node.create_client(Trigger, GOAL_SAMPLE_SERVICE)
    camera = probe.node.create_publisher(Image, DEFAULT_CAMERA, SENSOR_QOS)
    episodes = probe.node.create_publisher(String, topics.EPISODES, LATCHED_QOS)
    episodes.publish(String(data='[' * 100_000))
    stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)
    frame = camera_frames(3, views=1, shape=(24, 32))[0]

    def publish_frames() -> None:
        negative = array_to_image(frame, 'rgb8', ns_to_stamp(0), 'front_left_optical_frame')
        negative.header.stamp.sec = -5
        camera.publish(negative)  # dropped: a goal drawn from it would carry its stamp
        camera.publish(array_to_image(frame, 'rgb8', ns_to_stamp(next(stamps)), 'front_left_optical_frame'))

    checkpoint = write_checkpoint(tmp_path / 'ccvae.safetensors', 'ccvae', TINY_CCVAE)
    with node_process(NODE, 'goal', {'vae_checkpoint': checkpoint}) as node:
        sample_until(probe, client, node, lambda r: r.success, 'a goal after the hostile input', before=publish_frames)
        episodes.publish(String(data='{"kind": "episode", "stamp": {"sec": Infinity, "nanosec": 0}}'))
        episodes.publish(String(data='{"kind": "episode", "stamp": {"sec": 1e400, "nanosec": 0}}'))
        sample_until(probe, client, node, lambda r: r.success, 'a goal after more hostile events',
                     before=publish_frames)
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'bad_event' in log and 'bad_stamp' in log and 'Traceback' not in log, log[-3000:]


def test_every_scene_frame_gets_its_latent_under_the_episode_context_stamped_with_the_frame(probe, tmp_path: Path):
    """/latent/scene: e(s | s0) of each frame, s0 the episode's first frame, with the frame's stamp and the model id."""
    checkpoint = write_checkpoint(tmp_path / 'ccvae.safetensors', 'ccvae', TINY_CCVAE)
    model = LoadedModel(checkpoint, 'ccvae', device='cpu')
    camera = probe.node.create_publisher(Image, DEFAULT_CAMERA, SENSOR_QOS)
    received: dict[int, tuple[str, np.ndarray]] = {}

    def keep(message: Image) -> None:
        with probe.lock:
            received[stamp_to_ns(message.header.stamp)] = (message.header.frame_id,
                                                           np.array(image_to_array(message)))

    probe.node.create_subscription(Image, topics.SCENE_LATENT, keep, SENSOR_QOS)
    context, scene = camera_frames(21, views=2, shape=(24, 32))
    stamps = itertools.count(100 * 1_000_000_000, FRAME_PERIOD_NS)

    def send_until_encoded(node, frame: np.ndarray, what: str) -> int:
        """Send frame (best effort) until a latent stamped like one of the copies sent comes back; that stamp."""
        sent: set[int] = set()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with probe.lock:
                back = sorted(sent & set(received))
            if back:
                return back[0]
            assert time.monotonic() < deadline, f'timed out waiting for the latent of {what}'
            assert node.poll() is None, f'the goal node died:\n{"".join(node.output)[-3000:]}'
            stamp_ns = next(stamps)
            sent.add(stamp_ns)
            camera.publish(array_to_image(frame, 'rgb8', ns_to_stamp(stamp_ns), 'front_left_optical_frame'))
            time.sleep(0.1)

    with node_process(NODE, 'goal', {'vae_checkpoint': checkpoint}) as node:
        # Only copies of context are sent until one is encoded: whichever arrived first is the episode's context.
        context_ns = send_until_encoded(node, context, 'the context frame')
        scene_ns = send_until_encoded(node, scene, 'a scene frame')
    with probe.lock:
        (context_id, context_latent), (scene_id, scene_latent) = received[context_ns], received[scene_ns]
    assert context_id == scene_id == model.model_id
    assert scene_latent.shape == (1, TINY_CCVAE['latent_dim']) and scene_latent.dtype == np.float32
    np.testing.assert_allclose(context_latent, model.model.encode(model_input(context), model_input(context)).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(scene_latent, model.model.encode(model_input(scene), model_input(context)).numpy(),
                               atol=1e-5)
