"""ssl_robot.inference model_holder and embedder: checkpoint loading and reloading, mfTCN frame buffers, embedding."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_robot.images import model_pixels, rgb_to_tensor
from ssl_robot.inference.embedder import FrameBuffer, MultiViewEmbedder, with_fused_row
from ssl_robot.inference.model_holder import LoadedModel, default_checkpoint, set_torch_threads
from ssl_robot.models import CheckpointError, save_checkpoint
from ssl_robot.models.registry import build_model

TINY_TCN = {'image_size': 16, 'encoder_widths': [8, 16], 'embedding_dim': 6}
TINY_MFTCN = {**TINY_TCN, 'num_frames': 2, 'stride': 2, 'temporal_channels': 4}


def write_checkpoint(path: Path, method: str = 'tcn', config: dict | None = None, seed: int = 0,
                     step: int = 10) -> Path:
    torch.manual_seed(seed)
    model = build_model(method, config or (TINY_MFTCN if method == 'mftcn' else TINY_TCN))
    return save_checkpoint(path, model, step=step, code_version='test')


def camera_frames(seed: int, views: int = 3, shape: tuple[int, int] = (24, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(views)]


def test_load_gives_an_eval_model_named_by_method_file_step_and_content(tmp_path):
    path = write_checkpoint(tmp_path / 'tcn.safetensors', step=1200)
    loaded = LoadedModel(path, 'tcn', device='cpu')
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.model_id == f'tcn:tcn.safetensors:step1200:{sha256[:12]}'
    assert loaded.method == 'tcn' and loaded.config.embedding_dim == 6 and loaded.current.header.step == 1200
    assert not loaded.model.training and next(loaded.model.parameters()).device.type == 'cpu'


def test_checkpoints_of_other_methods_and_non_embedding_methods_are_refused(tmp_path):
    path = write_checkpoint(tmp_path / 'model.safetensors', 'mftcn')
    with pytest.raises(CheckpointError, match=r"model.safetensors holds a 'mftcn' checkpoint, not 'tcn'"):
        LoadedModel(path, 'tcn', device='cpu')
    with pytest.raises(ValueError, match=r"unknown method 'nope'"):
        LoadedModel(path, 'nope', device='cpu')
    tiny_vae = {'image_size': 32, 'encoder_widths': [8, 16], 'decoder_widths': [16, 8], 'latent_dim': 4}
    vae = LoadedModel(write_checkpoint(tmp_path / 'vae.safetensors', 'betavae', tiny_vae), 'betavae', device='cpu')
    with pytest.raises(ValueError, match=r"method 'betavae' does not embed camera frames"):
        MultiViewEmbedder(vae, num_views=3)
    with pytest.raises(FileNotFoundError, match=r'checkpoint .*missing.safetensors does not exist'):
        LoadedModel(tmp_path / 'missing.safetensors', 'tcn', device='cpu')


def test_default_checkpoint_is_the_shipped_file_or_says_how_to_make_it():
    try:
        path = default_checkpoint('tcn')
    except FileNotFoundError as error:
        assert 'scripts/train-default-checkpoints' in str(error) and 'tcn.safetensors' in str(error)
    else:
        assert path.name == 'tcn.safetensors' and path.parent.name == 'checkpoints' and path.is_file()
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        default_checkpoint('nope')


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_set_torch_threads_sets_a_count_keeps_the_default_for_0_and_refuses_the_rest(restore_torch_threads):
    torch.set_num_threads(2)
    set_torch_threads(0)
    assert torch.get_num_threads() == 2
    set_torch_threads(1)
    assert torch.get_num_threads() == 1
    for bad in (-1, 1.5, True, '2'):
        with pytest.raises(ValueError, match=r'torch threads must be an int >= 0 \(0 = one per core\), got'):
            set_torch_threads(bad)
    assert torch.get_num_threads() == 1


def test_reload_swaps_in_a_changed_file_and_ignores_an_unchanged_one(tmp_path):
    path = write_checkpoint(tmp_path / 'tcn.safetensors', seed=0, step=1)
    loaded = LoadedModel(path, 'tcn', device='cpu')
    first_model, first_id = loaded.model, loaded.model_id
    assert not loaded.reload_if_changed()

    os.utime(path, ns=(1, 1))  # touched, same bytes: same model
    assert not loaded.reload_if_changed()
    assert loaded.model is first_model and loaded.model_id == first_id

    write_checkpoint(path, seed=1, step=2)
    assert loaded.reload_if_changed()
    assert loaded.model_id != first_id and ':step2:' in loaded.model_id
    images = rgb_to_tensor(np.stack(camera_frames(5, shape=(16, 16))))
    torch.testing.assert_close(loaded.model.embed(images), LoadedModel(path, 'tcn', device='cpu').model.embed(images))
    assert not torch.allclose(loaded.model.embed(images), first_model.embed(images))
    assert not loaded.reload_if_changed()


@pytest.mark.parametrize('breakage', ['garbage', 'other_method', 'deleted'])
def test_a_failed_reload_keeps_the_old_model_and_the_next_good_file_loads(tmp_path, breakage):
    path = write_checkpoint(tmp_path / 'tcn.safetensors', seed=0, step=1)
    loaded = LoadedModel(path, 'tcn', device='cpu')
    before = loaded.current
    if breakage == 'garbage':
        path.write_bytes(b'not a checkpoint')
        expected = (CheckpointError, 'is not a safetensors checkpoint')
    elif breakage == 'other_method':
        write_checkpoint(path, 'mftcn')
        expected = (CheckpointError, "holds a 'mftcn' checkpoint, not 'tcn'")
    else:
        path.unlink()
        expected = (FileNotFoundError, 'does not exist')
    for _ in range(2):  # still refused, and still reported, at the next check
        with pytest.raises(expected[0], match=expected[1]):
            loaded.reload_if_changed()
        assert loaded.current is before
    write_checkpoint(path, seed=3, step=3)
    assert loaded.reload_if_changed() and ':step3:' in loaded.model_id


def test_frame_buffer_yields_strided_clips_once_full_and_restarts_when_time_goes_back():
    buffer = FrameBuffer(num_frames=3, stride=2)
    frames = {t: np.full((2, 2, 3), t, dtype=np.uint8) for t in range(10)}
    assert [buffer.push(t, frames[t]) for t in range(4)] == [None] * 4
    assert buffer.push(4, frames[4])[:, 0, 0, 0].tolist() == [0, 2, 4]
    assert buffer.push(5, frames[5])[:, 0, 0, 0].tolist() == [1, 3, 5]
    assert len(buffer) == 5  # (n - 1) * s + 1 frames kept, no more
    assert buffer.push(3, frames[3]) is None and len(buffer) == 1
    assert buffer.push(3, frames[3]) is None and len(buffer) == 1  # a repeated stamp is not a new time either
    with pytest.raises(ValueError, match='num_frames >= 1 and stride >= 1, got 2 and 0'):
        FrameBuffer(2, 0)


def test_frame_buffer_keeps_frames_a_frame_period_apart_like_the_training_bags():
    tick = 33_333_333  # 30 Hz stamps; the training bags kept every 3rd tick: 0.1 s
    buffer = FrameBuffer(num_frames=2, stride=1, frame_period_ns=100_000_000)
    clips = {t: buffer.push(t * tick, np.full((1, 1, 3), t, dtype=np.uint8)) for t in range(8)}
    assert clips[0] is None and clips[1] is None and clips[2] is None   # 0 kept, 1 and 2 too soon after it
    assert clips[3][:, 0, 0, 0].tolist() == [0, 3]                      # 99.999999 ms later counts as 0.1 s
    assert clips[4] is None and clips[5] is None
    assert clips[6][:, 0, 0, 0].tolist() == [3, 6]
    with pytest.raises(ValueError, match='frame_period_ns must be >= 0, got -1'):
        FrameBuffer(2, 1, -1)


def test_fused_row_is_the_renormalised_mean_of_the_views():
    views = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    fused = with_fused_row(views)
    torch.testing.assert_close(fused[:3], views)
    torch.testing.assert_close(fused[3], torch.nn.functional.normalize(views.mean(0), dim=0))


def test_tcn_embeds_each_set_of_views_plus_their_fusion(tmp_path):
    loaded = LoadedModel(write_checkpoint(tmp_path / 'tcn.safetensors'), 'tcn', device='cpu')
    embedder = MultiViewEmbedder(loaded, num_views=3)
    frames = camera_frames(0)
    result = embedder.embed(100, frames)
    assert result.model_id == loaded.model_id
    assert result.vectors.shape == (4, 6) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, rtol=1e-5)
    expected = loaded.model.embed(rgb_to_tensor(model_pixels(frames, 16)))
    np.testing.assert_allclose(result.vectors, with_fused_row(expected).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(result.vectors[0], result.vectors[1])
    with pytest.raises(ValueError, match='expected 3 views, got 2'):
        embedder.embed(200, frames[:2])


def test_mftcn_embeds_the_clip_ending_at_each_set_once_the_buffers_are_full(tmp_path):
    loaded = LoadedModel(write_checkpoint(tmp_path / 'mftcn.safetensors', 'mftcn'), 'mftcn', device='cpu')
    embedder = MultiViewEmbedder(loaded, num_views=2)
    sets = {t: camera_frames(t, views=2) for t in range(6)}
    assert [embedder.embed(t, sets[t]) for t in range(2)] == [None, None]  # lookback (2 - 1) * 2 + 1 = 3 sets
    result = embedder.embed(2, sets[2])
    clips = np.stack([model_pixels([sets[0][view], sets[2][view]], 16) for view in range(2)])  # stride 2: t=0, t=2
    expected = loaded.model.embed_clip(rgb_to_tensor(clips))
    np.testing.assert_allclose(result.vectors, with_fused_row(expected).numpy(), rtol=1e-5, atol=1e-6)
    assert result.vectors.shape == (3, 6)
    assert embedder.embed(1, sets[1]) is None  # time went back: the clip starts over

    write_checkpoint(loaded.path, 'mftcn', {**TINY_MFTCN, 'stride': 1}, seed=4, step=5)
    assert loaded.reload_if_changed()
    assert embedder.embed(2, sets[2]) is None  # new clip geometry: buffers rebuilt, lookback now 2 sets
    assert embedder.embed(3, sets[3]).model_id == loaded.model_id


def test_mftcn_clips_skip_sets_closer_than_the_clip_frame_period_and_tcn_ignores_it(tmp_path):
    mftcn = LoadedModel(write_checkpoint(tmp_path / 'mftcn.safetensors', 'mftcn'), 'mftcn', device='cpu')
    embedder = MultiViewEmbedder(mftcn, num_views=2, clip_frame_period_s=2e-8)   # stamps 10 ns apart: every 2nd set
    sets = {t: camera_frames(t, views=2) for t in range(8)}
    results = {t: embedder.embed(10 * t, sets[t]) for t in range(8)}
    assert [t for t, result in results.items() if result is not None] == [4, 6]  # kept 0, 2, 4, 6; stride 2
    clips = np.stack([model_pixels([sets[0][view], sets[4][view]], 16) for view in range(2)])
    expected = with_fused_row(mftcn.model.embed_clip(rgb_to_tensor(clips))).numpy()
    np.testing.assert_allclose(results[4].vectors, expected, rtol=1e-5, atol=1e-6)

    tcn = MultiViewEmbedder(LoadedModel(write_checkpoint(tmp_path / 'tcn.safetensors'), 'tcn', device='cpu'), 2,
                            clip_frame_period_s=2e-8)
    assert all(tcn.embed(10 * t, sets[t]) is not None for t in range(3))
    with pytest.raises(ValueError, match='clip_frame_period_s must be a finite number >= 0, got -1'):
        MultiViewEmbedder(mftcn, 2, clip_frame_period_s=-1)
