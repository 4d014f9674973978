"""Grasp2Vec: separate scene/object encoders, the loss wiring, heatmaps and rewards."""

from __future__ import annotations

import pytest
import torch

from ssl_robot.models import Grasp2Vec, Grasp2VecConfig
from ssl_robot.models.losses import grasp2vec_loss

SMALL = dict(image_size=16, encoder_widths=(8, 16), embedding_dim=5, l2_penalty=0.01)


def images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def model() -> Grasp2Vec:
    torch.manual_seed(0)
    return Grasp2Vec(Grasp2VecConfig(**SMALL))


def test_scene_and_object_encoders_share_no_weights(model):
    scene = {p.data_ptr() for p in model.scene_encoder.parameters()}
    objects = {p.data_ptr() for p in model.object_encoder.parameters()}
    assert scene and objects and not scene & objects
    # Same architecture, independent initialisation: the two embeddings of one image differ.
    assert not torch.allclose(model.scene_embedding(images(2)), model.object_embedding(images(2)))


def test_forward_is_the_grasp2vec_loss_of_scene_difference_and_object(model):
    batch = {'pre': images(4, 1), 'post': images(4, 2), 'object': images(4, 3)}
    loss, metrics = model(batch)
    differences = model.scene_embedding(batch['pre']) - model.scene_embedding(batch['post'])
    want = grasp2vec_loss(differences, model.object_embedding(batch['object']), 0.01)
    torch.testing.assert_close(loss.detach(), want)
    assert 0 <= metrics['retrieval_accuracy'] <= 1


def test_embeddings_are_mean_pooled_non_negative_maps(model):
    embeddings = model.scene_embedding(images(3))
    assert embeddings.shape == (3, 5) and (embeddings >= 0).all()


def test_heatmap_is_a_map_whose_mean_is_the_embedding_product(model):
    scenes, objects = images(2, 1), images(2, 2)
    heat = model.heatmap(scenes, objects)
    assert heat.shape == (2, 4, 4)  # 16 / 2**2
    product = (model.object_embedding(objects) * model.scene_embedding(scenes)).sum(-1)
    torch.testing.assert_close(heat.mean(dim=(1, 2)), product)
    upsampled = model.heatmap(scenes, objects, upsample=True)
    assert upsampled.shape == (2, 16, 16)


def test_reward_is_the_object_embedding_product_or_its_cosine(model):
    goals, grasped = images(3, 1), images(3, 2)
    goal_embeddings, grasped_embeddings = model.object_embedding(goals), model.object_embedding(grasped)
    torch.testing.assert_close(model.reward(goals, grasped, normalize=False),
                               (goal_embeddings * grasped_embeddings).sum(-1))
    cosine = model.reward(goals, grasped)
    torch.testing.assert_close(cosine, torch.cosine_similarity(goal_embeddings, grasped_embeddings, dim=-1))
    torch.testing.assert_close(model.reward(goals, goals, normalize=True), torch.ones(3))


def test_mismatched_batch_sizes_are_refused(model):
    with pytest.raises(ValueError, match=r"batch\['pre'\], batch\['post'\], batch\['object'\] must pair up row by row, "
                                         r"got rows batch\['pre'\]: 4, batch\['post'\]: 4, batch\['object'\]: 3"):
        model({'pre': images(4), 'post': images(4), 'object': images(3)})
    with pytest.raises(KeyError, match=r"Grasp2Vec batch is missing \['object'\]"):
        model({'pre': images(4), 'post': images(4)})
    with pytest.raises(ValueError, match='scenes, objects must pair up row by row, got rows scenes: 2, objects: 1'):
        model.heatmap(images(2), images(1))


def test_refine_layers_add_stride_one_convolutions_and_keep_the_map_size():
    torch.manual_seed(0)
    coarse = Grasp2Vec(Grasp2VecConfig(**SMALL))
    refined = Grasp2Vec(Grasp2VecConfig(**{**SMALL, 'refine_widths': [12, 7]}))
    assert refined.config.refine_widths == (12, 7) and coarse.config.refine_widths == ()
    scenes, objects = images(2), images(2, 1)
    assert refined.heatmap(scenes, objects).shape == coarse.heatmap(scenes, objects).shape == (2, 4, 4)
    for encoder, want in ((coarse.scene_encoder.encoder, []), (refined.scene_encoder.encoder, [(1, 12), (1, 7)])):
        convolutions = [layer for layer in encoder.modules() if isinstance(layer, torch.nn.Conv2d)]
        assert [(c.stride[0], c.out_channels) for c in convolutions] == [(2, 8), (2, 16), *want]


@pytest.mark.parametrize('widths', [[0], (4, -1), 'wide'])
def test_bad_refine_widths_are_refused_by_name(widths):
    with pytest.raises(ValueError, match='refine_widths'):
        Grasp2VecConfig(**{**SMALL, 'refine_widths': widths})
