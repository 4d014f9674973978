"""The losses against brute-force NumPy references: explicit loops over anchors, positives and negatives, written
from the papers' definitions and independently of the vectorised torch code (as tensorflow/models research/tcn
tests its losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssl_robot.models import losses

TOLERANCE = dict(rtol=1e-5, atol=1e-5)
SEEDS = range(6)


# --- NumPy references -------------------------------------------------------------------------------------------

def np_squared_distance(x: np.ndarray, y: np.ndarray) -> float:
    return float(sum((xi - yi) ** 2 for xi, yi in zip(x, y)))


def np_is_far(times, episode, a: int, b: int, window: int) -> bool:
    return episode[a] != episode[b] or abs(int(times[a]) - int(times[b])) > window


def np_triplet(pairs: list[tuple[float, list[float]]], margin: float, mining: str) -> float:
    """pairs: (d_ap, [d_an of every negative]) per anchor-positive pair."""
    if mining == 'all':
        total, count = 0.0, 0
        for d_ap, d_ans in pairs:
            for d_an in d_ans:
                total += max(0.0, d_ap - d_an + margin)
                count += 1
        return total / count
    per_pair = []
    for d_ap, d_ans in pairs:
        if not d_ans:
            continue
        farther = [d for d in d_ans if d > d_ap]
        chosen = min(farther) if farther else max(d_ans)
        per_pair.append(max(0.0, d_ap - chosen + margin))
    return sum(per_pair) / len(per_pair)


def np_multiview_triplet(emb, times, episode, margin, window, mining) -> float:
    batch, views, _ = emb.shape
    pairs = []
    for b in range(batch):
        for i in range(views):
            for j in range(views):
                if i == j:
                    continue
                d_ap = np_squared_distance(emb[b, i], emb[b, j])
                d_ans = [np_squared_distance(emb[b, i], emb[n, i])
                         for n in range(batch) if np_is_far(times, episode, b, n, window)]
                pairs.append((d_ap, d_ans))
    return np_triplet(pairs, margin, mining)


def np_single_view(emb, times, episode, margin, positive_radius, negative_radius, mining) -> float:
    batch = emb.shape[0]
    pairs = []
    for a in range(batch):
        for p in range(batch):
            if p == a or episode[p] != episode[a] or abs(int(times[p]) - int(times[a])) > positive_radius:
                continue
            d_ans = [np_squared_distance(emb[a], emb[n])
                     for n in range(batch) if np_is_far(times, episode, a, n, negative_radius)]
            pairs.append((np_squared_distance(emb[a], emb[p]), d_ans))
    return np_triplet(pairs, margin, mining)


def np_npairs(anchors, positives, is_negative=None, temperature=1.0) -> float:
    per_anchor = []
    for i in range(len(anchors)):
        columns = [i] + [j for j in range(len(positives))
                         if j != i and (is_negative is None or is_negative(i, j))]
        if len(columns) == 1:
            continue
        logits = [float(np.dot(anchors[i], positives[j])) / temperature for j in columns]
        top = max(logits)
        log_partition = top + math.log(sum(math.exp(l - top) for l in logits))
        per_anchor.append(log_partition - logits[0])
    return sum(per_anchor) / len(per_anchor)


def np_multiview_npairs(emb, times, episode, window, temperature) -> float:
    views = emb.shape[1]
    per_view_pair = [np_npairs(emb[:, i], emb[:, j], lambda a, b: np_is_far(times, episode, a, b, window),
                               temperature)
                     for i in range(views) for j in range(views) if i != j]
    return sum(per_view_pair) / len(per_view_pair)


def np_mean_squared_norm(x) -> float:
    return sum(float(sum(v ** 2 for v in row)) for row in x) / len(x)


def np_grasp2vec(differences, objects, l2_penalty) -> float:
    return (np_npairs(differences, objects) + np_npairs(objects, differences)
            + l2_penalty * (np_mean_squared_norm(differences) + np_mean_squared_norm(objects)))


def np_gaussian_kl(mean, log_variance) -> np.ndarray:
    """KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1/2, summed over dimensions."""
    out = []
    for m_row, lv_row in zip(mean, log_variance):
        total = 0.0
        for m, lv in zip(m_row, lv_row):
            s = math.sqrt(math.exp(lv))
            total += math.log(1.0 / s) + (s * s + m * m) / 2.0 - 0.5
        out.append(total)
    return np.array(out)


def np_reconstruction_nll(logits, targets, likelihood, weights=None) -> np.ndarray:
    """weights: None or (B, H, W), one per pixel for all its channels."""
    out = []
    for b, (logit_image, target_image) in enumerate(zip(logits, targets)):
        total = 0.0
        for index in np.ndindex(logit_image.shape):
            logit, x = logit_image[index], target_image[index]
            p = 1.0 / (1.0 + math.exp(-logit))
            if likelihood == 'bernoulli':
                term = -(x * math.log(p) + (1.0 - x) * math.log(1.0 - p))
            else:
                term = 0.5 * (x - p) ** 2
            total += term * (1.0 if weights is None else weights[b][index[1:]])
        out.append(total)
    return np.array(out)


# --- random batches ---------------------------------------------------------------------------------------------

def random_time_batch(seed: int, batch: int = 7):
    """Times spread over 0..40 in two episodes: some rows within a 6-frame window of others, some far."""
    rng = np.random.default_rng(seed)
    times = rng.choice(41, size=batch, replace=False)
    episode = rng.integers(0, 2, size=batch)
    return rng, times, episode


def as_torch(*arrays):
    return [torch.tensor(a) for a in arrays]


# --- tests ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', SEEDS)
@pytest.mark.parametrize('mining', ['all', 'semi_hard'])
def test_multiview_triplet_matches_reference(seed, mining):
    rng, times, episode = random_time_batch(seed)
    emb = rng.normal(size=(7, 3, 4))
    got = losses.multiview_triplet_loss(*as_torch(emb, times, episode), margin=0.5, negative_window=6,
                                        mining=mining)
    np.testing.assert_allclose(got.item(), np_multiview_triplet(emb, times, episode, 0.5, 6, mining), **TOLERANCE)


def test_multiview_triplet_by_hand():
    # Two views, 1-D embeddings, times 0 and 100 (far apart).
    # Anchor (t0, v0)=0, positive (t0, v1)=1, negative (t100, v0)=3: max(0, 1 - 9 + 4) = 0
    # Anchor (t0, v1)=1, positive 0, negative (t100, v1)=1.5: max(0, 1 - 0.25 + 4) = 4.75
    # Anchor (t100, v0)=3, positive 1.5, negative 0: max(0, 2.25 - 9 + 4) = 0
    # Anchor (t100, v1)=1.5, positive 3, negative 1: max(0, 2.25 - 0.25 + 4) = 6
    emb = torch.tensor([[[0.0], [1.0]], [[3.0], [1.5]]])
    loss = losses.multiview_triplet_loss(emb, torch.tensor([0, 100]), torch.tensor([0, 0]), margin=4.0,
                                         negative_window=10, mining='all')
    assert loss.item() == pytest.approx((0 + 4.75 + 0 + 6) / 4)


def test_semi_hard_takes_closest_farther_negative_else_farthest():
    # One anchor-positive pair, d_ap = 2. Negatives at 1, 3, 5: the closest farther one is 3 -> 2 - 3 + 1 = 0.
    # Negatives at 0.5, 1: none farther, the farthest is 1 -> 2 - 1 + 1 = 2.
    mask = torch.ones(1, 3, dtype=torch.bool)
    semi_hard = losses.triplet_loss_from_distances(torch.tensor([2.0]), torch.tensor([[1.0, 5.0, 3.0]]), mask,
                                                   margin=1.0, mining='semi_hard')
    assert semi_hard.item() == pytest.approx(0.0)
    none_farther = losses.triplet_loss_from_distances(torch.tensor([2.0]), torch.tensor([[0.5, 1.0, 9.0]]),
                                                      torch.tensor([[True, True, False]]), margin=1.0,
                                                      mining='semi_hard')
    assert none_farther.item() == pytest.approx(2.0)


@pytest.mark.parametrize('seed', SEEDS)
@pytest.mark.parametrize('mining', ['all', 'semi_hard'])
def test_single_view_tcn_matches_reference(seed, mining):
    rng = np.random.default_rng(seed)
    # Pairs of neighbouring frames so that positives exist, spread over two episodes.
    starts = rng.choice(np.arange(0, 60, 4), size=4, replace=False)
    times = np.concatenate([starts, starts + rng.integers(1, 3, size=4)])
    episode = np.concatenate([[0, 0, 1, 1], [0, 0, 1, 1]])
    emb = rng.normal(size=(8, 5))
    got = losses.single_view_tcn_loss(*as_torch(emb, times, episode), margin=0.3, positive_radius=2,
                                      negative_radius=8, mining=mining)
    np.testing.assert_allclose(got.item(), np_single_view(emb, times, episode, 0.3, 2, 8, mining), **TOLERANCE)


@pytest.mark.parametrize('seed', SEEDS)
def test_npairs_matches_reference(seed):
    rng = np.random.default_rng(seed)
    anchors, positives = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    mask = rng.random((6, 6)) < 0.6
    mask[2] = False  # an anchor without negatives is left out of the mean
    got = losses.npairs_loss(*as_torch(anchors, positives, mask), temperature=0.7)
    want = np_npairs(anchors, positives, lambda i, j: bool(mask[i, j]), temperature=0.7)
    np.testing.assert_allclose(got.item(), want, **TOLERANCE)
    np.testing.assert_allclose(losses.npairs_loss(*as_torch(anchors, positives)).item(),
                               np_npairs(anchors, positives), **TOLERANCE)


@pytest.mark.parametrize('seed', SEEDS)
def test_multiview_npairs_matches_reference(seed):
    rng, times, episode = random_time_batch(seed)
    emb = rng.normal(size=(7, 3, 4))
    got = losses.multiview_npairs_loss(*as_torch(emb, times, episode), negative_window=6, temperature=0.5)
    np.testing.assert_allclose(got.item(), np_multiview_npairs(emb, times, episode, 6, 0.5), **TOLERANCE)


@pytest.mark.parametrize('seed', SEEDS)
def test_grasp2vec_loss_matches_reference(seed):
    rng = np.random.default_rng(seed)
    differences, objects = rng.normal(size=(5, 6)), np.abs(rng.normal(size=(5, 6)))
    got = losses.grasp2vec_loss(*as_torch(differences, objects), l2_penalty=0.3)
    np.testing.assert_allclose(got.item(), np_grasp2vec(differences, objects, 0.3), **TOLERANCE)


@pytest.mark.parametrize('seed', SEEDS)
def test_gaussian_kl_matches_reference(seed):
    rng = np.random.default_rng(seed)
    mean, log_variance = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(losses.gaussian_kl(*as_torch(mean, log_variance)).numpy(),
                               np_gaussian_kl(mean, log_variance), **TOLERANCE)


@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_reconstruction_nll_matches_reference(likelihood):
    rng = np.random.default_rng(0)
    logits, targets = 2 * rng.normal(size=(3, 2, 4, 4)), rng.random((3, 2, 4, 4))
    np.testing.assert_allclose(losses.reconstruction_nll(*as_torch(logits, targets), likelihood).numpy(),
                               np_reconstruction_nll(logits, targets, likelihood), **TOLERANCE)


@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_beta_vae_loss_matches_reference(likelihood):
    rng = np.random.default_rng(1)
    logits, states = rng.normal(size=(3, 1, 4, 4)), rng.random((3, 1, 4, 4))
    mean, log_variance = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    loss, reconstruction, kl = losses.beta_vae_loss(*as_torch(logits, states, mean, log_variance), beta=4.0,
                                                    likelihood=likelihood)
    want_reconstruction = np_reconstruction_nll(logits, states, likelihood).mean()
    want_kl = np_gaussian_kl(mean, log_variance).mean()
    np.testing.assert_allclose([loss.item(), reconstruction.item(), kl.item()],
                               [want_reconstruction + 4.0 * want_kl, want_reconstruction, want_kl], **TOLERANCE)


def test_ccvae_loss_matches_reference():
    rng = np.random.default_rng(2)
    logits, states = rng.normal(size=(3, 1, 4, 4)), rng.random((3, 1, 4, 4))
    context_logits, contexts = rng.normal(size=(3, 1, 4, 4)), rng.random((3, 1, 4, 4))
    mean, log_variance = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    loss, reconstruction, kl, context_reconstruction = losses.ccvae_loss(
        *as_torch(logits, states, mean, log_variance, context_logits, contexts), beta=0.5,
        context_recon_weight=2.0, likelihood='bernoulli')
    want_reconstruction = np_reconstruction_nll(logits, states, 'bernoulli').mean()
    want_kl = np_gaussian_kl(mean, log_variance).mean()
    want_context = np_reconstruction_nll(context_logits, contexts, 'bernoulli').mean()
    np.testing.assert_allclose(
        [loss.item(), reconstruction.item(), kl.item(), context_reconstruction.item()],
        [want_reconstruction + 0.5 * want_kl + 2.0 * want_context, want_reconstruction, want_kl, want_context],
        **TOLERANCE)


def test_ccvae_loss_weighs_the_pixels_that_changed_from_the_context():
    rng = np.random.default_rng(3)
    logits, contexts = rng.normal(size=(2, 3, 4, 4)), rng.random((2, 3, 4, 4))
    states = contexts.copy()
    states[0, 2, 1, 1] = np.round(1.0 - contexts[0, 2, 1, 1])    # one channel moves by at least 0.5: a change
    states[1, :, 3, 0] = np.round(1.0 - contexts[1, :, 3, 0])
    states[1, 0, 0, 0] += 0.05 if contexts[1, 0, 0, 0] < 0.5 else -0.05   # below the threshold
    context_logits, mean, log_variance = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    weights = np.ones((2, 4, 4))
    for b in range(2):
        for row in range(4):
            for column in range(4):
                if max(abs(states[b, c, row, column] - contexts[b, c, row, column]) for c in range(3)) > 0.1:
                    weights[b, row, column] = 7.0
    assert weights[0, 1, 1] == 7.0 and weights[1, 0, 0] == 1.0
    loss, reconstruction, kl, context_reconstruction = losses.ccvae_loss(
        *as_torch(logits, states, mean, log_variance, context_logits, contexts), beta=0.5,
        context_recon_weight=2.0, likelihood='bernoulli', change_weight=7.0)
    want_reconstruction = np_reconstruction_nll(logits, states, 'bernoulli', weights).mean()
    want = want_reconstruction + 0.5 * np_gaussian_kl(mean, log_variance).mean() \
        + 2.0 * np_reconstruction_nll(context_logits, contexts, 'bernoulli').mean()
    np.testing.assert_allclose([loss.item(), reconstruction.item()], [want, want_reconstruction], **TOLERANCE)


def test_foreground_pixels_are_those_off_the_batch_median_by_more_than_the_threshold():
    rng = np.random.default_rng(4)
    tray = rng.random((3, 4, 4))
    states = np.repeat(tray[None], 5, axis=0)
    states[1, 0, 2, 2] = np.round(1.0 - tray[0, 2, 2])        # an object in one frame of five: foreground
    states[3, :, 0, 1] = np.round(1.0 - tray[:, 0, 1])
    states[4, 1, 3, 3] += 0.05 if tray[1, 3, 3] < 0.5 else -0.05   # below the threshold
    states[:3, 2, 1, 0] = np.round(1.0 - tray[2, 1, 0])     # there in three frames of five: the median, not foreground
    want = np.zeros((5, 1, 4, 4), dtype=bool)
    for b in range(5):
        for row in range(4):
            for column in range(4):
                median = [sorted(states[:, c, row, column])[2] for c in range(3)]
                want[b, 0, row, column] = max(abs(states[b, c, row, column] - median[c]) for c in range(3)) > 0.1
    assert want[1, 0, 2, 2] and want[3, 0, 0, 1] and not want[4, 0, 3, 3] and not want[0, 0, 1, 0] and want[4, 0, 1, 0]
    np.testing.assert_array_equal(losses.foreground_pixels(torch.from_numpy(states)).numpy(), want)
    weights = losses.up_weighted(6.0, lambda: torch.from_numpy(want)).numpy()
    np.testing.assert_array_equal(weights, np.where(want, 6.0, 1.0))
    assert losses.up_weighted(1.0, lambda: pytest.fail('a weight of 1 must not compute its mask')) is None


@pytest.mark.parametrize('mining', ['all', 'semi_hard'])
def test_triplet_gradients_are_finite_when_some_anchors_have_no_negative(mining):
    # Rows 0 and 1 are near each other and row 2 is far from both: every anchor has a negative, but the
    # masked -inf/inf entries of the semi-hard selection must not leak NaNs into the gradient.
    emb = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    times = torch.tensor([0, 1, 50])
    loss = losses.multiview_triplet_loss(emb, times, torch.zeros(3, dtype=torch.long), margin=5.0,
                                         negative_window=5, mining=mining)
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(
        lambda e: losses.multiview_triplet_loss(e, times, torch.zeros(3, dtype=torch.long), margin=5.0,
                                                negative_window=5, mining=mining), (emb.detach().requires_grad_(),))


def test_npairs_gradcheck():
    anchors = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    positives = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda a, p: losses.npairs_loss(a, p, mask, 0.5), (anchors, positives))


def test_batches_without_negatives_are_refused():
    emb = torch.randn(3, 2, 4)
    times, episode = torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match='no valid triplet'):
        losses.multiview_triplet_loss(emb, times, episode, negative_window=5)
    with pytest.raises(ValueError, match='no anchor has a negative'):
        losses.multiview_npairs_loss(emb, times, episode, negative_window=5)
    with pytest.raises(ValueError, match='no positive pair'):
        losses.single_view_tcn_loss(emb[:, 0], torch.tensor([0, 10, 20]), episode, positive_radius=2)


def test_other_episodes_count_as_far():
    mask = losses.temporal_negative_mask(torch.tensor([0, 1, 1, 30]), torch.tensor([0, 0, 1, 0]), window=5)
    assert mask.tolist() == [[False, False, True, True], [False, False, True, True],
                             [True, True, False, True], [True, True, True, False]]


def test_multiview_losses_need_two_views():
    with pytest.raises(ValueError, match='at least 2 synchronized views, got 1'):
        losses.multiview_triplet_loss(torch.randn(3, 1, 4), torch.tensor([0, 20, 40]), torch.zeros(3))


def test_unknown_mining_and_likelihood_are_refused():
    with pytest.raises(ValueError, match="got 'hardest'"):
        losses.triplet_loss_from_distances(torch.ones(1), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool),
                                           1.0, 'hardest')
    with pytest.raises(ValueError, match="got 'poisson'"):
        losses.reconstruction_nll(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 'poisson')
