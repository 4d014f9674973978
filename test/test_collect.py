"""`ssl-robot collect`: the sim runs in-process and every tick goes into the bag (no ROS graph needed)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ssl_robot import cli, topics
from ssl_robot.apps.collect import collect
from ssl_robot.data.bag_index import index_bag
from ssl_robot.data.reader import find_bags
from ssl_robot.data.samplers import bag_episodes
from ssl_robot.sim.config import CameraRandomization, load_sim_config

pytestmark = pytest.mark.slow

CAMERAS = [camera.name for camera in load_sim_config().cameras]
TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def read_bag(path) -> dict[str, list]:
    """topic -> [(bag timestamp, decoded message)]"""
    messages: dict[str, list] = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(
                (timestamp, TYPESTORE.deserialize_cdr(raw, connection.msgtype)))
    return messages


def header_stamps(messages: list) -> set[int]:
    return {m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for _, m in messages}


def test_grasp_mode_records_every_image_an_event_refers_to(tmp_path):
    # record_every=0: only the keyframe ticks can provide the event images.
    report = collect('grasp', 1, tmp_path / 'bag', seed=1, record_every=0, attempts_per_episode=2,
                     progress=lambda _: None)
    assert report.episodes == 1 and report.grasp_attempts == 2
    bag = read_bag(tmp_path / 'bag')
    events = [topics.decode_event(m.data, 'grasp') for _, m in bag[topics.GRASP_EVENTS]]
    assert len(events) == 2
    for event in events:
        for key in ('s_pre', 's_post'):
            stamp = topics.stamp_from_dict(event[key])
            for camera in CAMERAS:
                assert stamp in header_stamps(bag[topics.camera_image(camera)]), (key, camera)
                assert stamp in header_stamps(bag[topics.camera_segmentation(camera)]), (key, camera)
        if event['success']:
            assert topics.stamp_from_dict(event['o']) in header_stamps(
                bag[topics.camera_image(topics.OBJECT_CAMERA)])
    # Keyframes only: 2 attempts x (s_pre, s_post, and o when successful).
    assert len(bag[topics.camera_image(CAMERAS[0])]) <= 2 * 3
    # State is recorded on every tick, stamped like the tick.
    assert len(bag[topics.GROUND_TRUTH]) == report.ticks
    assert len(bag[topics.EPISODES]) == 1


def test_motion_mode_records_episodes_with_sampled_synchronized_images(tmp_path):
    report = collect('motion', 2, tmp_path / 'bag', seed=5, record_every=3, progress=lambda _: None)
    bag = read_bag(tmp_path / 'bag')
    episodes = [topics.decode_event(m.data, 'episode') for _, m in bag[topics.EPISODES]]
    assert [e['episode'] for e in episodes] == [0, 1]
    assert episodes[0]['seed'] != episodes[1]['seed']
    stamps = [header_stamps(bag[topics.camera_image(camera)]) for camera in CAMERAS]
    assert all(s == stamps[0] for s in stamps), 'cameras of one tick must share the stamp'
    assert len(stamps[0]) == pytest.approx(report.ticks / 3, abs=1)
    # Bag timestamps are the sim stamps, so offline readers see the sim's timeline.
    timestamp, message = bag[topics.camera_image(CAMERAS[0])][0]
    assert timestamp == message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def test_randomized_camera_poses_are_recorded_per_episode_and_read_back_by_the_data_reader(tmp_path):
    status = cli.main(['collect', '--mode', 'motion', '--episodes', '2', '-o', str(tmp_path / 'bag'), '--seed', '5',
                       '--record-every', '10000', '--rig', 'held_out_a', '--camera-position-m', '0.04',
                       '--camera-fov-deg', '2'])
    assert status == 0
    (index,) = [index_bag(bag, []) for bag in find_bags([tmp_path / 'bag'])]
    episodes = bag_episodes(index, 0, 0)
    rig = {camera.name: camera for camera in load_sim_config(rig='held_out_a').cameras}
    assert [episode.rig for episode in episodes] == ['held_out_a', 'held_out_a']
    poses = [episode.camera_poses for episode in episodes]
    assert poses[0] != poses[1] and all(list(pose) == list(rig) for pose in poses)
    for pose in poses:
        for name, camera in pose.items():
            assert 0 < np.linalg.norm(np.subtract(camera.eye, rig[name].eye)) <= 0.04 + 1e-9
            assert 0 < abs(camera.fov_deg - rig[name].fov_deg) <= 2
            assert camera.target == rig[name].target   # no aim bound: the cameras still look at the rig's target
    # Deterministic by seed: the same command draws the same poses.
    collect('motion', 2, tmp_path / 'again', seed=5, record_every=10_000, rig='held_out_a', progress=lambda _: None,
            camera_randomization=CameraRandomization(position_m=0.04, fov_deg=2.0))
    (again,) = [index_bag(bag, []) for bag in find_bags([tmp_path / 'again'])]
    assert [episode.camera_poses for episode in bag_episodes(again, 0, 0)] == poses


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / 'exists').mkdir()
    for args, expected in ((['--object-set', 'no_such_set'], 'no_such_set'),
                           (['--image-size', '0', '64'], 'width'),
                           (['--episodes', '0'], 'episodes'),
                           (['--max-minutes', '0'], 'max_minutes'),
                           (['--record-every', '0'], 'record_every must be >= 1 in motion mode'),
                           (['--camera-position-m', '-1'], 'position_m')):
        command = [sys.executable, '-m', 'ssl_robot.cli', 'collect', '--mode', 'motion', '--episodes', '1',
                   '-o', str(tmp_path / 'new'), *args]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], result.stderr
    result = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'collect', '--mode', 'motion', '--episodes', '1',
                             '-o', str(tmp_path / 'exists')], capture_output=True, text=True)
    assert result.returncode == 1 and 'exists' in result.stderr


def test_a_time_budget_stops_at_an_episode_boundary_before_an_episode_that_would_overrun(tmp_path):
    # A clock that advances 10 s each time it is read: at the start and once per episode end, so every episode
    # takes 10 s. With a 35 s budget the 3rd ends at 30 s, and a 4th would end at 40 s: it is not begun.
    readings = iter(range(0, 1000, 10))
    report = collect('motion', 10, tmp_path / 'bag', seed=5, record_every=10_000, max_minutes=35 / 60,
                     progress=lambda _: None, clock=lambda: float(next(readings)))
    assert report.episodes == 3 and report.out_of_time
    assert 'stopped early' in report.summary()
    episodes = [topics.decode_event(m.data, 'episode') for _, m in read_bag(tmp_path / 'bag')[topics.EPISODES]]
    assert [e['episode'] for e in episodes] == [0, 1, 2]  # the 4th never started


def test_a_budget_that_holds_every_episode_does_not_stop_early(tmp_path):
    readings = iter(range(0, 1000, 10))
    report = collect('motion', 2, tmp_path / 'bag', seed=5, record_every=10_000, max_minutes=1.0,
                     progress=lambda _: None, clock=lambda: float(next(readings)))
    assert report.episodes == 2 and not report.out_of_time
    assert 'stopped early' not in report.summary()
