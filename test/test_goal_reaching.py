"""The main job's scripted reach (ssl_robot.goal_reaching), driven by a made-up reward: -distance to a hidden goal."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.goal_reaching import APPROACH, SURVEY, GoalReachingScript, survey_grid

S = 1_000_000_000
TICK = S // 30
HIDDEN_GOAL = np.array([0.55, 0.08, 0.2])


def reward_at(position) -> float:
    return -float(np.linalg.norm(np.asarray(position) - HIDDEN_GOAL))


def run(script: GoalReachingScript, reward_lag_ticks: int = 0, rewarded=lambda waypoint: True):
    """Simulate a 30 Hz camera and a reward node lagging reward_lag_ticks behind; return the waypoints in order."""
    now = 0
    waypoints = [script.start(now)]
    pending: list[tuple[int, int, float]] = []  # (arrival, stamp, reward)
    while not script.done:
        now += TICK
        if rewarded(script.current):
            pending.append((now + reward_lag_ticks * TICK, now, reward_at(script.current.position)))
        for arrival, stamp, value in [p for p in pending if p[0] <= now]:
            script.add_reward(stamp, value)
        pending = [p for p in pending if p[0] > now]
        waypoint = script.update(now)
        if waypoint is not None:
            waypoints.append(waypoint)
        assert now < 600 * S, 'the script never finished'
    return waypoints


def test_survey_grid_spans_the_square_row_by_row():
    grid = survey_grid((0.6, 0.0, 0.2), 0.1, 3)
    assert len(grid) == 9
    assert grid[0] == pytest.approx((0.5, -0.1, 0.2)) and grid[1] == pytest.approx((0.5, 0.0, 0.2))
    assert grid[-1] == pytest.approx((0.7, 0.1, 0.2))


@pytest.mark.parametrize('lag_ticks', [0, 10])
def test_survey_then_straight_approach_from_worst_to_best(lag_ticks):
    grid = survey_grid((0.6, 0.0, 0.2), 0.1, 3)
    script = GoalReachingScript(grid, hold_s=1.0, score_window_s=0.4, approach_steps=5)
    waypoints = run(script, reward_lag_ticks=lag_ticks)

    assert [w.phase for w in waypoints] == [SURVEY] * 9 + [APPROACH] * 5
    assert [w.position for w in waypoints[:9]] == grid
    scores = dict(script.survey_scores())
    assert all(score == pytest.approx(reward_at(p)) for p, score in scores.items())
    best = max(grid, key=reward_at)
    worst = min(grid, key=reward_at)
    approach = [np.array(w.position) for w in waypoints[9:]]
    np.testing.assert_allclose(approach[0], worst)
    np.testing.assert_allclose(approach[-1], best)
    steps = np.diff(np.array(approach), axis=0)
    np.testing.assert_allclose(steps, np.repeat(steps[:1], len(steps), axis=0), atol=1e-12)  # a straight line
    approach_rewards = [score for _, score in script.approach_scores()]
    assert all(a < b for a, b in zip(approach_rewards, approach_rewards[1:]))
    assert script.failure is None


def test_rewards_outside_the_scoring_window_are_not_credited():
    script = GoalReachingScript([(0, 0, 0), (1, 0, 0)], hold_s=1.0, score_window_s=0.25, approach_steps=2)
    first = script.start(0)
    script.add_reward(first.start_ns + S // 2, -100.0)           # still moving there
    script.add_reward(first.start_ns + 9 * S // 10, -1.0)        # settled
    assert script.survey_scores()[0][1] == -1.0


def test_no_reward_during_the_survey_ends_with_a_failure_that_says_so():
    script = GoalReachingScript(survey_grid((0.6, 0.0, 0.2), 0.1, 2), hold_s=0.5, score_window_s=0.2,
                                approach_steps=3)
    waypoints = run(script, rewarded=lambda waypoint: False)
    assert all(w.phase == SURVEY for w in waypoints)
    assert script.done and 'received a reward' in script.failure


@pytest.mark.parametrize('kwargs, message', [
    (dict(hold_s=0.0), 'hold_s'),
    (dict(score_window_s=2.0), 'must not exceed hold_s'),
    (dict(approach_steps=1), 'approach_steps'),
    (dict(decision_delay_s=float('nan')), 'decision_delay_s'),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    settings = dict(hold_s=1.0, score_window_s=0.5, approach_steps=4) | kwargs
    with pytest.raises(ValueError, match=message):
        GoalReachingScript([(0, 0, 0), (1, 0, 0)], **settings)


def test_survey_grid_refuses_a_single_position():
    with pytest.raises(ValueError, match='per_side'):
        survey_grid((0.6, 0.0, 0.2), 0.1, 1)


def test_score_belongs_to_the_waypoint_not_to_its_position():
    """The approach starts where a survey waypoint was: each keeps its own rewards."""
    script = GoalReachingScript([(0, 0, 0), (1, 0, 0)], hold_s=1.0, score_window_s=0.5, approach_steps=2,
                                decision_delay_s=0.0)
    first = script.start(0)
    script.add_reward(8 * S // 10, -2.0)
    second = script.update(S)
    script.add_reward(S + 8 * S // 10, -1.0)
    approach_start = script.update(2 * S)
    assert approach_start.position == first.position and approach_start is not first
    assert script.score(first) == -2.0 and script.score(second) == -1.0 and script.score(approach_start) is None
