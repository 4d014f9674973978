"""Multi-view TCN and the single-view baseline: embeddings, losses wired to the config, input checks."""

from __future__ import annotations

import pytest
import torch

from ssl_robot.models import TCN, SingleViewTCN, SingleViewTCNConfig, TCNConfig
from ssl_robot.models.encoders import random_shift
from ssl_robot.models.losses import multiview_npairs_loss, multiview_triplet_loss, single_view_tcn_loss

SMALL = dict(image_size=16, encoder_widths=(8, 16), embedding_dim=6)
TIMES, EPISODE = torch.tensor([0, 1, 20, 21, 40]), torch.tensor([0, 0, 0, 0, 1])


def frames(*leading: int) -> torch.Tensor:
    return torch.rand(*leading, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_embed_gives_unit_norm_embeddings_without_a_graph():
    model = TCN(TCNConfig(**SMALL))
    embeddings = model.embed(frames(5))
    assert embeddings.shape == (5, 6)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(5))
    assert not embeddings.requires_grad


def test_embed_runs_in_eval_mode_and_restores_the_callers_mode():
    model = TCN(TCNConfig(**SMALL))
    seen_modes = []
    model.encoder.register_forward_hook(lambda module, inputs, output: seen_modes.append(module.training))
    model.train()
    model.embed(frames(2))
    assert seen_modes == [False] and model.training
    model.eval()
    model.embed(frames(2))
    assert seen_modes == [False, False] and not model.training


@pytest.mark.parametrize('loss, mining', [('triplet', 'all'), ('triplet', 'semi_hard'), ('npairs', 'all')])
def test_forward_uses_the_configured_loss(loss, mining):
    config = TCNConfig(**SMALL, loss=loss, mining=mining, margin=0.7, negative_window=5, temperature=0.3)
    model = TCN(config)
    batch = {'frames': frames(5, 3), 'times': TIMES, 'episode': EPISODE}
    torch.manual_seed(0)
    got, metrics = model(batch)
    embeddings = model.embed(batch['frames'].flatten(0, 1)).view(5, 3, -1)
    if loss == 'triplet':
        want = multiview_triplet_loss(embeddings, TIMES, EPISODE, 0.7, 5, mining)
    else:
        want = multiview_npairs_loss(embeddings, TIMES, EPISODE, 5, 0.3)
    torch.testing.assert_close(got.detach(), want)
    assert set(metrics) == {'loss', 'positive_distance', 'negative_distance'}


def test_single_view_forward_uses_its_radii():
    config = SingleViewTCNConfig(**SMALL, positive_radius=1, negative_radius=15, mining='semi_hard')
    model = SingleViewTCN(config)
    batch = {'frames': frames(5), 'times': TIMES, 'episode': EPISODE}
    got, metrics = model(batch)
    want = single_view_tcn_loss(model.embed(batch['frames']), TIMES, EPISODE, config.margin, 1, 15, 'semi_hard')
    torch.testing.assert_close(got.detach(), want)
    assert metrics['positive_distance'] >= 0


def test_views_are_not_mixed_up_with_times():
    # Swapping the views of one row changes nothing for the multi-view loss (view pairs are symmetric in
    # the triplet set); swapping two rows' frames without their times does.
    model = TCN(TCNConfig(**SMALL))
    batch = {'frames': frames(5, 2), 'times': TIMES, 'episode': EPISODE}
    reference, _ = model(batch)
    swapped_views = dict(batch, frames=batch['frames'][:, [1, 0]])
    torch.testing.assert_close(model(swapped_views)[0], reference)
    swapped_rows = dict(batch, frames=batch['frames'][[2, 1, 0, 3, 4]])
    assert not torch.allclose(model(swapped_rows)[0], reference)


@pytest.mark.parametrize('batch, error, message', [
    ({'frames': frames(5, 2), 'times': TIMES}, KeyError, r"TCN batch is missing \['episode'\]"),
    ({'frames': frames(5), 'times': TIMES, 'episode': EPISODE}, ValueError,
     r"batch\['frames'\] must have shape \(B, V, 3, 16, 16\), got \(5, 3, 16, 16\)"),
    ({'frames': (frames(5, 2) * 255).to(torch.uint8), 'times': TIMES, 'episode': EPISODE}, ValueError,
     'must be a float tensor with values in \\[0, 1\\], got dtype torch.uint8'),
    ({'frames': frames(5, 2) * 255, 'times': TIMES, 'episode': EPISODE}, ValueError,
     'uint8 images need dividing by 255'),
    ({'frames': frames(5, 2), 'times': TIMES.float(), 'episode': EPISODE}, ValueError,
     r"batch\['times'\] must be an integer tensor of shape \(5,\), got torch.float32"),
    ({'frames': frames(5, 2), 'times': TIMES, 'episode': EPISODE[:3]}, ValueError,
     r"batch\['episode'\] must be an integer tensor of shape \(5,\)"),
    ({'frames': frames(5, 1), 'times': TIMES, 'episode': EPISODE}, ValueError, 'at least 2 synchronized views'),
])
def test_bad_batches_are_refused_with_a_clear_message(batch, error, message):
    with pytest.raises(error, match=message):
        TCN(TCNConfig(**SMALL))(batch)


def test_single_view_refuses_multi_view_frames():
    with pytest.raises(ValueError, match=r"must have shape \(B, 3, 16, 16\), got \(5, 2, 3, 16, 16\)"):
        SingleViewTCN(SingleViewTCNConfig(**SMALL))({'frames': frames(5, 2), 'times': TIMES, 'episode': EPISODE})


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_runs_on_cuda():
    model = TCN(TCNConfig(**SMALL)).cuda()
    assert model.embed(frames(2).cuda()).device.type == 'cuda'


def test_random_shift_moves_each_image_by_at_most_the_shift_and_is_off_at_zero():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 2, 8, 8, generator=generator)
    assert torch.equal(random_shift(images, 0), images)
    shifted = random_shift(images, 2, generator)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode='replicate')
    moved = 0
    for image, result in zip(padded, shifted):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(image[:, dy:dy + 8, dx:dx + 8], result)]
        assert matches, 'not a shifted copy with replicated edges'
        moved += (2, 2) not in matches
    assert moved > 8  # 24 of 25 offsets move the image

