"""Unit tests of ssl_robot.rewards.evaluation: rank correlation, pairwise AUC and the scripted arm paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_robot.rewards.evaluation import TimedPath, goal_ranked_first, ranking_auc, spearman_rho, straight_path


def test_goal_ranked_first_scores_each_trays_objects_against_images_from_other_trays():
    # Tray 0 holds a (small embedding) and b (large, in another direction); tray 1 an image of each, tray 2 only a
    # (one object: no ranking to judge).
    embeddings = np.array([[1.0, 0.0], [6.0, 8.0], [1.0, 0.1], [0.5, 0.9], [2.0, 0.0]])
    objects = ['a', 'b', 'a', 'b', 'a']
    episodes = [0, 0, 1, 1, 2]
    # Tray 0: goals a (rows 2, 4) and b (row 3); tray 1: goals a (rows 0, 4) and b (row 1).
    cosine = goal_ranked_first(embeddings, objects, episodes, normalize=True)
    dot = goal_ranked_first(embeddings, objects, episodes, normalize=False)
    assert cosine == {0: (3, 3), 1: (3, 3)}
    # In tray 0 the dot product prefers b's large embedding whatever the goal: only b's own goal hits. In tray 1 the
    # objects' embeddings are of similar size, and it ranks as the cosine does.
    assert dot == {0: (1, 3), 1: (3, 3)}


def test_goal_ranked_first_needs_one_row_per_grasp():
    with pytest.raises(ValueError, match='need .N, D. embeddings'):
        goal_ranked_first(np.zeros((3, 2)), ['a', 'b'], [0, 0, 1], normalize=True)


def test_spearman_rho_reads_ranks_not_values():
    progress = [0, 1, 2, 3, 4]
    assert spearman_rho(progress, [-9.0, -5.0, -4.9, -0.1, 0.0]) == pytest.approx(1.0)
    assert spearman_rho(progress, np.exp(progress)) == pytest.approx(1.0)   # monotone, far from linear
    assert spearman_rho(progress, [0.0, -1.0, -2.0, -3.0, -4.0]) == pytest.approx(-1.0)
    # One swapped neighbour pair of five: 1 - 6 * 2 / (5 * 24).
    assert spearman_rho(progress, [1.0, 3.0, 2.0, 4.0, 5.0]) == pytest.approx(0.9)


def test_spearman_rho_averages_tied_ranks():
    # Ranks of y: 1, 2.5, 2.5, 4; Pearson correlation of (1, 2, 3, 4) with them.
    expected = np.corrcoef([1, 2, 3, 4], [1, 2.5, 2.5, 4])[0, 1]
    assert spearman_rho([0, 1, 2, 3], [0.0, 1.0, 1.0, 2.0]) == pytest.approx(expected)


@pytest.mark.parametrize('progress, rewards, message', [
    ([0, 1], [0.0, 1.0], 'at least 3'),
    ([0, 1, 2], [0.0, 1.0], 'pair up'),
    ([0, 1, 2], [1.0, 1.0, 1.0], 'rewards are all 1.0'),
    ([2, 2, 2], [0.0, 1.0, 2.0], 'progress are all 2.0'),
    ([0, 1, 2], [0.0, math.nan, 1.0], 'rewards must be a flat sequence of finite numbers'),
])
def test_spearman_rho_refuses_what_has_no_rank_correlation(progress, rewards, message):
    with pytest.raises(ValueError, match=message):
        spearman_rho(progress, rewards)


def test_ranking_auc_counts_ordered_pairs_and_ties_half():
    assert ranking_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert ranking_auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    # Pairs: 3>1 yes, 3>5 no, 0>1 no, 0>5 no, plus 1 vs 1 tied: (1 + 0.5) / 6.
    assert ranking_auc([3.0, 0.0, 1.0], [1.0, 5.0]) == pytest.approx(1.5 / 6)
    assert ranking_auc([2.0], [2.0]) == 0.5


@pytest.mark.parametrize('positives, negatives, message', [
    ([], [1.0], 'at least one positive and one negative'),
    ([1.0], [], 'at least one positive and one negative'),
    ([[1.0]], [1.0], 'positives must be a flat sequence'),
    ([1.0], [math.inf], 'negatives must be a flat sequence of finite numbers'),
])
def test_ranking_auc_refuses_bad_input(positives, negatives, message):
    with pytest.raises(ValueError, match=message):
        ranking_auc(positives, negatives)


def test_straight_path_runs_evenly_from_start_to_end():
    path = straight_path((0.7, 0.2, 0.3), (0.5, 0.0, 0.1), 4)
    assert len(path) == 5
    assert path[0] == pytest.approx((0.7, 0.2, 0.3)) and path[-1] == pytest.approx((0.5, 0.0, 0.1))
    steps = np.diff(np.array(path), axis=0)
    np.testing.assert_allclose(steps, np.tile([-0.05, -0.05, -0.05], (4, 1)), atol=1e-12)
    assert all(isinstance(v, float) for position in path for v in position)


@pytest.mark.parametrize('start, end, steps, message', [
    ((0, 0), (1, 1, 1), 2, 'start must be 3 finite numbers'),
    ((0, 0, 0), (1, math.nan, 1), 2, 'end must be 3 finite numbers'),
    ((0, 0, 0), (1, 1, 1), 0, 'steps must be an int >= 1, got 0'),
    ((0, 0, 0), (1, 1, 1), 2.0, 'steps must be an int >= 1, got 2.0'),
])
def test_straight_path_refuses_bad_input(start, end, steps, message):
    with pytest.raises(ValueError, match=message):
        straight_path(start, end, steps)


def test_timed_path_holds_float_times_and_positions():
    path = TimedPath((0, 1.5, 3), ((0.7, 0.1, 0.3), (0.5, 0.0, 0.1), np.array([0.6, -0.1, 0.2])))
    assert path.times_s == (0.0, 1.5, 3.0) and all(isinstance(t, float) for t in path.times_s)
    assert path.positions[2] == (0.6, -0.1, 0.2) and isinstance(path.positions[2][0], float)


@pytest.mark.parametrize('times, positions, message', [
    ((), (), 'at least one'),
    ((0.0, 1.0), ((0, 0, 0),), 'one time per position'),
    ((1.0, 1.0), ((0, 0, 0), (1, 1, 1)), 'strictly increasing'),
    ((-1.0,), ((0, 0, 0),), '>= 0'),
    ((0.0,), ((0, 0),), 'TimedPath position 0 must be 3 finite numbers'),
])
def test_timed_path_refuses_bad_schedules(times, positions, message):
    with pytest.raises(ValueError, match=message):
        TimedPath(times, positions)
