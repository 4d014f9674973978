"""ssl_robot.rewards.relabel: RIG goal sources, Grasp2Vec posthoc labels and auxiliary goals."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_robot.rewards.relabel import (GoalSource, LatentRelabelConfig, Transitions, assign_goal_sources,
                               auxiliary_grasp_goals, posthoc_grasp_labels)

LATENT_DIM = 3


def episodes_batch(lengths: list[int], seed: int = 0, shuffle: bool = True) -> Transitions:
    """Whole episodes of the given lengths, rows shuffled so that nothing may rely on their order."""
    rng = np.random.default_rng(seed)
    episode = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(length) for length in lengths])
    rows = len(t)
    order = rng.permutation(rows) if shuffle else np.arange(rows)
    return Transitions(obs_latent=rng.normal(size=(rows, LATENT_DIM)),
                       next_obs_latent=rng.normal(size=(rows, LATENT_DIM)),
                       action=rng.normal(size=(rows, 2)), reward=np.zeros(rows),
                       goal=np.full((rows, LATENT_DIM), 7.0), episode=episode, t=t).take(order)


# Transitions


def test_transitions_take_and_with_goals():
    batch = episodes_batch([2, 3], shuffle=False)
    taken = batch.take(np.array([4, 0, 0]))
    np.testing.assert_array_equal(taken.t, [2, 0, 0])
    np.testing.assert_array_equal(taken.obs_latent[1], batch.obs_latent[0])
    relabeled = taken.with_goals(np.ones((3, 5)), np.array([1.0, 2.0, 3.0]))
    assert relabeled.goal.shape == (3, 5)
    np.testing.assert_array_equal(relabeled.action, taken.action)


@pytest.mark.parametrize(('field', 'value', 'message'), [
    ('next_obs_latent', np.zeros((4, 3)), r'Transitions.next_obs_latent must have shape \(5, 3\), got \(4, 3\)'),
    ('next_obs_latent', np.zeros((5, 2)), r'Transitions.next_obs_latent must have shape \(5, 3\), got \(5, 2\)'),
    ('reward', np.full(5, np.nan), r'Transitions.reward must be finite, got nan at index \(0,\)'),
    ('goal', np.zeros(5), r'Transitions.goal must have shape \(5, G\), got \(5,\)'),
    ('action', np.zeros((5, 0)), r'Transitions.action must have shape \(5, A\), got \(5, 0\)'),
    ('episode', np.zeros(5), r'Transitions.episode must be integers of shape \(5,\), got float64'),
    ('t', np.arange(4), r'Transitions.t must be integers of shape \(5,\), got int64 \(4,\)'),
    ('t', np.arange(5) - 1, 'Transitions.t must be >= 0, got -1'),
])
def test_transitions_refuse_bad_fields(field, value, message):
    batch = episodes_batch([2, 3])
    fields = {name: getattr(batch, name) for name in
              ('obs_latent', 'next_obs_latent', 'action', 'reward', 'goal', 'episode', 't')}
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        Transitions(**fields)


# RIG goal sources


def test_relabel_defaults_are_rigs_fractions():
    assert LatentRelabelConfig().counts(10) == (5, 4)  # 0.5 prior, 0.4 future, 0.1 original


@pytest.mark.parametrize(('prior', 'future', 'rows', 'counts'), [
    (0.5, 0.5, 10, (5, 5)), (0.5, 0.5, 7, (4, 3)), (0.7, 0.3, 5, (4, 1)), (0.25, 0.25, 10, (3, 2)),
    (0.0, 1.0, 4, (0, 4)), (0.0, 0.0, 4, (0, 0)),
])
def test_relabel_counts_round_half_up_and_never_exceed_the_batch(prior, future, rows, counts):
    assert LatentRelabelConfig(prior, future).counts(rows) == counts


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'prior_fraction': -0.1}, r'LatentRelabelConfig.prior_fraction must be >= 0.0, got -0.1'),
    ({'future_fraction': 1.5}, r'LatentRelabelConfig.future_fraction must be <= 1, got 1.5'),
    ({'prior_fraction': 0.6, 'future_fraction': 0.6}, r'prior_fraction \+ future_fraction must be <= 1'),
    ({'prior_fraction': '0.5'}, "LatentRelabelConfig.prior_fraction must be a finite number, got '0.5'"),
])
def test_relabel_config_refuses_bad_fractions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentRelabelConfig(**kwargs)


@pytest.mark.parametrize('rows', [0, 1, 7, 256, 10_001])
def test_goal_sources_have_exact_counts(rows):
    config = LatentRelabelConfig(prior_fraction=0.3, future_fraction=0.45)
    source = assign_goal_sources(rows, 0, config)
    prior, future = config.counts(rows)
    assert source.shape == (rows,)
    assert np.bincount(source, minlength=3).tolist() == [rows - prior - future, prior, future]


def test_goal_sources_are_at_random_places_fixed_by_the_seed():
    first, again, other = (assign_goal_sources(1000, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Each place is about as likely to be a prior row as any other: no block of the batch is favoured.
    prior_share = np.mean([assign_goal_sources(20, seed) == GoalSource.PRIOR for seed in range(2000)], axis=0)
    np.testing.assert_allclose(prior_share, 0.5, atol=0.05)


def test_goal_sources_refuse_bad_seeds():
    with pytest.raises(ValueError, match='rng must be a numpy Generator or a seed int >= 0, got 1.5'):
        assign_goal_sources(4, 1.5)


# Grasp2Vec


def grasp_batch(episodes: list[int]) -> tuple[Transitions, np.ndarray]:
    """One grasp attempt per row, in the given episodes; row i grasped an object embedded as a distinct vector."""
    rows = len(episodes)
    batch = Transitions(np.zeros((rows, 2)), np.ones((rows, 2)), np.zeros((rows, 4)), np.zeros(rows),
                        np.zeros((rows, 3)), np.array(episodes), np.zeros(rows, dtype=int))
    grasped = np.random.default_rng(0).uniform(0.1, 1.0, size=(rows, 3))
    return batch, grasped


def test_posthoc_labels_name_each_successful_grasp_after_its_object():
    batch, grasped = grasp_batch([0, 0, 1, 2])
    success = np.array([True, False, True, False])
    labels = posthoc_grasp_labels(batch, grasped, success)
    np.testing.assert_array_equal(labels.goal, grasped[[0, 2]])
    np.testing.assert_array_equal(labels.reward, [1.0, 1.0])
    np.testing.assert_array_equal(labels.episode, [0, 1])


def test_posthoc_labels_nothing_when_every_grasp_failed():
    batch, grasped = grasp_batch([0, 1])
    assert len(posthoc_grasp_labels(batch, grasped, np.array([False, False]))) == 0


@pytest.mark.parametrize(('grasped_shape', 'success', 'message'), [
    ((3, 3), [True, False], r'success must be bools of shape \(3,\), one per transition, got bool \(2,\)'),
    ((3, 3), [1, 0, 1], r'success must be bools of shape \(3,\), one per transition, got int64'),
    ((2, 3), [True, False, True], r'grasped_embeddings must have shape \(3, D\), got \(2, 3\)'),
])
def test_grasp_labeling_refuses_mismatched_outcomes(grasped_shape, success, message):
    batch, _ = grasp_batch([0, 1, 2])
    for label in (lambda: posthoc_grasp_labels(batch, np.ones(grasped_shape), np.array(success)),
                  lambda: auxiliary_grasp_goals(batch, np.ones(grasped_shape), np.array(success), 0)):
        with pytest.raises(ValueError, match=message):
            label()


def test_auxiliary_goals_are_objects_grasped_in_other_episodes():
    episodes = [0, 0, 1, 1, 2, 3, 3, 3]
    batch, grasped = grasp_batch(episodes)
    success = np.array([True, True, False, True, True, False, True, True])
    aux = auxiliary_grasp_goals(batch, grasped, success, 0, goals_per_transition=2)
    assert len(aux.transitions) == 2 * len(episodes)
    for copy, (source, goal) in enumerate(zip(aux.source_row, aux.goal_row)):
        goal_object = aux.transitions.goal[copy]
        grasped_in_episode = grasped[np.array(episodes) == episodes[source]]
        assert not (grasped_in_episode == goal_object).all(axis=1).any()
        assert success[goal] and episodes[goal] != episodes[source]
        np.testing.assert_array_equal(goal_object, grasped[goal])
        assert aux.transitions.episode[copy] == episodes[source]
    pairs = list(zip(aux.source_row.tolist(), aux.goal_row.tolist()))
    assert len(set(pairs)) == len(pairs)


def test_auxiliary_rewards_are_grasp2vec_scores_and_zero_for_failed_grasps():
    batch, grasped = grasp_batch([0, 1, 2])
    success = np.array([True, True, False])
    aux = auxiliary_grasp_goals(batch, grasped, success, 0, goals_per_transition=2, normalize=False, scale=2.0)
    for copy, (source, goal) in enumerate(zip(aux.source_row, aux.goal_row)):
        expected = 2.0 * grasped[goal] @ grasped[source] if success[source] else 0.0
        assert aux.transitions.reward[copy] == pytest.approx(expected)
    # Row 2 failed: its goals are the two successful grasps, and its empty-gripper image is never scored.
    assert sorted(aux.goal_row[aux.source_row == 2].tolist()) == [0, 1]
    cosine = auxiliary_grasp_goals(batch, grasped, success, 0)
    assert ((cosine.transitions.reward > 0) & (cosine.transitions.reward <= 1)).sum() == 2


def test_auxiliary_goals_skip_objects_with_the_grasps_own_id():
    batch, grasped = grasp_batch([0, 1, 2, 3])
    success = np.ones(4, dtype=bool)
    object_ids = np.array([5, 5, 6, 7])  # the object of episode 0 was grasped again in episode 1
    for seed in range(10):
        aux = auxiliary_grasp_goals(batch, grasped, success, seed, object_ids=object_ids, goals_per_transition=3)
        assert (object_ids[aux.source_row] != object_ids[aux.goal_row]).all()
        assert np.bincount(aux.source_row).tolist() == [2, 2, 3, 3]


def test_auxiliary_goals_need_another_episode():
    batch, grasped = grasp_batch([4, 4, 4])
    aux = auxiliary_grasp_goals(batch, grasped, np.ones(3, dtype=bool), 0)
    assert len(aux.transitions) == 0 and aux.goal_row.shape == (0,)


def test_auxiliary_goals_are_fixed_by_the_seed():
    batch, grasped = grasp_batch([0, 1, 2, 3, 4])
    success = np.ones(5, dtype=bool)
    first, again, other = (auxiliary_grasp_goals(batch, grasped, success, seed).goal_row for seed in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'goals_per_transition': 0}, 'goals_per_transition must be an int >= 1, got 0'),
    ({'object_ids': np.array([1.0, 2.0])}, r'object_ids must be integers of shape \(2,\), got float64'),
    ({'scale': -1.0}, 'scale must be > 0.0, got -1.0'),
])
def test_auxiliary_goals_refuse_bad_settings(kwargs, message):
    batch, grasped = grasp_batch([0, 1])
    with pytest.raises(ValueError, match=message):
        auxiliary_grasp_goals(batch, grasped, np.ones(2, dtype=bool), 0, **kwargs)
