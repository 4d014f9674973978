"""reward_node as its own process, fed synthetic embeddings, scene and object images,
goals and events by this test process, which checks the rewards and diagnostics it gets back.

The ROS test runs only inside a loopback-only network namespace (conftest), with its own domain id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.data.reader import rgb_to_tensor
from ssl_robot.demo_trajectory import embed_demo
from ssl_robot.inference import LoadedModel, preprocess
from ssl_robot.nodes.reward_node import DIAGNOSTIC_NAME, REWARD_TOPICS
from ssl_robot.topics import GOAL_LATENT, GOAL_OBJECT_IMAGE
from ssl_robot.rewards import DEFAULT_GAMMA
from ssl_robot.ros.convert import array_to_image, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from test_demo_trajectory import CAMERAS, write_demo_bag
from test_inference import write_checkpoint

NODE = 'ssl_robot.nodes.reward_node'
TINY_CCVAE = {'image_size': 16, 'encoder_widths': [8, 16], 'decoder_widths': [16, 8], 'latent_dim': 4,
              'context_dim': 3}
TINY_GRASP2VEC = {'image_size': 16, 'encoder_widths': [8, 16], 'embedding_dim': 5}
OBJECT_CAMERA = topics.camera_image(topics.OBJECT_CAMERA)
S = 1_000_000_000
PERIOD_NS = S // 10
TIMEOUT_S = 90.0


# --- the node -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def demo_bag(tmp_path_factory) -> Path:
    return write_demo_bag(tmp_path_factory.mktemp('demo') / 'motion')


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class RewardGraph:
    """The node's inputs, published from the probe, and what it sends back: rewards by kind and stamp, diagnostics."""

    def __init__(self, probe: Probe, node) -> None:
        self.probe, self.node = probe, node
        create = probe.node.create_publisher
        self.embeddings = create(Image, topics.EMBEDDINGS, SENSOR_QOS)
        self.episodes = create(String, topics.EPISODES, LATCHED_QOS)
        self.scene = create(Image, CAMERAS[0], SENSOR_QOS)
        self.goal_latent = create(Image, GOAL_LATENT, LATCHED_QOS)
        self.object_images = create(Image, OBJECT_CAMERA, SENSOR_QOS)
        self.grasp_events = create(String, topics.GRASP_EVENTS, RELIABLE_QOS)
        self.goal_object = create(Image, GOAL_OBJECT_IMAGE, LATCHED_QOS)
        self.rewards: dict[str, dict[int, tuple[str, float, float, float]]] = {kind: {} for kind in REWARD_TOPICS}
        self.diagnostics: list[tuple[str, dict[str, str]]] = []
        for kind, topic in REWARD_TOPICS.items():
            probe.node.create_subscription(Vector3Stamped, topic, lambda m, kind=kind: self._on_reward(kind, m),
                                           RELIABLE_QOS)
        probe.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)

    def _on_reward(self, kind: str, message: Vector3Stamped) -> None:
        vector = message.vector
        with self.probe.lock:
            self.rewards[kind][stamp_to_ns(message.header.stamp)] = (message.header.frame_id, vector.x, vector.y,
                                                                      vector.z)

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        with self.probe.lock:
            self.diagnostics += [(status.message, {value.key: value.value for value in status.values})
                                 for status in message.status if status.name == DIAGNOSTIC_NAME]

    def diagnosed(self, *words: str) -> bool:
        return any(all(word in message for word in words) for message, _ in self.diagnostics)

    def reported(self, key: str, value: str) -> bool:
        return any(values.get(key) == value for _, values in self.diagnostics)

    def counted(self, kind: str) -> bool:
        return any(int(values.get(f'count_{kind}', '0')) > 0 for _, values in self.diagnostics)

    def until(self, condition: Callable[[], bool], what: str, publish: Callable[[], None] | None = None) -> None:
        """Wait, calling publish() every 20 ms if given, until condition() holds; fail naming `what` if it does not
        within TIMEOUT_S or if the node dies."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.node.poll() is None, f'the reward node died:\n{"".join(self.node.output)[-3000:]}'
            if publish is not None:
                publish()
            time.sleep(0.02)
            with self.probe.lock:
                if condition():
                    return
        raise AssertionError(f'timed out after {TIMEOUT_S:.0f} s waiting for {what}; diagnostics: '
                             f'{self.diagnostics[-3:]}; node output:\n{"".join(self.node.output)[-3000:]}')

    def start_episode(self, stamp_ns: int) -> None:
        self.episodes.publish(String(data=topics.encode_event('episode', stamp_ns, episode=0, seed=0, mode='motion',
                                                              behaviour='reach')))
        self.until(lambda: self.reported('episode_start_ns', str(stamp_ns)), f'the episode at {stamp_ns} ns')

    def publish_embeddings(self, stamps: list[int], fused: np.ndarray, model_id: str, rng: np.random.Generator) -> None:
        """One /embeddings message per stamp, fused row i at stamps[i], then wait for the rewards of half of them:
        a best-effort message may be lost, so not every one need come back."""
        for stamp, row in zip(stamps, fused):
            rows = np.vstack([unit_rows(rng, len(CAMERAS), len(row)), row[None]])
            self.embeddings.publish(array_to_image(rows, '32FC1', ns_to_stamp(stamp), model_id))
            time.sleep(0.02)
        self.until(lambda: len(set(stamps) & set(self.rewards['imitation'])) >= len(stamps) // 2,
                   f'imitation rewards for {len(stamps)} embeddings')


@pytest.mark.ros
@pytest.mark.slow
def test_rewards_carry_their_observations_stamps_and_score_demo_goal_and_grasp(probe, demo_bag, tmp_path):
    tcn = write_checkpoint(tmp_path / 'tcn.safetensors')
    ccvae = LoadedModel(write_checkpoint(tmp_path / 'ccvae.safetensors', 'ccvae', TINY_CCVAE), 'ccvae', device='cpu')
    grasp2vec = LoadedModel(write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC),
                            'grasp2vec', device='cpu')
    demo = embed_demo(demo_bag, 0, LoadedModel(tcn, 'tcn', device='cpu'), CAMERAS)
    rng = np.random.default_rng(0)
    params = {'demo_bag': demo_bag, 'embedding_checkpoint': tcn, 'vae_checkpoint': ccvae.path,
              'grasp2vec_checkpoint': grasp2vec.path, 'latent_goal_scale': 2.0, 'grasp2vec_scale': 0.5}
    with node_process(NODE, 'reward', params) as node:
        graph = RewardGraph(probe, node)

        # Imitation: the demo's own fused embeddings at the times of its frames, then other embeddings at those times.
        offsets = [round(demo.first_frame_s * S) + int(stamp - demo.trajectory.stamps_ns[0])
                   for stamp in demo.trajectory.stamps_ns]
        first_episode, second_episode = 100 * S, 1000 * S
        graph.start_episode(first_episode)
        probe.wait_for(lambda: graph.embeddings.get_subscription_count() > 0, TIMEOUT_S, 'the node to subscribe')
        demo_stamps = [first_episode + offset for offset in offsets]
        graph.publish_embeddings(demo_stamps, demo.trajectory.embeddings.astype(np.float32), demo.model_id, rng)
        graph.start_episode(second_episode)
        other_stamps = [second_episode + offset for offset in offsets]
        others = unit_rows(rng, len(offsets), demo.trajectory.dim)
        graph.publish_embeddings(other_stamps, others, demo.model_id, rng)
        with probe.lock:
            imitation = dict(graph.rewards['imitation'])
        assert set(imitation) <= set(demo_stamps) | set(other_stamps), 'a reward stamped with no embedding\'s stamp'
        assert {frame_id for frame_id, *_ in imitation.values()} == {demo.model_id}
        own = [imitation[stamp] for stamp in demo_stamps if stamp in imitation]
        for _, reward, distance, zero in own:  # time-index alignment puts each on its own frame
            assert distance == pytest.approx(0.0, abs=1e-5) and zero == 0.0
            assert reward == pytest.approx(-np.sqrt(DEFAULT_GAMMA), abs=1e-4)
        other = {i: imitation[stamp] for i, stamp in enumerate(other_stamps) if stamp in imitation}
        for i, (_, reward, distance, _) in other.items():
            assert distance == pytest.approx(np.linalg.norm(others[i] - demo.trajectory.embeddings[i]), abs=1e-5)
            assert reward == pytest.approx(-distance ** 2 - np.sqrt(DEFAULT_GAMMA + distance ** 2), abs=1e-4)
        assert min(reward for _, reward, _, _ in own) > max(reward for _, reward, _, _ in other.values())

        # Bad embeddings are dropped and reported; the node goes on.
        bad_stamps = iter(range(other_stamps[-1] + S, other_stamps[-1] + 1000 * S, PERIOD_NS))
        too_few_rows = unit_rows(rng, len(CAMERAS), demo.trajectory.dim)
        graph.until(lambda: graph.diagnosed('bad_embedding', 'shape is (3, 6), expected (4, 6)'), 'a bad shape report',
                    lambda: graph.embeddings.publish(array_to_image(too_few_rows, '32FC1',
                                                                    ns_to_stamp(next(bad_stamps)), demo.model_id)))
        other_weights = 'tcn:tcn.safetensors:step10:000000000000'
        graph.until(lambda: graph.diagnosed('model_mismatch', other_weights), 'a model mismatch report',
                    lambda: graph.embeddings.publish(array_to_image(np.vstack([too_few_rows, others[:1]]), '32FC1',
                                                                    ns_to_stamp(next(bad_stamps)), other_weights)))
        with probe.lock:
            assert set(graph.rewards['imitation']) == set(imitation)

        # Latent goal: nothing before a goal arrives; then -|e(s | s0) - g|, s0 the episode's first scene image.
        scene_stamps = iter(range(second_episode + S, second_episode + 1000 * S, PERIOD_NS))
        first_scene = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        graph.until(lambda: graph.diagnosed('no_latent_goal', GOAL_LATENT), 'a missing goal report',
                    lambda: graph.scene.publish(array_to_image(first_scene, 'rgb8', ns_to_stamp(next(scene_stamps)),
                                                               CAMERAS[0])))
        goal = rng.normal(size=(1, TINY_CCVAE['latent_dim'])).astype(np.float32)
        graph.goal_latent.publish(array_to_image(goal, '32FC1', ns_to_stamp(5 * S), 'goal-vae'))
        graph.until(lambda: graph.reported('latent_goal_from', 'goal-vae at 5000000000 ns'), 'the goal latent')
        scenes: dict[int, np.ndarray] = {}

        def publish_scene() -> None:
            stamp = next(scene_stamps)
            scenes[stamp] = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            graph.scene.publish(array_to_image(scenes[stamp], 'rgb8', ns_to_stamp(stamp), CAMERAS[0]))
        graph.until(lambda: len(graph.rewards['latent_goal']) >= 3, 'latent goal rewards', publish_scene)
        with probe.lock:
            latent_rewards = dict(graph.rewards['latent_goal'])
        assert set(latent_rewards) <= set(scenes)
        context = rgb_to_tensor(preprocess([first_scene], TINY_CCVAE['image_size']))
        for stamp, (frame_id, reward, distance, zero) in latent_rewards.items():
            latent = ccvae.model.encode(rgb_to_tensor(preprocess([scenes[stamp]], TINY_CCVAE['image_size'])), context)
            assert distance == pytest.approx(np.linalg.norm(latent[0].numpy() - goal[0]), rel=1e-4)
            assert reward == pytest.approx(-2.0 * distance) and zero == 0.0 and frame_id == ccvae.model_id

        # Grasp2Vec: a grasp without a goal object is reported; with one, cos(phi_o(g), phi_o(o)) stamped with o's
        # stamp.
        object_stamps = iter(range(second_episode + S, second_episode + 1000 * S, PERIOD_NS))
        objects: dict[int, np.ndarray] = {}

        def publish_grasp(success: bool = True) -> None:
            stamp = next(object_stamps)
            objects[stamp] = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            graph.object_images.publish(array_to_image(objects[stamp], 'rgb8', ns_to_stamp(stamp), OBJECT_CAMERA))
            o = topics.stamp_dict(stamp) if success else None
            graph.grasp_events.publish(String(data=topics.encode_event(
                'grasp', stamp + S, success=success, o=o, s_pre=topics.stamp_dict(stamp - S),
                s_post=topics.stamp_dict(stamp + S))))
        graph.until(lambda: graph.diagnosed('no_grasp2vec_goal', GOAL_OBJECT_IMAGE), 'a missing goal object report',
                    publish_grasp)
        goal_object = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        graph.goal_object.publish(array_to_image(goal_object, 'rgb8', ns_to_stamp(6 * S), 'goal'))
        graph.until(lambda: graph.reported('grasp2vec_goal_from', f'{GOAL_OBJECT_IMAGE} at 6000000000 ns'),
                    'the goal object image')
        graph.until(lambda: graph.counted('grasp_without_object'), 'a failed grasp counted',
                    lambda: publish_grasp(success=False))
        graph.until(lambda: len(graph.rewards['grasp2vec']) >= 2, 'grasp2vec rewards', publish_grasp)
        with probe.lock:
            grasp_rewards = dict(graph.rewards['grasp2vec'])
        assert set(grasp_rewards) <= set(objects)
        for stamp, (frame_id, reward, score, zero) in grasp_rewards.items():
            images = rgb_to_tensor(preprocess([goal_object, objects[stamp]], TINY_GRASP2VEC['image_size']))
            goal_embedding, grasped = grasp2vec.model.object_embedding(images).numpy()
            cosine = goal_embedding @ grasped / np.linalg.norm(goal_embedding) / np.linalg.norm(grasped)
            assert score == pytest.approx(float(cosine), rel=1e-4)   # grasp2vec_normalize's default
            assert reward == pytest.approx(0.5 * score) and zero == 0.0 and frame_id == grasp2vec.model_id
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'Traceback' not in log, log[-3000:]


@pytest.mark.ros
@pytest.mark.slow
def test_a_missing_demo_bag_stops_the_node_with_one_line(probe):
    with node_process(NODE, 'reward', {'kinds': "['imitation']"}) as node:
        assert node.wait(timeout=TIMEOUT_S) == 1
    log = ''.join(node.output)
    assert 'reward_node: parameter demo_bag is empty' in log and 'Traceback' not in log, log


HOSTILE_EVENTS = ['{"kind": "episode", "stamp": {"sec": Infinity, "nanosec": 0}}', '[' * 100_000,
                  '{"kind": "grasp", "stamp": {"sec": 1e400, "nanosec": 0}, "o": {"sec": NaN, "nanosec": 0}}',
                  '{"kind": "episode", "stamp": {"sec": -7, "nanosec": 0}}']


@pytest.mark.ros
@pytest.mark.slow
def test_hostile_events_stamps_and_goals_are_counted_and_the_node_keeps_scoring(probe, tmp_path):
    ccvae = LoadedModel(write_checkpoint(tmp_path / 'ccvae.safetensors', 'ccvae', TINY_CCVAE), 'ccvae', device='cpu')
    grasp2vec = write_checkpoint(tmp_path / 'grasp2vec.safetensors', 'grasp2vec', TINY_GRASP2VEC)
    params = {'kinds': "['latent_goal', 'grasp2vec']", 'vae_checkpoint': ccvae.path, 'grasp2vec_checkpoint': grasp2vec}
    rng = np.random.default_rng(1)
    with node_process(NODE, 'reward', params) as node:
        graph = RewardGraph(probe, node)
        probe.wait_for(lambda: graph.grasp_events.get_subscription_count() > 0
                       and graph.episodes.get_subscription_count() > 0, TIMEOUT_S, 'the node to subscribe')
        for text in HOSTILE_EVENTS:  # each of these killed the node; /sim/episode is latched: it died again at start
            graph.episodes.publish(String(data=text))
            graph.grasp_events.publish(String(data=text))
        graph.until(lambda: graph.counted('bad_event'), 'the hostile events counted')
        goal = rng.normal(size=(1, TINY_CCVAE['latent_dim'])).astype(np.float32)
        graph.goal_latent.publish(array_to_image(goal * 0 + 3e38, '32FC1', ns_to_stamp(5 * S), 'absurd'))
        graph.until(lambda: graph.diagnosed('bad_goal', 'beyond'), 'the absurd goal refused')
        graph.goal_latent.publish(array_to_image(goal, '32FC1', ns_to_stamp(5 * S), 'goal-vae'))
        graph.until(lambda: graph.reported('latent_goal_from', 'goal-vae at 5000000000 ns'), 'the goal latent')

        # A scene frame with a negative stamp, which the node would republish on its reward, then good frames.
        scene = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        negative = array_to_image(scene, 'rgb8', ns_to_stamp(0), CAMERAS[0])
        negative.header.stamp.sec = -3
        graph.until(lambda: graph.counted('bad_stamp'), 'the negative stamp counted',
                    lambda: graph.scene.publish(negative))
        good_stamps = iter(range(10 * S, 1000 * S, PERIOD_NS))
        graph.until(lambda: len(graph.rewards['latent_goal']) >= 2, 'latent goal rewards after the bad stamp',
                    lambda: graph.scene.publish(array_to_image(scene, 'rgb8', ns_to_stamp(next(good_stamps)),
                                                               CAMERAS[0])))
        graph.until(lambda: any(int(values.get(f'received_{CAMERAS[0]}', '0')) > 2
                                and 'receive_hz_' + CAMERAS[0] in values and 'latent_goal_hz' in values
                                for _, values in graph.diagnostics), 'receive and reward rates on /diagnostics')
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'Traceback' not in log, log[-3000:]
