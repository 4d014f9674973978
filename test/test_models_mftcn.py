"""Multi-frame TCN: clip embeddings, the lookback window, and that the 3D convolution sees frame order."""

from __future__ import annotations

import pytest
import torch

from ssl_robot.models import MultiFrameTCN, MultiFrameTCNConfig
from ssl_robot.models.losses import multiview_npairs_loss

SMALL = dict(image_size=16, encoder_widths=(8, 16), embedding_dim=6, num_frames=3, temporal_channels=8)


def clips(*leading: int) -> torch.Tensor:
    return torch.rand(*leading, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_lookback_window_spans_n_minus_one_strides():
    assert MultiFrameTCNConfig(num_frames=3, stride=4).lookback_frames == 9
    assert MultiFrameTCNConfig(num_frames=1, stride=4).lookback_frames == 1


def test_embed_clip_gives_one_unit_norm_embedding_per_clip():
    model = MultiFrameTCN(MultiFrameTCNConfig(**SMALL))
    embeddings = model.embed_clip(clips(4, 3))
    assert embeddings.shape == (4, 6)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(4))
    assert not embeddings.requires_grad


def test_embedding_depends_on_frame_order():
    model = MultiFrameTCN(MultiFrameTCNConfig(**SMALL))
    clip = clips(1, 3)
    assert not torch.allclose(model.embed_clip(clip), model.embed_clip(clip[:, [2, 1, 0]]), atol=1e-4)


def test_clips_are_embedded_independently_of_their_batch():
    model = MultiFrameTCN(MultiFrameTCNConfig(**SMALL))
    batch = clips(3, 3)
    torch.testing.assert_close(model.embed_clip(batch)[1:2], model.embed_clip(batch[1:2]))


def test_forward_is_npairs_across_views_of_clip_embeddings():
    config = MultiFrameTCNConfig(**SMALL, negative_window=5, temperature=0.4)
    model = MultiFrameTCN(config)
    times, episode = torch.tensor([0, 10, 20, 30]), torch.tensor([0, 0, 0, 1])
    batch = {'clips': clips(4, 2, 3), 'times': times, 'episode': episode}
    loss, metrics = model(batch)
    embeddings = model.embed_clip(batch['clips'].flatten(0, 1)).view(4, 2, -1)
    torch.testing.assert_close(loss.detach(), multiview_npairs_loss(embeddings, times, episode, 5, 0.4))
    assert metrics['loss'] == pytest.approx(loss.item())


def test_clips_of_the_wrong_length_are_refused():
    model = MultiFrameTCN(MultiFrameTCNConfig(**SMALL))
    with pytest.raises(ValueError, match=r"batch\['clips'\] must have shape \(B, V, 3, 3, 16, 16\), got "
                                         r"\(4, 2, 2, 3, 16, 16\)"):
        model({'clips': clips(4, 2, 2), 'times': torch.arange(4), 'episode': torch.zeros(4, dtype=torch.long)})
    with pytest.raises(ValueError, match=r'clips must have shape \(N, 3, 3, 16, 16\)'):
        model.embed_clip(clips(4, 5))
