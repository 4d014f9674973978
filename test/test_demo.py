"""The main job (`ssl-robot demo`): its report from a made-up recording, and the real run in the sim graph."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ssl_robot import topics
from ssl_robot.demo import (
    DemoRecording,
    approach_summary,
    camera_stamp_agreement,
    format_reward_streams,
    plot_rewards,
    waypoint_rewards,
)

S = 1_000_000_000


def reach_events(scores_survey, scores_approach, failure=None):
    """Status events as goal_reacher_node publishes them: a waypoint per second, then 'done'."""
    events, t = [], 1
    for phase, scores in (('survey', scores_survey), ('approach', scores_approach)):
        for index, _ in enumerate(scores):
            events.append({'kind': 'goal_reaching', 'stamp': topics.stamp_dict(t * S), 'phase': phase, 'index': index,
                           'position': [0.5 + 0.1 * index, 0.0, 0.2]})
            t += 1
    events.append({'kind': 'goal_reaching', 'stamp': topics.stamp_dict(t * S), 'phase': 'done', 'failure': failure,
                   'survey': [{'position': [0, 0, 0], 'score': s} for s in scores_survey],
                   'approach': [{'position': [0, 0, 0], 'score': s} for s in scores_approach]})
    return events


def recording(rewards=None, failure=None) -> DemoRecording:
    times = np.arange(1.0, 6.0, 0.1)
    default = {'latent_goal': np.stack([times, -np.floor(times)], axis=1)}
    return DemoRecording(camera_stamps={'/cameras/a/image_raw': {1, 2, 3}, '/cameras/b/image_raw': {2, 3}},
                         rewards=default if rewards is None else rewards,
                         reach=reach_events([-1.0, -2.0], [-2.0, -1.5, -1.0], failure),
                         goal_image=np.zeros((8, 8, 3), np.uint8))


def test_rewards_are_cut_at_the_waypoints_by_observation_stamp():
    waypoints = waypoint_rewards(recording())
    assert [(w.phase, w.index) for w in waypoints] == [('survey', 0), ('survey', 1), ('approach', 0),
                                                       ('approach', 1), ('approach', 2)]
    for second, waypoint in enumerate(waypoints, start=1):
        assert (waypoint.start_s, waypoint.end_s) == (second, second + 1)
        np.testing.assert_allclose(waypoint.rewards['latent_goal'], -second)
        assert len(waypoint.rewards['latent_goal']) == 10
    assert [w.score for w in waypoints] == [-1.0, -2.0, -2.0, -1.5, -1.0]   # from the 'done' event, in order


def test_reward_table_has_a_row_per_waypoint_and_marks_empty_ones():
    rewards = {'latent_goal': np.array([[1.5, -0.5]]), 'grasp2vec': np.array([[3.2, 0.7]])}
    table = format_reward_streams(recording(rewards), waypoint_rewards(recording(rewards)))
    lines = table.splitlines()
    assert '/reward/grasp2vec 1 messages' in lines[0] and '/reward/latent_goal 1 messages' in lines[0]
    assert len(lines) == 2 + 5 + 1
    # Columns in kind order (grasp2vec, latent_goal), each a mean and a count, then the reacher's score.
    assert lines[2].split()[-5:] == ['-', '0', '-0.5000', '1', '-1.0000']  # survey 0: a latent_goal reward only
    assert lines[4].split()[-5:] == ['+0.7000', '1', '-', '0', '-2.0000']  # approach 0: the grasp2vec one at 3.2 s


def test_approach_summary_gives_the_rise_and_its_rank_correlation_or_the_failure():
    assert approach_summary(recording()) == (
        'goal reaching: the latent_goal reward went from -2.0000 at the approach start to -1.0000 at the chosen '
        'position; Spearman rank correlation with progress along the approach +1.00')
    assert approach_summary(recording(failure='no rewards')) == 'goal reaching failed: no rewards'
    unfinished = recording()
    unfinished.reach.pop()
    assert 'did not finish' in approach_summary(unfinished)


def test_camera_stamp_agreement_counts_shared_stamps():
    assert camera_stamp_agreement(recording().camera_stamps) == (2, 3)
    assert camera_stamp_agreement({}) == (0, 0)


def test_reward_plot_is_a_png(tmp_path):
    path = plot_rewards(recording(), waypoint_rewards(recording()), tmp_path / 'rewards.png')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.ros
@pytest.mark.slow
def test_main_job_reaches_toward_an_imagined_goal_and_reports_the_rewards(tmp_path, ros_domain_id, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    result = subprocess.run([sys.executable, '-m', 'ssl_robot.cli', 'demo', '--out', str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    out = result.stdout
    assert 'goal reaching: the latent_goal reward went from' in out
    table = out[out.index('reward streams:'):]
    assert table.count('\nsurvey ') == 9 and table.count('\napproach ') == 6
    assert '     -\n' not in table, 'a waypoint the reacher did not score'
    assert (tmp_path / 'rewards.png').read_bytes()[:4] == b'\x89PNG'
    shared, seen = (int(v) for v in out.split('all scene cameras: ')[1].split(' ticks')[0].split(' of '))
    assert seen > 0 and shared >= seen - 1   # all but, at most, a tick cut at the recording's edge
