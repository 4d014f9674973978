"""Evaluation metrics: hand-made cases with known answers, and brute-force loops on random data."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ssl_robot.train.intervals import ratio_interval
from ssl_robot.train.metrics import (area_downsample, attribute_probe_errors, batched_retrieval_top1,
                                     changed_pixel_squared_error, goal_consistency, goal_consistency_chance,
                                     knn_classification_error,
                                     localisation_chance, localisation_success, majority_class_error,
                                     mean_alignment_error, multiview_alignment_error, reconstruction_error,
                                     retrieval_chance, retrieval_top1)

rng = np.random.default_rng(0)


def column(*values: float) -> np.ndarray:
    """Points on a line, as (N, 1) embeddings."""
    return np.array(values, dtype=float)[:, None]


def nearest_by_loop(query: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Candidate indices nearest first, equal distances in index order."""
    distances = [sum((q - c) ** 2 for q, c in zip(query, candidate)) for candidate in candidates]
    return sorted(range(len(candidates)), key=lambda index: (distances[index], index))


# --- alignment ----------------------------------------------------------------------------------------------

def alignment_by_loop(first: np.ndarray, second: np.ndarray) -> float:
    return sum(abs(t - nearest_by_loop(row, second)[0]) for t, row in enumerate(first)) / len(first) ** 2


def test_alignment_is_zero_for_identical_views():
    embeddings = rng.normal(size=(9, 4))
    assert multiview_alignment_error(embeddings, embeddings.copy()) == 0.0


def test_alignment_of_a_reversed_view():
    # t_nn = 3 - t, so |t - t_nn| = 3, 1, 1, 3: mean 2, divided by T = 4.
    embeddings = column(0, 1, 2, 3)
    assert multiview_alignment_error(embeddings, embeddings[::-1]) == 0.5


def test_alignment_against_a_collapsed_view_takes_the_first_of_equal_neighbours():
    # Every frame of view j is the same point, so every t_nn is 0: mean t / T = 2 / 5.
    assert multiview_alignment_error(column(0, 1, 2, 3, 4), np.zeros((5, 1))) == pytest.approx(0.4)


def test_alignment_matches_a_loop_on_random_embeddings():
    first, second = rng.normal(size=(13, 3)), rng.normal(size=(13, 3))
    assert multiview_alignment_error(first, second) == pytest.approx(alignment_by_loop(first, second))


def test_mean_alignment_weighs_episodes_equally_and_takes_both_directions():
    short = column(0, 1, 2, 3)
    long = rng.normal(size=(20, 2))
    # The short episode errs by 0.5 in both directions, the long one not at all: a per-frame pooled mean would
    # give 4 * 0.5 / 24 instead.
    episodes = [{'left': short, 'right': short[::-1]}, {'left': long, 'right': long.copy()}]
    assert mean_alignment_error(episodes) == 0.25


def test_mean_alignment_matches_a_loop_over_ordered_view_pairs():
    episodes = [{name: rng.normal(size=(length, 3)) for name in ('a', 'b', 'c')} for length in (7, 11)]
    expected = np.mean([np.mean([alignment_by_loop(views[i], views[j]) for i in views for j in views if i != j])
                        for views in episodes])
    assert mean_alignment_error(episodes) == pytest.approx(expected)


def test_alignment_refuses_views_of_different_lengths_and_single_view_episodes():
    with pytest.raises(ValueError, match='emb_i and emb_j must have the same shape'):
        multiview_alignment_error(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="episode 0 has views \\['only'\\]"):
        mean_alignment_error([{'only': np.zeros((4, 2))}])
    with pytest.raises(ValueError, match='NaN'):
        multiview_alignment_error(np.full((3, 2), np.nan), np.zeros((3, 2)))


# --- k-NN probes --------------------------------------------------------------------------------------------

def knn_error_by_loop(train, train_labels, test, test_labels, k) -> float:
    wrong = 0
    for query, label in zip(test, test_labels):
        neighbour_labels = [train_labels[i] for i in nearest_by_loop(query, train)[:k]]
        counts = Counter(neighbour_labels)
        best = max(counts.values())
        vote = next(lab for lab in neighbour_labels if counts[lab] == best)
        wrong += vote != label
    return wrong / len(test)


def test_knn_error_on_points_on_a_line():
    train = column(0, 1, 2, 10, 11, 12)
    labels = np.array(['a', 'a', 'a', 'b', 'b', 'b'])
    # 5.9: nearest 2, 10, 1 vote a, a wrong answer; 6.1: nearest 10, 2, 11 vote b.
    test = column(0.5, 11, 6.1, 5.9)
    assert knn_classification_error(train, labels, test, np.array(['a', 'b', 'b', 'b']), k=3) == 0.25


def test_knn_tied_vote_goes_to_the_nearest_neighbours_label():
    train, labels = column(0, 1), np.array(['z', 'a'])
    # k=2 always ties 1-1; the label of the nearer neighbour wins, not the smaller label.
    assert knn_classification_error(train, labels, column(0.4), np.array(['z']), k=2) == 0.0
    assert knn_classification_error(train, labels, column(0.6), np.array(['a']), k=2) == 0.0
    # Equally near neighbours are taken in training order.
    assert knn_classification_error(train, labels, column(0.5), np.array(['z']), k=1) == 0.0


def test_knn_matches_a_loop_on_random_data():
    train, test = rng.normal(size=(40, 3)), rng.normal(size=(25, 3))
    train_labels, test_labels = rng.integers(0, 3, size=40), rng.integers(0, 3, size=25)
    for k in (1, 4, 5):
        assert knn_classification_error(train, train_labels, test, test_labels, k) == pytest.approx(
            knn_error_by_loop(train, train_labels, test, test_labels, k))


def test_majority_class_error():
    assert majority_class_error(np.array([1, 1, 0]), np.array([1, 0, 0, 0])) == 0.75
    # A tie among training labels predicts the smallest: 0.
    assert majority_class_error(np.array([1, 0]), np.array([0, 0, 1])) == pytest.approx(1 / 3)


def test_attribute_probes_equal_per_attribute_knn_and_majority():
    train, test = rng.normal(size=(30, 4)), rng.normal(size=(12, 4))
    train_attributes = {'gripper_closed': rng.random(30) < 0.5, 'object_lifted': rng.random(30) < 0.2}
    test_attributes = {'gripper_closed': rng.random(12) < 0.5, 'object_lifted': rng.random(12) < 0.2}
    probes = attribute_probe_errors(train, train_attributes, test, test_attributes, k=3)
    assert set(probes) == set(train_attributes)
    for name, probe in probes.items():
        assert probe.error == knn_classification_error(train, train_attributes[name], test, test_attributes[name],
                                                       k=3)
        assert probe.majority_baseline == majority_class_error(train_attributes[name], test_attributes[name])


def test_knn_refuses_bad_inputs():
    train, labels = np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(ValueError, match='k must be an integer from 1 to the 3 training rows, got 4'):
        knn_classification_error(train, labels, np.zeros((1, 2)), np.zeros(1), k=4)
    with pytest.raises(ValueError, match='train_emb and test_emb must have the same dimension D'):
        knn_classification_error(train, labels, np.zeros((1, 3)), np.zeros(1), k=1)
    with pytest.raises(ValueError, match=r'test_labels must have shape \(1,\)'):
        knn_classification_error(train, labels, np.zeros((1, 2)), np.zeros(2), k=1)
    with pytest.raises(ValueError, match='same, non-empty set of attributes'):
        attribute_probe_errors(train, {'a': labels}, np.zeros((1, 2)), {'b': np.zeros(1)})


# --- Grasp2Vec ----------------------------------------------------------------------------------------------

def retrieval_by_loop(differences: np.ndarray, objects: np.ndarray) -> float:
    hits = 0
    for b, difference in enumerate(differences):
        scores = [float(np.dot(difference, candidate)) for candidate in objects]
        hits += all(scores[b] > score for c, score in enumerate(scores) if c != b)
    return hits / len(differences)


def test_retrieval_of_one_hot_embeddings():
    identity = np.eye(4)
    assert retrieval_top1(identity, identity) == 1.0
    assert retrieval_top1(identity, identity[[1, 0, 2, 3]]) == 0.5


def test_retrieval_counts_ties_as_failures():
    assert retrieval_top1(np.zeros((4, 3)), np.ones((4, 3))) == 0.0


def test_retrieval_matches_a_loop_on_random_data():
    differences, objects = rng.normal(size=(16, 5)), rng.normal(size=(16, 5))
    objects[:8] += 2 * differences[:8]
    assert retrieval_top1(differences, objects) == pytest.approx(retrieval_by_loop(differences, objects))


def test_batched_retrieval_averages_full_batches_only():
    identity = np.eye(4)
    differences = np.concatenate([identity, identity, np.zeros((3, 4))])
    objects = np.concatenate([identity, identity[[1, 0, 2, 3]], np.zeros((3, 4))])
    # Batches score 1 and 0.5; the 3 rows left over would score 0 if they counted.
    assert batched_retrieval_top1(differences, objects, batch_size=4) == 0.75
    assert retrieval_chance(4) == 0.25


def test_batched_retrieval_matches_a_loop_on_random_data():
    differences, objects = rng.normal(size=(23, 3)), rng.normal(size=(23, 3))
    objects += differences
    expected = np.mean([retrieval_by_loop(differences[s:s + 5], objects[s:s + 5]) for s in range(0, 20, 5)])
    assert batched_retrieval_top1(differences, objects, 5) == pytest.approx(expected)


def test_retrieval_refuses_bad_batch_sizes():
    with pytest.raises(ValueError, match='batch_size must be an integer from 2 to the 3 grasps, got 4'):
        batched_retrieval_top1(np.eye(3), np.eye(3), 4)
    with pytest.raises(ValueError, match='scene_diff and object_emb must have the same shape'):
        retrieval_top1(np.eye(3), np.eye(4))


def one_pixel_mask(height: int, width: int, row: int, col: int) -> np.ndarray:
    mask = np.zeros((1, height, width), dtype=bool)
    mask[0, row, col] = True
    return mask


def test_localisation_maps_the_argmax_cell_centre_to_image_pixels():
    heatmap = np.zeros((1, 2, 2))
    heatmap[0, 1, 0] = 1.0
    # Cell (1, 0) of a 2x2 map over 8x8 pixels has its centre at (6, 2).
    assert localisation_success(heatmap, one_pixel_mask(8, 8, 6, 2)) == 1.0
    assert localisation_success(heatmap, one_pixel_mask(8, 8, 5, 2)) == 0.0
    # 3 rows over 8 pixels: the centre of row 1 is at 1.5 * 8 / 3 = 4.
    heatmap = np.zeros((1, 3, 1))
    heatmap[0, 1, 0] = 1.0
    assert localisation_success(heatmap, one_pixel_mask(8, 5, 4, 2)) == 1.0


def test_localisation_chance_is_the_mean_mask_area():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, :4, :4] = True
    assert localisation_chance(masks) == 0.125
    assert localisation_success(np.ones((2, 2, 2)), masks) == 0.5  # ties: cell (0, 0), in mask 0 only


def test_localisation_matches_a_loop_on_random_data():
    heatmaps, masks = rng.normal(size=(20, 3, 5)), rng.random((20, 12, 15)) < 0.3
    hits = 0
    for heatmap, mask in zip(heatmaps, masks):
        flat = max(range(heatmap.size), key=lambda i: (heatmap.flat[i], -i))
        row, col = divmod(flat, heatmap.shape[1])
        hits += mask[math.floor((row + 0.5) * 12 / 3), math.floor((col + 0.5) * 15 / 5)]
    assert localisation_success(heatmaps, masks) == pytest.approx(hits / 20)
    assert localisation_chance(masks) == pytest.approx(masks.sum() / masks.size)


def test_localisation_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match='masks must be a non-empty \\(N, H, W\\) bool array'):
        localisation_success(np.zeros((1, 2, 2)), np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match=r'one map per mask \(2\)'):
        localisation_success(np.zeros((1, 2, 2)), np.zeros((2, 8, 8), dtype=bool))


# --- VAEs ---------------------------------------------------------------------------------------------------

def test_reconstruction_error():
    x, x_hat = np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4))
    x_hat[0] = 0.5
    assert reconstruction_error(x, x_hat) == 0.125
    x, x_hat = rng.random((3, 1, 5, 5)), rng.random((3, 1, 5, 5))
    assert reconstruction_error(x, x_hat) == pytest.approx(
        sum((a - b) ** 2 for a, b in zip(x.flat, x_hat.flat)) / x.size)
    with pytest.raises(ValueError, match='x and x_hat must have the same shape'):
        reconstruction_error(x, x_hat[:2])



def test_changed_pixel_error_sums_every_channel_of_pixels_that_moved_from_the_first_frame():
    first = rng.random((3, 6, 5))
    x = np.repeat(first[None], 4, axis=0)
    x[1:, 1, 2:4, 1] += 0.3          # one channel moves, the pixel's other channels count too
    x[2, :, 0, 0] += 0.05            # under the threshold: unchanged
    x_hat = rng.random(x.shape)
    total, count = 0.0, 0
    for frame, reconstruction in zip(x, x_hat):
        for row in range(6):
            for column in range(5):
                if max(abs(frame[c, row, column] - first[c, row, column]) for c in range(3)) > 0.1:
                    total += sum((frame[c, row, column] - reconstruction[c, row, column]) ** 2 for c in range(3))
                    count += 3
    assert count == 3 * 2 * 3
    assert changed_pixel_squared_error(x, x_hat, first) == (pytest.approx(total), count)
    assert changed_pixel_squared_error(x, x, first) == (0.0, count)
    copied, _ = changed_pixel_squared_error(x, np.broadcast_to(first, x.shape), first)
    # Copying s0 costs exactly the change, less the sub-threshold one it leaves out.
    assert copied == pytest.approx(np.square(x - first).sum() - 3 * 0.05 ** 2)
    with pytest.raises(ValueError, match='a frame of x and first must have the same shape'):
        changed_pixel_squared_error(x, x_hat, first[:, :3])

def test_area_downsample_averages_blocks_even_when_sizes_do_not_divide():
    images = np.arange(25, dtype=float).reshape(1, 1, 5, 5)
    # Rows 0-1 and 2-4, columns alike.
    expected = [[np.mean(images[0, 0, r0:r1, c0:c1]) for c0, c1 in ((0, 2), (2, 5))] for r0, r1 in ((0, 2), (2, 5))]
    np.testing.assert_allclose(area_downsample(images, 2)[0, 0], expected)
    np.testing.assert_array_equal(area_downsample(images, 5), images)
    with pytest.raises(ValueError, match='H and W of at least 6'):
        area_downsample(images, 6)


def half_lit(side: str, count: int) -> np.ndarray:
    """(count, 1, 32, 32) noisy images lit on the left or the right half: two object identities."""
    images = rng.random((count, 1, 32, 32)) * 0.2
    images[..., :16] += 0.8 if side == 'left' else 0.0
    images[..., 16:] += 0.8 if side == 'right' else 0.0
    return images


def test_goal_consistency_on_two_identities():
    references = np.concatenate([half_lit('left', 3), half_lit('right', 3)])
    reference_ids = np.array([7, 7, 7, 9, 9, 9])
    goals = np.concatenate([half_lit('left', 2), half_lit('right', 2)])
    # The last goal, imagined from a context of identity 7, shows identity 9.
    contexts = np.array([7, 7, 9, 7])
    assert goal_consistency(goals, contexts, references, reference_ids) == 0.75
    assert goal_consistency_chance(contexts) == 0.75


def test_goal_consistency_uses_a_given_feature_function():
    references, reference_ids = np.concatenate([half_lit('left', 2), half_lit('right', 2)]), np.array([0, 0, 1, 1])
    goals, contexts = half_lit('right', 3), np.array([1, 1, 1])
    assert goal_consistency(goals, contexts, references, reference_ids) == 1.0
    # Features that see nothing make every reference equally near: each goal takes reference 0's identity.
    def blind(images: np.ndarray) -> np.ndarray:
        return np.zeros((len(images), 2))
    assert goal_consistency(goals, contexts, references, reference_ids, features=blind) == 0.0


def test_goal_consistency_matches_a_loop_on_random_data():
    goals, references = rng.random((10, 3, 16, 16)), rng.random((14, 3, 16, 16))
    contexts, reference_ids = rng.integers(0, 3, size=10), rng.integers(0, 3, size=14)
    reduced_goals, reduced_references = area_downsample(goals, 4), area_downsample(references, 4)
    hits = sum(reference_ids[nearest_by_loop(goal.ravel(), [r.ravel() for r in reduced_references])[0]] == context
               for goal, context in zip(reduced_goals, contexts))
    assert goal_consistency(goals, contexts, references, reference_ids, downsample_size=4) == pytest.approx(hits / 10)


def test_goal_consistency_refuses_images_of_another_size():
    with pytest.raises(ValueError, match='images of one size'):
        goal_consistency(np.zeros((2, 1, 16, 16)), np.zeros(2), np.zeros((2, 1, 32, 32)), np.zeros(2))


# --- confidence intervals -----------------------------------------------------------------------------------

def test_ratio_interval_brackets_the_mean_and_repeats_exactly():
    errors = [0.10, 0.14, 0.12, 0.30, 0.11, 0.13]
    interval = ratio_interval(errors)

    assert interval.units == 6
    assert min(errors) <= interval.low <= np.mean(errors) <= interval.high <= max(errors)
    assert ratio_interval(errors) == interval
    assert ratio_interval([0.2, 0.2, 0.2]) == (pytest.approx(0.2), pytest.approx(0.2), 3)


def test_ratio_interval_of_pooled_rates_weighs_units_by_their_rows():
    # Wrong rows over all rows: an episode of 1000 rows weighs 100 times one of 10.
    interval = ratio_interval([900.0, 0.0, 0.0], [1000.0, 10.0, 10.0])
    assert interval.high == pytest.approx(0.9) and interval.low == 0.0
    assert ratio_interval([1.0], [2.0]) is None  # one unit shows no spread


def test_ratio_interval_refuses_unpaired_or_non_positive_weights():
    with pytest.raises(ValueError, match='pair up'):
        ratio_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match='denominators finite and positive'):
        ratio_interval([1.0, 2.0], [1.0, 0.0])


def test_the_majority_class_baseline_can_exceed_one_half():
    # The majority of the fit half (0) is the minority of the test half: 'chance' is no coin toss.
    assert majority_class_error(np.array([0, 0, 0, 1]), np.array([1, 1, 1, 0])) == 0.75
