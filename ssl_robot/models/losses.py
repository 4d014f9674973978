"""The training losses, as pure functions of tensors.

Distances between embeddings are squared Euclidean, as in the TCN paper's triplet loss. "Far in time" means:
in another episode, or in the same episode more than a window of frames away (`temporal_negative_mask`).
A loss whose batch offers no usable example (no anchor with a negative, no positive pair) raises a
ValueError rather than returning a silent zero: that is a sampler bug, not a training signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Mining = Literal['all', 'semi_hard']
Likelihood = Literal['bernoulli', 'gaussian']


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances, exact (no |a|^2 + |b|^2 - 2ab cancellation)."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)


def temporal_negative_mask(times: Tensor, episode: Tensor, window: int) -> Tensor:
    """(B,), (B,) -> (B, B) bool: row j is a negative for row i when it is in another episode or more than
    `window` frames away from it."""
    other_episode = episode[:, None] != episode[None, :]
    far = (times[:, None] - times[None, :]).abs() > window
    return other_episode | far


def temporal_positive_mask(times: Tensor, episode: Tensor, radius: int) -> Tensor:
    """(B,), (B,) -> (B, B) bool: row j is a positive for row i when it is another row of the same episode at
    most `radius` frames away."""
    same_episode = episode[:, None] == episode[None, :]
    near = (times[:, None] - times[None, :]).abs() <= radius
    not_self = ~torch.eye(len(times), dtype=torch.bool, device=times.device)
    return same_episode & near & not_self


def triplet_loss_from_distances(positive_distances: Tensor, negative_distances: Tensor, negative_mask: Tensor,
                                margin: float, mining: Mining) -> Tensor:
    """Hinge triplet loss max(0, d_ap - d_an + margin) for N (anchor, positive) pairs.

    positive_distances: (N,) d_ap. negative_distances: (N, M) d_an from each pair's anchor to M candidates;
    negative_mask (N, M) says which candidates are negatives for that anchor.
    mining 'all': the mean over every valid (anchor, positive, negative) triplet.
    mining 'semi_hard' (FaceNet, as tf.contrib.losses.metric_learning.triplet_semihard_loss): per pair, the
    closest negative that is still farther than the positive; if there is none, the farthest negative. The mean
    is then taken over pairs. Pairs whose anchor has no negative are left out.
    """
    has_negative = negative_mask.any(dim=1)
    if not has_negative.any():
        raise ValueError('no valid triplet in the batch: no anchor with a positive has any negative '
                         '(every candidate is within the negative window of it)')
    d_ap = positive_distances[:, None]
    if mining == 'all':
        hinge = F.relu(d_ap - negative_distances + margin)
        return (hinge * negative_mask).sum() / negative_mask.sum()
    if mining != 'semi_hard':
        raise ValueError(f"mining must be 'all' or 'semi_hard', got {mining!r}")
    farther = negative_mask & (negative_distances > d_ap)
    inf = torch.full_like(negative_distances, float('inf'))
    closest_farther = torch.where(farther, negative_distances, inf).amin(dim=1)
    farthest = torch.where(negative_mask, negative_distances, -inf).amax(dim=1)
    chosen = torch.where(farther.any(dim=1), closest_farther, farthest)
    return F.relu(positive_distances - chosen + margin)[has_negative].mean()


def _ordered_view_pairs(views: int) -> list[tuple[int, int]]:
    if views < 2:
        raise ValueError(f'multi-view losses need at least 2 synchronized views, got {views}')
    return [(i, j) for i in range(views) for j in range(views) if i != j]


def multiview_triplet_loss(embeddings: Tensor, times: Tensor, episode: Tensor, margin: float = 0.2,
                           negative_window: int = 10, mining: Mining = 'all') -> Tensor:
    """Multi-view time-contrastive triplet loss (Sermanet et al. 2018).

    embeddings: (B, V, D), row b holding V synchronized views of time times[b] of episode episode[b].
    Every ordered view pair (i, j), i != j, gives triplets: anchor view i at row b, positive view j at row b,
    negative view i at any row far in time from b (more than negative_window frames, or another episode).
    """
    views = embeddings.shape[1]
    pairs = _ordered_view_pairs(views)
    negatives = temporal_negative_mask(times, episode, negative_window)
    d_ap = torch.cat([(embeddings[:, i] - embeddings[:, j]).pow(2).sum(-1) for i, j in pairs])
    anchor_view_distances = [squared_distances(embeddings[:, i], embeddings[:, i]) for i in range(views)]
    d_an = torch.cat([anchor_view_distances[i] for i, _ in pairs])
    return triplet_loss_from_distances(d_ap, d_an, negatives.repeat(len(pairs), 1), margin, mining)


def single_view_tcn_loss(embeddings: Tensor, times: Tensor, episode: Tensor, margin: float = 0.2,
                         positive_radius: int = 1, negative_radius: int = 10, mining: Mining = 'all') -> Tensor:
    """Single-view TCN baseline triplet loss.

    embeddings: (B, D) of frames at times[b] of episode[b]. Positives of an anchor: the other rows of its
    episode at most positive_radius frames away. Negatives: rows more than negative_radius frames away, or in
    another episode.
    """
    anchors, positives = torch.nonzero(temporal_positive_mask(times, episode, positive_radius), as_tuple=True)
    if anchors.numel() == 0:
        raise ValueError(f'no positive pair in the batch: no two frames of one episode lie within '
                         f'positive_radius={positive_radius} frames of each other')
    distances = squared_distances(embeddings, embeddings)
    negatives = temporal_negative_mask(times, episode, negative_radius)
    return triplet_loss_from_distances(
        distances[anchors, positives], distances[anchors], negatives[anchors], margin, mining)


def npairs_loss(anchors: Tensor, positives: Tensor, negative_mask: Tensor | None = None,
                temperature: float = 1.0) -> Tensor:
    """N-pairs loss (Sohn 2016): softmax cross-entropy of each anchor over the positives, its own being the target.

    anchors, positives: (N, D), row i of positives pairing with row i of anchors. negative_mask (N, N) says which
    other positives count as negatives of anchor i (all others when None); logits are anchor . positive /
    temperature. The mean is over anchors with at least one negative.
    """
    count = anchors.shape[0]
    own = torch.eye(count, dtype=torch.bool, device=anchors.device)
    negatives = ~own if negative_mask is None else negative_mask & ~own
    has_negative = negatives.any(dim=1)
    if not has_negative.any():
        raise ValueError(f'no anchor has a negative among the {count} pairs of the batch')
    logits = anchors @ positives.T / temperature
    logits = logits.masked_fill(~(negatives | own), float('-inf'))
    per_anchor = torch.logsumexp(logits, dim=1) - logits.diagonal()
    return per_anchor[has_negative].mean()


def multiview_npairs_loss(embeddings: Tensor, times: Tensor, episode: Tensor, negative_window: int = 10,
                          temperature: float = 1.0) -> Tensor:
    """N-pairs loss between synchronized views (TCN's n-pairs variant and mfTCN).

    embeddings: (B, V, D). For every ordered view pair (i, j), view i of row b is an anchor whose positive is view
    j of row b; the other rows' view j embeddings far in time from b are its negatives. Averaged over view pairs.
    """
    pairs = _ordered_view_pairs(embeddings.shape[1])
    negatives = temporal_negative_mask(times, episode, negative_window)
    return torch.stack([npairs_loss(embeddings[:, i], embeddings[:, j], negatives, temperature)
                        for i, j in pairs]).mean()


def embedding_l2_penalty(*embeddings: Tensor) -> Tensor:
    """Sum over the given (N, D) tensors of their mean squared L2 row norm."""
    return torch.stack([e.pow(2).sum(-1).mean() for e in embeddings]).sum()


def grasp2vec_loss(scene_differences: Tensor, object_embeddings: Tensor, l2_penalty: float) -> Tensor:
    """Grasp2Vec loss (Jang, Devin et al. 2018):
    NPairs(phi_s(pre) - phi_s(post), phi_o(o)) + NPairs(phi_o(o), phi_s(pre) - phi_s(post))
    + l2_penalty * (mean |phi_s(pre) - phi_s(post)|^2 + mean |phi_o(o)|^2).

    Every other grasp of the batch is a negative: rows must be distinct grasps.
    """
    return (npairs_loss(scene_differences, object_embeddings) + npairs_loss(object_embeddings, scene_differences)
            + l2_penalty * embedding_l2_penalty(scene_differences, object_embeddings))


def gaussian_kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """(B, Z), (B, Z) -> (B,): KL(N(mean, exp(log_variance)) || N(0, I)), summed over latent dimensions."""
    return 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).sum(-1)


CHANGE_THRESHOLD = 0.1
"""A pixel of a frame has changed when some channel is more than this (images in [0, 1]) from its episode's first
frame: the sim renders without noise, so what passes it is the arm or an object that moved."""


def changed_pixels(states: Tensor, contexts: Tensor, threshold: float = CHANGE_THRESHOLD) -> Tensor:
    """(B, 1, H, W) bool: the pixels of states (B, C, H, W) whose largest channel change from contexts (the same
    shape, or one that broadcasts to it) exceeds threshold."""
    return (states - contexts).abs().amax(dim=1, keepdim=True) > threshold


def foreground_pixels(states: Tensor, threshold: float = CHANGE_THRESHOLD) -> Tensor:
    """(B, 1, H, W) bool: the pixels of states (B, C, H, W) that changed (changed_pixels) from the batch's per-pixel
    median image. In a batch drawn from several episodes the median is what most frames show at a pixel (the
    tray), so what passes is what is there seldom: the arm, an object where it is this episode."""
    return changed_pixels(states, states.median(dim=0, keepdim=True).values, threshold)


def up_weighted(weight: float, mask: Callable[[], Tensor]) -> Tensor | None:
    """Pixel weights of a loss: weight where mask() is set, 1 elsewhere; None (no weighting) when weight is 1, and
    then mask is not computed: the default losses take no extra work per step."""
    return None if weight == 1.0 else 1.0 + (weight - 1.0) * mask().float()


def reconstruction_nll(logits: Tensor, targets: Tensor, likelihood: Likelihood,
                       weights: Tensor | None = None) -> Tensor:
    """(B, C, H, W) decoder logits and target images in [0, 1] -> (B,) negative log-likelihood summed over pixels,
    each pixel's term times weights (broadcast to the images, e.g. (B, 1, H, W); None: 1).

    'bernoulli': binary cross-entropy of sigmoid(logits) against the (continuous) pixel values.
    'gaussian': unit-variance Gaussian with mean sigmoid(logits), without the constant: 0.5 * squared error.
    """
    if likelihood == 'bernoulli':
        per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    elif likelihood == 'gaussian':
        per_pixel = 0.5 * (torch.sigmoid(logits) - targets).pow(2)
    else:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    if weights is not None:
        per_pixel = per_pixel * weights
    return per_pixel.flatten(1).sum(-1)


def beta_vae_loss(logits: Tensor, targets: Tensor, mean: Tensor, log_variance: Tensor, beta: float,
                  likelihood: Likelihood, weights: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """beta-VAE negative ELBO, averaged over the batch: reconstruction NLL (its pixels times weights, as
    reconstruction_nll) + beta * KL.

    Returns (loss, reconstruction, kl), the last two being their batch means.
    """
    reconstruction = reconstruction_nll(logits, targets, likelihood, weights).mean()
    kl = gaussian_kl(mean, log_variance).mean()
    return reconstruction + beta * kl, reconstruction, kl


def ccvae_loss(logits: Tensor, states: Tensor, mean: Tensor, log_variance: Tensor, context_logits: Tensor,
               contexts: Tensor, beta: float, context_recon_weight: float, likelihood: Likelihood,
               change_weight: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """CC-VAE loss (Nair et al. 2019): the conditional beta-VAE loss of the state plus context_recon_weight times
    the reconstruction NLL of the context image s0 decoded from c = e0(s0) alone. The state's pixels that changed
    from s0 (changed_pixels) weigh change_weight in its reconstruction (1: the paper's loss).

    Returns (loss, state reconstruction, kl, context reconstruction), the last three being batch means.
    """
    weights = up_weighted(change_weight, lambda: changed_pixels(states, contexts))
    cvae, reconstruction, kl = beta_vae_loss(logits, states, mean, log_variance, beta, likelihood, weights)
    context_reconstruction = reconstruction_nll(context_logits, contexts, likelihood).mean()
    return cvae + context_recon_weight * context_reconstruction, reconstruction, kl, context_reconstruction
