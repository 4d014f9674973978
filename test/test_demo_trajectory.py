"""ssl_robot.inference.demo_embedding and demo_trajectory: a demo episode embedded from a sim bag as the embedding node
embeds live frames, its message rows, and the episode clock that lines live stamps up with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot import topics
from ssl_robot.apps.collect import collect
from ssl_robot.data.reader import BagError
from ssl_robot.inference.demo_embedding import embed_demo
from ssl_robot.rewards.demonstration import EmbeddedDemo, EpisodeClock, StampRejected
from ssl_robot.inference.embedder import MultiViewEmbedder
from ssl_robot.inference.model_holder import LoadedModel
from ssl_robot.params.embedding import DEFAULT_CAMERA_TOPICS
from ssl_robot.rewards.functions import DemoTrajectory
from test_inference import TINY_MFTCN, write_checkpoint

CAMERAS = DEFAULT_CAMERA_TOPICS
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
S = 1_000_000_000


def write_demo_bag(path: Path, seed: int = 3) -> Path:
    """One scripted motion episode filmed by the default rig's three cameras at 32x24 px."""
    collect('motion', 1, path, seed=seed, image_size=(32, 24), progress=lambda _: None)
    return path


def recorded_sets(bag: Path) -> tuple[int, list[int], list[list[np.ndarray]]]:
    """Read with rosbags alone: the episode event's stamp, and the stamps and images of every camera set (the sim
    stamps its cameras identically), in time order."""
    images: dict[str, dict[int, np.ndarray]] = {camera: {} for camera in CAMERAS}
    episode_starts = []
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages():
            message = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == topics.EPISODES:
                episode_starts.append(topics.stamp_from_dict(topics.decode_event(message.data, 'episode')['stamp']))
            elif connection.topic in images:
                assert message.encoding == 'rgb8' and message.step == 3 * message.width
                stamp = message.header.stamp.sec * S + message.header.stamp.nanosec
                images[connection.topic][stamp] = message.data.reshape(message.height, message.width, 3)
    stamps = sorted(set.intersection(*(set(by_stamp) for by_stamp in images.values())))
    assert len(episode_starts) == 1 and len(stamps) > 10
    return episode_starts[0], stamps, [[images[camera][stamp] for camera in CAMERAS] for stamp in stamps]


@pytest.fixture(scope='module')
def demo_bag(tmp_path_factory) -> Path:
    return write_demo_bag(tmp_path_factory.mktemp('demo') / 'motion')


@pytest.mark.slow
@pytest.mark.parametrize('method', ['tcn', 'mftcn'])
def test_demo_rows_are_the_fused_live_embeddings_of_its_camera_sets_timed_from_the_episode_start(
        demo_bag, tmp_path, method):
    model = LoadedModel(write_checkpoint(tmp_path / f'{method}.safetensors', method), method, device='cpu')
    demo = embed_demo(demo_bag, 0, model, CAMERAS)

    start_ns, stamps, sets = recorded_sets(demo_bag)
    live = MultiViewEmbedder(LoadedModel(model.path, method, device='cpu'), len(CAMERAS))
    expected = [(stamp, embeddings.vectors[-1]) for stamp, frames in zip(stamps, sets)
                if (embeddings := live.embed(stamp, frames)) is not None]
    # An mfTCN embeds from its first full clip on, so its demo starts that much after the episode's first frame.
    lookback = TINY_MFTCN['stride'] * (TINY_MFTCN['num_frames'] - 1) if method == 'mftcn' else 0
    assert len(expected) == len(stamps) - lookback
    assert demo.model_id == model.model_id
    assert demo.trajectory.stamps_ns.tolist() == [stamp for stamp, _ in expected]
    np.testing.assert_allclose(demo.trajectory.embeddings, np.stack([row for _, row in expected]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(demo.trajectory.embeddings, axis=1), 1.0, rtol=1e-5)
    assert demo.first_frame_s == pytest.approx((stamps[lookback] - start_ns) / S)
    if method == 'mftcn':
        assert demo.first_frame_s > 0


@pytest.mark.slow
def test_a_missing_episode_camera_or_too_short_an_episode_is_a_one_line_error(demo_bag, tmp_path):
    model = LoadedModel(write_checkpoint(tmp_path / 'tcn.safetensors'), 'tcn', device='cpu')
    with pytest.raises(ValueError, match=r'episode 1 has no frames .*episodes with frames: \[0\]'):
        embed_demo(demo_bag, 1, model, CAMERAS)
    missing = topics.camera_image('no_such_camera')
    with pytest.raises(BagError, match=missing):
        embed_demo(demo_bag, 0, model, [CAMERAS[0], missing])
    with pytest.raises(ValueError, match='episode must be an int >= 0, got -1'):
        embed_demo(demo_bag, -1, model, CAMERAS)
    with pytest.raises(ValueError, match='camera_topics is empty'):
        embed_demo(demo_bag, 0, model, [])
    _, stamps, _ = recorded_sets(demo_bag)
    long_clips = {**TINY_MFTCN, 'stride': len(stamps)}
    mftcn = LoadedModel(write_checkpoint(tmp_path / 'mftcn.safetensors', 'mftcn', long_clips), 'mftcn', device='cpu')
    with pytest.raises(ValueError, match=f'has {len(stamps)} camera sets, too few for one mftcn:'):
        embed_demo(demo_bag, 0, mftcn, CAMERAS)


def demo_with(first_frame_s: float, model_id: str = 'tcn:tcn.safetensors:step10:0123456789ab') -> EmbeddedDemo:
    return EmbeddedDemo(DemoTrajectory(np.eye(3), np.array([0, S, 2 * S])), model_id, first_frame_s)


def test_demo_time_takes_off_the_gap_before_the_first_frame_and_stops_at_zero():
    demo = demo_with(0.2)
    assert demo.demo_time(1.2) == pytest.approx(1.0)
    assert demo.demo_time(0.2) == 0.0
    assert demo.demo_time(0.1) == 0.0


def test_demo_matches_embeddings_of_the_same_method_and_weights_whatever_the_file_is_called():
    demo = demo_with(0.0)
    assert demo.matches('tcn:tcn.safetensors:step10:0123456789ab')
    assert demo.matches('tcn:copy:of:tcn.safetensors:step10:0123456789ab')
    assert not demo.matches('tcn:tcn.safetensors:step11:ba9876543210')
    assert not demo.matches('mftcn:tcn.safetensors:step10:0123456789ab')
    assert not demo.matches('')


def test_demo_rows_carry_times_from_the_episode_start_and_come_back_as_the_same_demo():
    """The embedding node publishes the demo as these rows; the reward node, which has no model, reads them back."""
    demo = EmbeddedDemo(DemoTrajectory(np.eye(3), np.array([5 * S, 5 * S + S // 10, 7 * S])), 'tcn:a:step1:00', 0.25)
    rows = demo.to_rows()
    assert rows.dtype == np.float32 and rows.shape == (3, 4)
    np.testing.assert_allclose(rows[:, 0], [0.25, 0.35, 2.25], atol=1e-6)
    back = EmbeddedDemo.from_rows(rows, demo.model_id)
    assert back.model_id == demo.model_id and back.first_frame_s == pytest.approx(0.25)
    np.testing.assert_array_equal(back.trajectory.embeddings, np.eye(3))
    np.testing.assert_allclose(back.trajectory.times_s, demo.trajectory.times_s, atol=1e-6)
    for bad, why in ((np.zeros((0, 4)), 'got shape'), (np.zeros((2, 1)), 'got shape'),
                     (np.array([[-1.0, 0.0]]), 'before its episode started'),
                     (np.array([[1.0, 0.0], [1.0, 1.0]]), 'strictly increasing')):
        with pytest.raises(ValueError, match=why):
            EmbeddedDemo.from_rows(bad, demo.model_id)


def test_clock_counts_from_the_first_stamp_until_an_episode_event_arrives():
    clock = EpisodeClock()
    assert clock.observe(10 * S) == (0.0, True)
    assert clock.observe(10 * S + S // 2) == (0.5, False)
    assert clock.start_episode(9 * S)
    assert clock.observe(11 * S) == (2.0, True)
    assert clock.observe(12 * S) == (3.0, False)


def test_clock_rejects_stamps_going_back_and_leftovers_of_the_previous_episode():
    clock = EpisodeClock()
    clock.start_episode(10 * S)
    assert clock.observe(10 * S) == (0.0, True)
    assert clock.observe(11 * S) == (1.0, False)
    for stamp in (11 * S, 11 * S - 1):
        with pytest.raises(StampRejected, match=f'stamp {stamp} ns is not after the previous {11 * S} ns') as err:
            clock.observe(stamp)
        assert err.value.kind == 'stamp_backwards'
    assert clock.observe(11 * S + 1) == pytest.approx((1.0, False))

    assert clock.start_episode(20 * S)
    with pytest.raises(StampRejected, match=f'before the episode start {20 * S} ns') as err:
        clock.observe(20 * S - S // 10)
    assert err.value.kind == 'before_episode'
    assert clock.observe(20 * S + S // 10) == (0.1, True)


def test_a_repeated_episode_event_changes_nothing():
    clock = EpisodeClock()
    assert clock.start_episode(5 * S)
    assert clock.observe(6 * S) == (1.0, True)
    assert not clock.start_episode(5 * S)
    assert clock.observe(7 * S) == (2.0, False)


def test_time_jumping_back_further_than_the_clock_jump_starts_a_new_timeline():
    clock = EpisodeClock(clock_jump_ns=S)
    clock.start_episode(100 * S)
    assert clock.observe(101 * S) == (1.0, True)
    assert clock.observe(3 * S) == (0.0, True)  # a restarted simulator, its episode event lost
    assert clock.observe(4 * S) == (1.0, False)
    clock.start_episode(200 * S)
    assert clock.observe(2 * S) == (0.0, True)  # back from an event's start, before any observation
    with pytest.raises(ValueError, match='clock_jump_ns must be > 0, got 0'):
        EpisodeClock(clock_jump_ns=0)
