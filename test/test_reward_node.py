"""reward_node as its own process, fed what the model nodes publish (embeddings and the demo, scene latents and goal
latents, Grasp2Vec object embeddings and the goal object's) and events by this test process, which checks the rewards
and diagnostics it gets back. The node holds no model: nothing here needs torch.

The ROS tests run only inside a loopback-only network namespace (conftest), each with its own domain id.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_harness import Probe, node_process
from ssl_robot import topics
from ssl_robot.rewards.demonstration import EmbeddedDemo
from ssl_robot.nodes.reward_node import DIAGNOSTIC_NAME, REWARD_TOPICS
from ssl_robot.rewards.functions import DEFAULT_GAMMA, DemoTrajectory
from ssl_robot.ros.convert import array_to_image, ns_to_stamp, stamp_to_ns
from ssl_robot.ros.qos import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

NODE = 'ssl_robot.nodes.reward_node'
S = 1_000_000_000
PERIOD_NS = S // 10
TIMEOUT_S = 90.0
CAMERAS = 3
TCN_ID = 'tcn:tcn.safetensors:step10:0123456789ab'
VAE_ID = 'ccvae:ccvae.safetensors:step5:aaaaaaaaaaaa'
GRASP2VEC_ID = 'grasp2vec:grasp2vec.safetensors:step7:bbbbbbbbbbbb'
OTHER_VAE_ID = 'ccvae:ccvae.safetensors:step6:cccccccccccc'


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_reward_node_module_pulls_in_no_torch():
    """The reward node holds no model: importing it must not load torch (a subprocess, so that no other test's
    imports count)."""
    code = f'import sys, {NODE}; print("torch" in sys.modules)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'


class RewardGraph:
    """The node's inputs, published from the probe, and what it sends back: rewards by kind and stamp, diagnostics."""

    def __init__(self, probe: Probe, node) -> None:
        self.probe, self.node = probe, node
        create = probe.node.create_publisher
        self.embeddings = create(Image, topics.EMBEDDINGS, SENSOR_QOS)
        self.demo = create(Image, topics.DEMO_EMBEDDINGS, LATCHED_QOS)
        self.episodes = create(String, topics.EPISODES, LATCHED_QOS)
        self.scene_latents = create(Image, topics.SCENE_LATENT, SENSOR_QOS)
        self.goal_latent = create(Image, topics.GOAL_LATENT, LATCHED_QOS)
        self.object_embeddings = create(Image, topics.GRASP2VEC_OBJECT_EMBEDDING, RELIABLE_QOS)
        self.goal_object = create(Image, topics.GOAL_OBJECT_EMBEDDING, LATCHED_QOS)
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
            rows = np.vstack([unit_rows(rng, CAMERAS, len(row)), row[None]])
            self.embeddings.publish(array_to_image(rows, '32FC1', ns_to_stamp(stamp), model_id))
            time.sleep(0.02)
        self.until(lambda: len(set(stamps) & set(self.rewards['imitation'])) >= len(stamps) // 2,
                   f'imitation rewards for {len(stamps)} embeddings')


@pytest.mark.ros
@pytest.mark.slow
def test_imitation_scores_embeddings_against_the_latched_demo_of_the_same_weights(probe):
    rng = np.random.default_rng(0)
    demo_stamps = np.array([50 * S + i * PERIOD_NS for i in range(12)])
    demo = EmbeddedDemo(DemoTrajectory(unit_rows(rng, len(demo_stamps), 6), demo_stamps), TCN_ID, 0.2)
    with node_process(NODE, 'reward', {'kinds': "['imitation']"}) as node:
        graph = RewardGraph(probe, node)
        probe.wait_for(lambda: graph.embeddings.get_subscription_count() > 0, TIMEOUT_S, 'the node to subscribe')
        first_episode, second_episode = 100 * S, 1000 * S
        graph.start_episode(first_episode)
        offsets = [round(demo.first_frame_s * S) + int(stamp - demo_stamps[0]) for stamp in demo_stamps]
        graph.until(lambda: graph.diagnosed('no_demo', topics.DEMO_EMBEDDINGS), 'a missing demo report',
                    lambda: graph.embeddings.publish(array_to_image(unit_rows(rng, CAMERAS + 1, 6), '32FC1',
                                                                    ns_to_stamp(first_episode), TCN_ID)))
        graph.demo.publish(array_to_image(demo.to_rows(), '32FC1', ns_to_stamp(int(demo_stamps[0])), demo.model_id))
        graph.until(lambda: graph.reported('imitation_demo_from', TCN_ID), 'the demo')

        # The demo's own embeddings at the times of its frames, then other embeddings at those times.
        demo_at = [first_episode + S + offset for offset in offsets]
        graph.start_episode(first_episode + S)
        graph.publish_embeddings(demo_at, demo.trajectory.embeddings.astype(np.float32), TCN_ID, rng)
        graph.start_episode(second_episode)
        other_at = [second_episode + offset for offset in offsets]
        others = unit_rows(rng, len(offsets), demo.trajectory.dim)
        graph.publish_embeddings(other_at, others, 'tcn:elsewhere/tcn.safetensors:step10:0123456789ab', rng)
        with probe.lock:
            imitation = dict(graph.rewards['imitation'])
        assert set(imitation) <= set(demo_at) | set(other_at), 'a reward stamped with no embedding\'s stamp'
        own = [imitation[stamp] for stamp in demo_at if stamp in imitation]
        for frame_id, reward, distance, zero in own:  # time-index alignment puts each on its own frame
            assert distance == pytest.approx(0.0, abs=1e-5) and zero == 0.0 and frame_id == TCN_ID
            assert reward == pytest.approx(-np.sqrt(DEFAULT_GAMMA), abs=1e-4)
        other = {i: imitation[stamp] for i, stamp in enumerate(other_at) if stamp in imitation}
        for i, (_, reward, distance, _) in other.items():
            assert distance == pytest.approx(np.linalg.norm(others[i] - demo.trajectory.embeddings[i]), abs=1e-5)
            assert reward == pytest.approx(-distance ** 2 - np.sqrt(DEFAULT_GAMMA + distance ** 2), abs=1e-4)
        assert min(reward for _, reward, _, _ in own) > max(reward for _, reward, _, _ in other.values())

        # Bad embeddings and embeddings of other weights are dropped and reported; the node goes on.
        bad_stamps = iter(range(other_at[-1] + S, other_at[-1] + 1000 * S, PERIOD_NS))
        wrong_width = unit_rows(rng, CAMERAS + 1, 5)
        graph.until(lambda: graph.diagnosed('bad_embedding', 'shape is (4, 5)'), 'a bad shape report',
                    lambda: graph.embeddings.publish(array_to_image(wrong_width, '32FC1',
                                                                    ns_to_stamp(next(bad_stamps)), TCN_ID)))
        other_weights = 'tcn:tcn.safetensors:step11:000000000000'
        graph.until(lambda: graph.diagnosed('model_mismatch', other_weights), 'a model mismatch report',
                    lambda: graph.embeddings.publish(array_to_image(unit_rows(rng, CAMERAS + 1, 6), '32FC1',
                                                                    ns_to_stamp(next(bad_stamps)), other_weights)))
        with probe.lock:
            assert set(graph.rewards['imitation']) == set(imitation)
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'Traceback' not in log, log[-3000:]


@pytest.mark.ros
@pytest.mark.slow
def test_latent_goal_and_grasp2vec_score_inputs_against_the_goal_of_the_same_model(probe):
    rng = np.random.default_rng(1)
    params = {'kinds': "['latent_goal', 'grasp2vec']", 'latent_goal_scale': 2.0, 'grasp2vec_scale': 0.5}
    with node_process(NODE, 'reward', params) as node:
        graph = RewardGraph(probe, node)
        stamps = iter(range(100 * S, 10_000 * S, PERIOD_NS))

        # Latent goal: nothing before a goal arrives; then -|z - z_g| per scene latent, stamped with it.
        scenes: dict[int, np.ndarray] = {}

        def publish_scene(model_id: str = VAE_ID) -> None:
            stamp = next(stamps)
            scenes[stamp] = rng.normal(size=(1, 4)).astype(np.float32)
            graph.scene_latents.publish(array_to_image(scenes[stamp], '32FC1', ns_to_stamp(stamp), model_id))
        graph.until(lambda: graph.diagnosed('no_latent_goal', topics.GOAL_LATENT), 'a missing goal report',
                    publish_scene)
        goal = rng.normal(size=(1, 4)).astype(np.float32)
        graph.goal_latent.publish(array_to_image(goal, '32FC1', ns_to_stamp(5 * S), VAE_ID))
        graph.until(lambda: graph.reported('latent_goal_from', f'{VAE_ID} at 5000000000 ns'), 'the goal latent')
        graph.until(lambda: len(graph.rewards['latent_goal']) >= 3, 'latent goal rewards', publish_scene)
        graph.until(lambda: graph.diagnosed('model_mismatch', OTHER_VAE_ID), 'a latent of another VAE refused',
                    lambda: publish_scene(OTHER_VAE_ID))
        with probe.lock:
            latent_rewards = dict(graph.rewards['latent_goal'])
        assert latent_rewards and set(latent_rewards) <= set(scenes)
        for stamp, (frame_id, reward, distance, zero) in latent_rewards.items():
            assert distance == pytest.approx(np.linalg.norm(scenes[stamp][0] - goal[0]), rel=1e-5)
            assert reward == pytest.approx(-2.0 * distance) and zero == 0.0 and frame_id == VAE_ID

        # Grasp2Vec: phi_o(g) . phi_o(o) per object embedding, stamped with o's stamp, once the goal's embedding is in.
        objects: dict[int, np.ndarray] = {}

        def publish_object(model_id: str = GRASP2VEC_ID) -> None:
            stamp = next(stamps)
            objects[stamp] = rng.normal(size=(1, 5)).astype(np.float32)
            graph.object_embeddings.publish(array_to_image(objects[stamp], '32FC1', ns_to_stamp(stamp), model_id))
        graph.until(lambda: graph.diagnosed('no_grasp2vec_goal', topics.GOAL_OBJECT_EMBEDDING),
                    'a missing goal object report', publish_object)
        goal_object = rng.normal(size=(1, 5)).astype(np.float32)
        graph.goal_object.publish(array_to_image(goal_object, '32FC1', ns_to_stamp(6 * S), GRASP2VEC_ID))
        graph.until(lambda: graph.reported('grasp2vec_goal_from', f'{GRASP2VEC_ID} at 6000000000 ns'),
                    'the goal object embedding')
        graph.until(lambda: len(graph.rewards['grasp2vec']) >= 2, 'grasp2vec rewards', publish_object)
        graph.until(lambda: graph.diagnosed('model_mismatch', VAE_ID), 'an embedding of another model refused',
                    lambda: publish_object(VAE_ID))
        with probe.lock:
            grasp_rewards = dict(graph.rewards['grasp2vec'])
        assert grasp_rewards and set(grasp_rewards) <= set(objects)
        for stamp, (frame_id, reward, score, zero) in grasp_rewards.items():
            goal_vector, grasped = goal_object[0], objects[stamp][0]
            cosine = goal_vector @ grasped / np.linalg.norm(goal_vector) / np.linalg.norm(grasped)
            assert score == pytest.approx(float(cosine), rel=1e-5)  # grasp2vec_normalize's default
            assert reward == pytest.approx(0.5 * score) and zero == 0.0 and frame_id == GRASP2VEC_ID
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'Traceback' not in log, log[-3000:]


HOSTILE_EVENTS = ['{"kind": "episode", "stamp": {"sec": Infinity, "nanosec": 0}}', '[' * 100_000,
                  '{"kind": "episode", "stamp": {"sec": 1e400, "nanosec": 0}}',
                  '{"kind": "episode", "stamp": {"sec": -7, "nanosec": 0}}']


@pytest.mark.ros
@pytest.mark.slow
def test_hostile_events_stamps_goals_and_demos_are_counted_and_the_node_keeps_scoring(probe):
    rng = np.random.default_rng(2)
    with node_process(NODE, 'reward', {}) as node:
        graph = RewardGraph(probe, node)
        probe.wait_for(lambda: graph.episodes.get_subscription_count() > 0, TIMEOUT_S, 'the node to subscribe')
        for text in HOSTILE_EVENTS:  # each of these killed the node; /sim/episode is latched: it died again at start
            graph.episodes.publish(String(data=text))
        graph.until(lambda: graph.counted('bad_event'), 'the hostile events counted')
        backwards = np.array([[1.0, 0.0], [0.5, 1.0]], dtype=np.float32)
        graph.demo.publish(array_to_image(backwards, '32FC1', ns_to_stamp(S), TCN_ID))
        graph.until(lambda: graph.diagnosed('bad_demo', 'strictly increasing'), 'the demo with time going back refused')
        goal = rng.normal(size=(1, 4)).astype(np.float32)
        graph.goal_latent.publish(array_to_image(goal * 0 + 3e38, '32FC1', ns_to_stamp(5 * S), VAE_ID))
        graph.until(lambda: graph.diagnosed('bad_goal', 'beyond'), 'the absurd goal refused')
        graph.goal_latent.publish(array_to_image(goal, '32FC1', ns_to_stamp(5 * S), VAE_ID))
        graph.until(lambda: graph.reported('latent_goal_from', f'{VAE_ID} at 5000000000 ns'), 'the goal latent')

        # A scene latent with a negative stamp, which the node would republish on its reward, then good ones.
        negative = array_to_image(goal, '32FC1', ns_to_stamp(0), VAE_ID)
        negative.header.stamp.sec = -3
        graph.until(lambda: graph.counted('bad_stamp'), 'the negative stamp counted',
                    lambda: graph.scene_latents.publish(negative))
        good_stamps = iter(range(10 * S, 1000 * S, PERIOD_NS))
        graph.until(lambda: len(graph.rewards['latent_goal']) >= 2, 'latent goal rewards after the bad stamp',
                    lambda: graph.scene_latents.publish(array_to_image(goal, '32FC1', ns_to_stamp(next(good_stamps)),
                                                                       VAE_ID)))
        scene_topic = topics.in_namespace(topics.SCENE_LATENT)
        graph.until(lambda: any(int(values.get(f'received_{scene_topic}', '0')) > 2
                                and f'receive_hz_{scene_topic}' in values and 'latent_goal_hz' in values
                                for _, values in graph.diagnostics), 'receive and reward rates on /diagnostics')
        assert node.poll() is None
    log = ''.join(node.output)
    assert 'Traceback' not in log, log[-3000:]
