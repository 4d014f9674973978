"""Evaluation metrics of the learned representations, as pure functions of NumPy arrays.

Each metric comes with the rate a representation without information would score (a chance rate or a
majority-class baseline), so that a number in a report can be read against it. Nearest neighbours are by
Euclidean distance, computed in float64; among equally near candidates the one with the lowest index wins,
so every result is deterministic.

TCN / mfTCN:  multiview_alignment_error, mean_alignment_error, knn_classification_error, majority_class_error,
              attribute_probe_errors
Grasp2Vec:    retrieval_top1, batched_retrieval_top1, retrieval_chance, localisation_success, localisation_chance
VAEs:         reconstruction_error, goal_consistency, goal_consistency_chance
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from ssl_robot.models.losses import CHANGE_THRESHOLD, changed_pixels

GROUND_TRUTH_ATTRIBUTES = ('gripper_closed', 'object_lifted', 'gripper_contact')
"""The sim attributes probed with k-NN, in the column order of ssl_robot.data.bag_index.GroundTruthFlags.at."""

_DISTANCE_BLOCK_ELEMENTS = 1 << 24
"""Float64 elements of one block of coordinate differences (128 MiB): bounds memory for long episodes."""


# --- input checks -------------------------------------------------------------------------------------------

def _matrix(array: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(array, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f'{name} must be a non-empty (N, D) array, got shape {np.shape(array)}')
    if not np.isfinite(matrix).all():
        raise ValueError(f'{name} holds NaN or infinite values')
    return matrix


def _labels(array: np.ndarray, name: str, rows: int) -> np.ndarray:
    labels = np.asarray(array)
    if labels.shape != (rows,):
        raise ValueError(f'{name} must have shape ({rows},), one label per row, got {labels.shape}')
    return labels


def _same_shape(first: np.ndarray, second: np.ndarray, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f'{names} must have the same shape, got {first.shape} and {second.shape}')


def _same_width(first: np.ndarray, second: np.ndarray, names: str) -> None:
    if first.shape[1] != second.shape[1]:
        raise ValueError(f'{names} must have the same dimension D, got {first.shape[1]} and {second.shape[1]}')


# --- nearest neighbours -------------------------------------------------------------------------------------

def squared_distances(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(M, N) squared Euclidean distances from the M query rows to the N candidate rows.

    Computed from coordinate differences rather than |a|^2 + |b|^2 - 2ab, so that equal distances come out
    exactly equal and ties are broken by index, not by rounding.
    """
    distances = np.empty((len(queries), len(candidates)))
    block = max(1, _DISTANCE_BLOCK_ELEMENTS // max(1, candidates.size))
    for start in range(0, len(queries), block):
        differences = queries[start:start + block, None, :] - candidates[None, :, :]
        distances[start:start + block] = np.einsum('mnd,mnd->mn', differences, differences)
    return distances


def nearest_neighbours(queries: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """(M, k) indices of the k nearest candidates of each query, nearest first; equal distances in index order."""
    return np.argsort(squared_distances(queries, candidates), axis=1, kind='stable')[:, :k]


# --- TCN / mfTCN --------------------------------------------------------------------------------------------

def multiview_alignment_error(emb_i: np.ndarray, emb_j: np.ndarray) -> float:
    """How far in time the nearest neighbour of a frame in the other view is (the alignment of Sermanet et al. 2018).

    emb_i, emb_j: (T, D) embeddings of the same T synchronized times seen from views i and j. For every time t,
    t_nn is the time whose view-j embedding is nearest to emb_i[t]; the error is mean_t |t - t_nn| / T, in
    [0, 1): 0 when each frame's nearest neighbour is its synchronized twin. Not symmetric in i and j.
    """
    first, second = _matrix(emb_i, 'emb_i'), _matrix(emb_j, 'emb_j')
    _same_shape(first, second, 'emb_i and emb_j')
    times = len(first)
    nearest = nearest_neighbours(first, second, 1)[:, 0]
    return float(np.abs(np.arange(times) - nearest).mean() / times)


def mean_alignment_error(episodes: Sequence[Mapping[str, np.ndarray]]) -> float:
    """multiview_alignment_error averaged over episodes and view pairs.

    episodes: one {view name: (T, D) embeddings} per episode, T the same for the views of an episode (it may
    differ between episodes), at least two views each. Within an episode the error is the mean over all ordered
    pairs (i, j), i != j (both directions, since the error is not symmetric); the result is the mean of these
    per-episode errors, so every episode weighs the same whatever its length or number of views.
    """
    if not episodes:
        raise ValueError('mean_alignment_error needs at least one episode')
    per_episode = []
    for number, views in enumerate(episodes):
        if len(views) < 2:
            raise ValueError(f'episode {number} has views {sorted(views)}: alignment needs at least two')
        embeddings = list(views.values())
        per_episode.append(np.mean([multiview_alignment_error(first, second)
                                    for i, first in enumerate(embeddings)
                                    for j, second in enumerate(embeddings) if i != j]))
    return float(np.mean(per_episode))


def _majority_votes(neighbour_labels: np.ndarray) -> np.ndarray:
    """The most frequent label of each row of (M, k) labels, nearest first; among labels as frequent, the one
    that comes first in the row, i.e. the label of the nearest of the tied neighbours."""
    votes = []
    for row in neighbour_labels:
        values, first_seen, counts = np.unique(row, return_index=True, return_counts=True)
        most = counts == counts.max()
        votes.append(values[most][np.argmin(first_seen[most])])
    return np.array(votes)


def _check_probe_inputs(train_emb: np.ndarray, test_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    train, test = _matrix(train_emb, 'train_emb'), _matrix(test_emb, 'test_emb')
    _same_width(train, test, 'train_emb and test_emb')
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= len(train):
        raise ValueError(f'k must be an integer from 1 to the {len(train)} training rows, got {k!r}')
    return train, test


def _knn_error(neighbours: np.ndarray, train_rows: int, train_labels: np.ndarray, test_labels: np.ndarray,
               train_name: str, test_name: str) -> float:
    """The error of the majority votes of each test row's (k,) neighbours' training labels."""
    train_labels = _labels(train_labels, train_name, train_rows)
    test_labels = _labels(test_labels, test_name, len(neighbours))
    return float((_majority_votes(train_labels[neighbours]) != test_labels).mean())


def knn_classification_error(train_emb: np.ndarray, train_labels: np.ndarray, test_emb: np.ndarray,
                             test_labels: np.ndarray, k: int = 5) -> float:
    """Fraction of test rows whose label the k nearest training embeddings get wrong by majority vote.

    train_emb (N, D) with train_labels (N,), test_emb (M, D) with test_labels (M,); labels of any type numpy can
    compare (bool, int, str). Ties: the k neighbours are the k nearest, equal distances taken in training-index
    order; a tied vote goes to the label of the nearest neighbour among the tied labels.
    Compare with majority_class_error(train_labels, test_labels).
    """
    train, test = _check_probe_inputs(train_emb, test_emb, k)
    neighbours = nearest_neighbours(test, train, k)
    return _knn_error(neighbours, len(train), train_labels, test_labels, 'train_labels', 'test_labels')


def majority_class_error(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """The error of always predicting the most frequent training label (the smallest label among equally
    frequent ones): what a classifier that ignores the embedding scores."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if train_labels.ndim != 1 or test_labels.ndim != 1 or not len(train_labels) or not len(test_labels):
        raise ValueError(f'train_labels and test_labels must be non-empty 1-D arrays, got shapes '
                         f'{train_labels.shape} and {test_labels.shape}')
    values, counts = np.unique(train_labels, return_counts=True)
    return float((test_labels != values[np.argmax(counts)]).mean())


class ProbeError(NamedTuple):
    """A k-NN classification error and the majority-class error of the same labels."""

    error: float
    majority_baseline: float


def attribute_probe_errors(train_emb: np.ndarray, train_attributes: Mapping[str, np.ndarray],
                           test_emb: np.ndarray, test_attributes: Mapping[str, np.ndarray],
                           k: int = 5) -> dict[str, ProbeError]:
    """knn_classification_error and majority_class_error of each attribute (e.g. GROUND_TRUTH_ATTRIBUTES).

    train_attributes, test_attributes: {attribute: (N,) / (M,) labels}, the same attributes in both. The
    neighbours are found once and shared by every attribute, so the result equals calling
    knn_classification_error per attribute.
    """
    if not train_attributes or set(train_attributes) != set(test_attributes):
        raise ValueError(f'train and test attributes must name the same, non-empty set of attributes, got '
                         f'{sorted(train_attributes)} and {sorted(test_attributes)}')
    train, test = _check_probe_inputs(train_emb, test_emb, k)
    neighbours = nearest_neighbours(test, train, k)
    errors = {}
    for name, train_labels in train_attributes.items():
        errors[name] = ProbeError(
            _knn_error(neighbours, len(train), train_labels, test_attributes[name],
                       f'train_attributes[{name!r}]', f'test_attributes[{name!r}]'),
            majority_class_error(train_labels, test_attributes[name]))
    return errors


# --- Grasp2Vec ----------------------------------------------------------------------------------------------

def retrieval_top1(scene_diff: np.ndarray, object_emb: np.ndarray) -> float:
    """Fraction of the B grasps of a batch whose scene difference retrieves their own object.

    scene_diff: (B, D) phi_s(pre) - phi_s(post); object_emb: (B, D) phi_o(object), row b the object grasped
    in grasp b. Grasp b counts as retrieved when scene_diff[b] . object_emb[b] is strictly larger than
    scene_diff[b] . object_emb[c] for every c != b: a tie is a failure, so an encoder whose embeddings collapse
    scores 0 rather than an index-dependent rate (the in-training 'retrieval_accuracy' of Grasp2Vec takes the
    first maximum instead). Chance: retrieval_chance(B). Two grasps of the same object in one batch make
    retrieval ambiguous; batches should hold distinct objects.
    """
    differences, objects = _matrix(scene_diff, 'scene_diff'), _matrix(object_emb, 'object_emb')
    _same_shape(differences, objects, 'scene_diff and object_emb')
    scores = differences @ objects.T
    own = np.diag(scores).copy()
    np.fill_diagonal(scores, -np.inf)
    return float((own > scores.max(axis=1)).mean())


def batched_retrieval_top1(scene_diff: np.ndarray, object_emb: np.ndarray, batch_size: int) -> float:
    """retrieval_top1 over consecutive batches of batch_size rows, averaged over batches.

    The last rows that do not fill a batch are left out: a smaller batch is easier (its chance is higher), so
    every batch must have the chance 1 / batch_size. Rows are taken in the order given; shuffle them first to
    draw random batches.
    """
    differences, objects = _matrix(scene_diff, 'scene_diff'), _matrix(object_emb, 'object_emb')
    _same_shape(differences, objects, 'scene_diff and object_emb')
    if not isinstance(batch_size, (int, np.integer)) or not 2 <= batch_size <= len(differences):
        raise ValueError(f'batch_size must be an integer from 2 to the {len(differences)} grasps, '
                         f'got {batch_size!r}')
    batches = len(differences) // batch_size
    return float(np.mean([retrieval_top1(differences[b * batch_size:(b + 1) * batch_size],
                                         objects[b * batch_size:(b + 1) * batch_size]) for b in range(batches)]))


def retrieval_chance(batch_size: int) -> float:
    """The top-1 retrieval rate of a random guess among batch_size objects: 1 / batch_size."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
    return 1.0 / batch_size


def _masks(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.dtype != np.bool_ or 0 in masks.shape:
        raise ValueError(f'masks must be a non-empty (N, H, W) bool array, got {masks.dtype} of shape {masks.shape}')
    return masks


def localisation_success(heatmaps: np.ndarray, masks: np.ndarray) -> float:
    """Fraction of heatmaps whose maximum lies on the grasped object in the scene before the grasp.

    heatmaps: (N, h, w) at feature resolution (Grasp2Vec.heatmap without upsampling); masks: (N, H, W) bool, the
    object's pixels in s_pre. The argmax cell (r, c) (the first in row-major order among equal maxima) is mapped
    to the image pixel under its centre: row floor((r + 1/2) H / h), column floor((c + 1/2) W / w), pixel i
    covering [i, i + 1). Success when that pixel is in the mask; an empty mask (object not visible) is a failure.
    Chance: localisation_chance(masks).
    """
    heatmaps, masks = np.asarray(heatmaps, dtype=np.float64), _masks(masks)
    if heatmaps.ndim != 3 or len(heatmaps) != len(masks) or 0 in heatmaps.shape:
        raise ValueError(f'heatmaps must be a non-empty (N, h, w) array with one map per mask ({len(masks)}), '
                         f'got shape {heatmaps.shape}')
    if np.isnan(heatmaps).any():
        raise ValueError('heatmaps hold NaN values')
    count, rows, columns = heatmaps.shape
    height, width = masks.shape[1:]
    cell_rows, cell_columns = np.unravel_index(heatmaps.reshape(count, -1).argmax(axis=1), (rows, columns))
    pixel_rows = np.floor((cell_rows + 0.5) * height / rows).astype(int)
    pixel_columns = np.floor((cell_columns + 0.5) * width / columns).astype(int)
    return float(masks[np.arange(count), pixel_rows, pixel_columns].mean())


def localisation_chance(masks: np.ndarray) -> float:
    """The success rate of a uniformly random pixel: the mean over scenes of the object's mask area fraction."""
    return float(_masks(masks).mean(axis=(1, 2)).mean())


# --- VAEs ---------------------------------------------------------------------------------------------------

def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean squared error per pixel and channel: mean over every element of (x - x_hat)^2, x and x_hat images of
    the same shape, e.g. (N, C, H, W) in [0, 1] (then the error is in [0, 1] too)."""
    original, reconstructed = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    _same_shape(original, reconstructed, 'x and x_hat')
    if original.size == 0:
        raise ValueError('x and x_hat are empty')
    return float(np.square(original - reconstructed).mean())


def changed_pixel_squared_error(x: np.ndarray, x_hat: np.ndarray, first: np.ndarray,
                                threshold: float = CHANGE_THRESHOLD) -> tuple[float, int]:
    """The squared error of x_hat against x summed over the changed pixels of x (every channel of a pixel whose
    largest channel change from first exceeds threshold: models.losses.changed_pixels), and how many values that
    sum has. x, x_hat: (N, C, H, W); first: (C, H, W), the episode's first frame. The part of the reconstruction
    error a model that copies its context cannot lower: what the CC-VAE's z must draw."""
    original, reconstructed = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    _same_shape(original, reconstructed, 'x and x_hat')
    _same_shape(original[0], np.asarray(first), 'a frame of x and first')
    first = torch.from_numpy(np.ascontiguousarray(first, dtype=np.float64))[None]  # broadcast, not copied N times
    changed = np.broadcast_to(changed_pixels(torch.from_numpy(original), first, threshold).numpy(), original.shape)
    return float(np.square(original - reconstructed)[changed].sum()), int(changed.sum())


def area_downsample(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, size, size) by averaging: output pixel (i, j) is the mean of input rows
    floor(i H / size) .. floor((i + 1) H / size) - 1 and the columns alike; H and W at least size."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or not 1 <= size <= min(images.shape[2:]):
        raise ValueError(f'cannot area-downsample images of shape {images.shape} to {size}x{size}: need '
                         f'(N, C, H, W) images with H and W of at least {size}')
    for axis in (2, 3):
        edges = np.arange(size) * images.shape[axis] // size
        counts = np.diff(np.append(edges, images.shape[axis]))
        images = np.add.reduceat(images, edges, axis=axis) / counts.reshape(-1, *[1] * (3 - axis))
    return images


def downsampled_pixels(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) images -> (N, C * size * size) feature vectors: area_downsample, flattened."""
    return area_downsample(images, size).reshape(len(images), -1)


def goal_consistency(goal_images: np.ndarray, context_episode_ids: np.ndarray, reference_images: np.ndarray,
                     reference_episode_ids: np.ndarray,
                     features: Callable[[np.ndarray], np.ndarray] | None = None,
                     downsample_size: int = 16) -> float:
    """Fraction of imagined goals that show the object(s) of the context they were imagined from.

    goal_images: (N, C, H, W) goals decoded under the context of initial observations whose identities are
    context_episode_ids (N,); reference_images: (M, C, H, W) real images labelled reference_episode_ids (M,).
    An identity is an episode id or, better, an object-identity label. Each goal takes the identity of its
    nearest reference image (Euclidean distance between features; ties to the lowest reference index); it is
    consistent when that identity equals its context's. features maps (K, C, H, W) images to (K, F) vectors;
    by default downsampled_pixels at downsample_size x downsample_size, so that the nearest image is the one
    with the same large shapes, not the same pixel noise.
    Chance: goal_consistency_chance(context_episode_ids).
    """
    goals, references = np.asarray(goal_images), np.asarray(reference_images)
    if goals.ndim != 4 or references.ndim != 4 or goals.shape[1:] != references.shape[1:]:
        raise ValueError(f'goal_images and reference_images must be (N, C, H, W) images of one size, got shapes '
                         f'{goals.shape} and {references.shape}')
    context_ids = _labels(context_episode_ids, 'context_episode_ids', len(goals))
    reference_ids = _labels(reference_episode_ids, 'reference_episode_ids', len(references))
    if features is None:
        features = partial(downsampled_pixels, size=downsample_size)
    goal_features = _matrix(features(goals), 'features(goal_images)')
    reference_features = _matrix(features(references), 'features(reference_images)')
    _same_width(goal_features, reference_features, 'features(goal_images) and features(reference_images)')
    predicted = reference_ids[nearest_neighbours(goal_features, reference_features, 1)[:, 0]]
    return float((predicted == context_ids).mean())


def goal_consistency_chance(context_episode_ids: np.ndarray) -> float:
    """The consistency of a model that imagines the same object whatever the context: the frequency of the most
    common context identity, the best any constant guess scores, and never below 1 / number of identities."""
    identities = np.asarray(context_episode_ids)
    if identities.ndim != 1 or not len(identities):
        raise ValueError(f'context_episode_ids must be a non-empty 1-D array, got shape {identities.shape}')
    return float(np.unique(identities, return_counts=True)[1].max() / len(identities))
