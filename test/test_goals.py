"""ssl_robot.inference grasp2vec, goals and model_holder: grasp embeddings and heatmap colouring, goal sampling, and
the one model holder every model node uses (model loading that may wait for its file, problems by kind). No ROS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_robot import images
from ssl_robot.inference.goals import GoalSampler, needs_context, scene_goal, scene_latent
from ssl_robot.inference.grasp2vec import colour_heatmap, embed_grasp, heatmap_overlay
from ssl_robot.inference.model_holder import ModelLoader, ModelUnavailable
from ssl_robot.health.problem_log import ProblemLog
from ssl_robot.inference.model_holder import LoadedModel
from test_inference import camera_frames, write_checkpoint

TINY_GRASP2VEC = {'image_size': 16, 'encoder_widths': [8, 16], 'embedding_dim': 6}
TINY_BETAVAE = {'image_size': 16, 'encoder_widths': [8, 16], 'decoder_widths': [16, 8], 'latent_dim': 4}
TINY_CCVAE = {**TINY_BETAVAE, 'context_dim': 3}
TINY_CONFIGS = {'grasp2vec': TINY_GRASP2VEC, 'betavae': TINY_BETAVAE, 'ccvae': TINY_CCVAE}
JET_LOW_RGB, JET_HIGH_RGB = (0, 0, 128), (128, 0, 0)  # cv2.COLORMAP_JET at 0 and 255, as RGB


def write_model(tmp_path, method: str, seed: int = 0, step: int = 1):
    return write_checkpoint(tmp_path / f'{method}.safetensors', method, TINY_CONFIGS[method], seed=seed, step=step)


def model_input(frame: np.ndarray, size: int = 16) -> torch.Tensor:
    return images.model_input(frame, size)


def test_colour_heatmap_runs_blue_to_red_at_the_requested_size():
    heat = np.array([[0.0, 1.0], [2.0, 4.0]], dtype=np.float32)
    colours = colour_heatmap(heat, 6, 10)
    assert colours.shape == (6, 10, 3) and colours.dtype == np.uint8
    assert tuple(colours[0, 0]) == JET_LOW_RGB and tuple(colours[-1, -1]) == JET_HIGH_RGB
    np.testing.assert_array_equal(colour_heatmap(np.full((2, 2), 7.0), 3, 3), np.full((3, 3, 3), JET_LOW_RGB))
    with pytest.raises(ValueError, match=r'finite values, got shape \(2, 2\)'):
        colour_heatmap(np.array([[0.0, np.nan], [1.0, 2.0]]), 4, 4)
    with pytest.raises(ValueError, match=r'non-empty \(h, w\) array .* got shape \(4,\)'):
        colour_heatmap(np.zeros(4), 4, 4)
    with pytest.raises(ValueError, match='heatmap size must be positive, got 0x4'):
        colour_heatmap(heat, 4, 0)


def test_heatmap_overlay_blends_the_colours_over_the_scene_by_opacity():
    scene = camera_frames(0, views=1, shape=(6, 10))[0]
    heat = np.arange(4.0).reshape(2, 2)
    colours = colour_heatmap(heat, 6, 10)
    np.testing.assert_array_equal(heatmap_overlay(scene, heat, 0.0), scene)
    np.testing.assert_array_equal(heatmap_overlay(scene, heat, 1.0), colours)
    half = heatmap_overlay(scene, heat, 0.5).astype(int)
    assert np.abs(half - (scene.astype(int) + colours) / 2).max() <= 1
    with pytest.raises(ValueError, match='opacity must be in \\[0, 1\\], got 1.5'):
        heatmap_overlay(scene, heat, 1.5)
    with pytest.raises(ValueError, match=r'scene must be an \(H, W, 3\) uint8 RGB image, got float64 \(6, 10\)'):
        heatmap_overlay(np.zeros((6, 10)), heat, 0.5)


def test_embed_grasp_gives_the_models_embeddings_and_its_heatmap_over_the_scene(tmp_path):
    loaded = LoadedModel(write_model(tmp_path, 'grasp2vec'), 'grasp2vec', device='cpu')
    scene, grasped = camera_frames(3, views=2, shape=(24, 32))
    embeddings = embed_grasp(loaded, scene, grasped, heatmap_opacity=1.0)
    model = loaded.model
    np.testing.assert_allclose(embeddings.scene, model.scene_embedding(model_input(scene)).numpy(), atol=1e-6)
    np.testing.assert_allclose(embeddings.grasped_object, model.object_embedding(model_input(grasped)).numpy(),
                               atol=1e-6)
    assert embeddings.scene.shape == embeddings.grasped_object.shape == (1, 6)
    heat = model.heatmap(model_input(scene), model_input(grasped), upsample=True)[0].numpy()
    np.testing.assert_array_equal(embeddings.heatmap, colour_heatmap(heat, 24, 32))
    assert embeddings.model_id == loaded.model_id

    failed = embed_grasp(loaded, scene, None, heatmap_opacity=0.5)
    assert failed.grasped_object is None and failed.heatmap is None
    np.testing.assert_array_equal(failed.scene, embeddings.scene)
    vae = LoadedModel(write_model(tmp_path, 'betavae'), 'betavae', device='cpu')
    with pytest.raises(ValueError, match=r'betavae:betavae.safetensors:step1:\w+ is not a Grasp2Vec model'):
        embed_grasp(vae, scene, grasped, 0.5)


def test_goal_sampler_draws_seeded_prior_latents_and_decodes_them_in_the_context(tmp_path):
    ccvae = LoadedModel(write_model(tmp_path, 'ccvae'), 'ccvae', device='cpu')
    context = camera_frames(4, views=1, shape=(24, 32))[0]
    sampler = GoalSampler(seed=7)
    goals = [sampler.sample(ccvae, context) for _ in range(2)]
    expected = torch.randn(2, 4, generator=torch.Generator().manual_seed(7))
    for goal, latent in zip(goals, expected):
        np.testing.assert_array_equal(goal.latent, latent[None].numpy())
        assert goal.latent.dtype == np.float32 and goal.image.shape == (16, 16, 3) and goal.image.dtype == np.uint8
        decoded = ccvae.model.decode(latent[None], model_input(context))[0].movedim(0, -1).numpy() * 255
        assert np.abs(goal.image - decoded).max() <= 0.5 + 1e-4
        assert goal.model_id == ccvae.model_id
    other_context = camera_frames(5, views=1, shape=(24, 32))[0]
    assert not np.array_equal(GoalSampler(seed=7).sample(ccvae, other_context).image, goals[0].image)

    betavae = LoadedModel(write_model(tmp_path, 'betavae'), 'betavae', device='cpu')
    goal = GoalSampler(seed=7).sample(betavae, None)
    np.testing.assert_array_equal(goal.latent, expected[:1].numpy())
    decoded = betavae.model.decode(expected[:1])[0].movedim(0, -1).numpy() * 255
    assert np.abs(goal.image - decoded).max() <= 0.5 + 1e-4
    assert not np.array_equal(GoalSampler(seed=None).sample(betavae, None).latent, goal.latent)

    with pytest.raises(ValueError, match='a ccvae goal is imagined from a context image'):
        sampler.sample(ccvae, None)
    with pytest.raises(ValueError, match='a betavae goal is imagined without a context image'):
        sampler.sample(betavae, context)
    assert needs_context('ccvae') and not needs_context('betavae')
    with pytest.raises(ValueError, match=r"method 'tcn' does not imagine goals"):
        needs_context('tcn')


def test_scene_goal_is_the_frame_and_its_posterior_mean_under_the_episode_context(tmp_path):
    ccvae = LoadedModel(write_model(tmp_path, 'ccvae'), 'ccvae', device='cpu')
    frame, context, other_context = camera_frames(6, views=3, shape=(24, 32))
    goal = scene_goal(ccvae, frame, context)
    expected = ccvae.model.encode(model_input(frame), model_input(context)).numpy()
    np.testing.assert_allclose(goal.latent, expected, atol=1e-6)
    assert goal.latent.shape == (1, 4) and goal.latent.dtype == np.float32
    np.testing.assert_array_equal(goal.image, frame)
    assert goal.model_id == ccvae.model_id
    assert not np.allclose(scene_goal(ccvae, frame, other_context).latent, goal.latent, atol=1e-4)

    betavae = LoadedModel(write_model(tmp_path, 'betavae'), 'betavae', device='cpu')
    goal = scene_goal(betavae, frame, None)
    np.testing.assert_allclose(goal.latent, betavae.model.encode(model_input(frame)).numpy(), atol=1e-6)
    np.testing.assert_array_equal(goal.image, frame)

    with pytest.raises(ValueError, match='a ccvae scene latent is encoded under a context image'):
        scene_goal(ccvae, frame, None)
    with pytest.raises(ValueError, match='a betavae scene latent is encoded without a context image'):
        scene_goal(betavae, frame, context)


def test_scene_latent_is_e_of_s_given_s0_for_the_ccvae_and_e_of_s_for_the_betavae(tmp_path):
    """What the goal node publishes on /latent/scene for every scene frame, and a scene goal's latent: one encoding."""
    frame, context, other_context = camera_frames(8, views=3, shape=(24, 32))
    ccvae = LoadedModel(write_model(tmp_path, 'ccvae'), 'ccvae', device='cpu')
    encoded = scene_latent(ccvae, frame, context)
    np.testing.assert_allclose(encoded.latent, ccvae.model.encode(model_input(frame), model_input(context)).numpy(),
                               atol=1e-6)
    assert encoded.latent.shape == (1, 4) and encoded.latent.dtype == np.float32
    assert encoded.model_id == ccvae.model_id
    np.testing.assert_array_equal(scene_goal(ccvae, frame, context).latent, encoded.latent)
    assert not np.allclose(scene_latent(ccvae, frame, other_context).latent, encoded.latent, atol=1e-4)

    betavae = LoadedModel(write_model(tmp_path, 'betavae'), 'betavae', device='cpu')
    encoded = scene_latent(betavae, frame, None)
    np.testing.assert_allclose(encoded.latent, betavae.model.encode(model_input(frame)).numpy(), atol=1e-6)
    assert encoded.model_id == betavae.model_id
    with pytest.raises(ValueError, match='a ccvae scene latent is encoded under a context image'):
        scene_latent(ccvae, frame, None)
    with pytest.raises(ValueError, match='a betavae scene latent is encoded without a context image'):
        scene_latent(betavae, frame, context)


def test_model_loader_waits_for_its_checkpoint_then_keeps_it_fresh(tmp_path):
    path = tmp_path / 'ccvae.safetensors'
    loader = ModelLoader(path, 'ccvae', device='cpu')
    with pytest.raises(ModelUnavailable, match='no ccvae model loaded: no load attempted yet'):
        loader.require()
    with pytest.raises(FileNotFoundError, match='ccvae.safetensors does not exist'):
        loader.refresh()
    with pytest.raises(ModelUnavailable, match=r'no ccvae model loaded: checkpoint .*ccvae.safetensors does not exist'):
        loader.require()
    assert loader.model_id == 'none'

    write_model(tmp_path, 'ccvae', step=1)
    assert loader.refresh() and loader.require().model_id.startswith('ccvae:ccvae.safetensors:step1:')
    assert not loader.refresh()
    first = loader.require().model_id

    warnings: list[str] = []
    announced: list[str] = []
    problems = ProblemLog(warnings.append)
    write_checkpoint(path, 'betavae', TINY_BETAVAE)
    loader.refresh_reporting(problems, announced.append)
    assert loader.model_id == first and not announced
    assert "holds a 'betavae' checkpoint, not 'ccvae'" in warnings[0] and f'still using {first}' in warnings[0]
    write_model(tmp_path, 'ccvae', seed=1, step=2)
    loader.refresh_reporting(problems, announced.append)
    assert announced == [f'checkpoint loaded: {first} -> {loader.model_id}'] and ':step2:' in loader.model_id

    with pytest.raises(ValueError, match="unknown method 'nope'"):
        ModelLoader(path, 'nope')


def test_model_loader_with_no_path_takes_the_shipped_default_or_says_how_to_make_it():
    loader = ModelLoader('', 'grasp2vec', device='cpu')
    try:
        loader.refresh()
    except FileNotFoundError as error:
        assert 'grasp2vec.safetensors' in str(error) and 'scripts/train-default-checkpoints' in str(error)
        assert 'scripts/train-default-checkpoints' in str(loader.error)
    else:
        assert loader.require().model_id.startswith('grasp2vec:grasp2vec.safetensors:')


def test_problem_log_warns_once_per_period_per_kind_and_keeps_every_count():
    now = [0.0]
    warnings: list[str] = []
    problems = ProblemLog(warnings.append, warn_period_s=1.0, clock=lambda: now[0])
    for _ in range(3):
        problems.report('bad_image', 'step too small')
    problems.report('no_model', 'not yet')
    assert warnings == ['bad_image: step too small', 'no_model: not yet']
    now[0] = 1.0
    problems.report('bad_image', 'empty data')
    assert warnings[-1] == 'bad_image: empty data'
    assert problems.take_recent() == 'bad_image: empty data; no_model: not yet'
    assert problems.take_recent() == ''
    assert problems.count_values() == {'count_bad_image': '4', 'count_no_model': '1'}
    with pytest.raises(ValueError, match='warn_period_s must be a finite number >= 0, got -1'):
        ProblemLog(warnings.append, warn_period_s=-1)
