"""ssl_robot.data.datasets end to end: synthetic bags whose pixels say (camera, tick), so every row of every
batch can be traced back to the exact images it must show."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_fixtures import (OBJECT_CODE, BagSpec, Grasp, decode_code, gripper_closed, gripper_contact,
                                object_lifted, segmentation_labels, write_bag)
from torch.utils.data import DataLoader

from ssl_robot import topics
from ssl_robot.data.config import DataConfig
from ssl_robot.data.datasets import episode_frames, make_dataset
from ssl_robot.data.reader import BagError
from ssl_robot.data.recordings import ReadOptions, index_recordings, required_topics
from ssl_robot.images import resize_labels
from ssl_robot.models import build_model

SIZE = 16
CONFIG = DataConfig(image_size=SIZE, episodes_per_batch=2, val_fraction=0.0, clip_frames=3, clip_stride=2,
                    positive_window=2)
MOTION = BagSpec(ground_truth=True)
GRASPS = (Grasp(5, 9, 7, 0), Grasp(15, 19, None, 1), Grasp(45, 51, 47, 1), Grasp(61, 65, 63, 0),
          Grasp(75, 81, 77, 1), Grasp(95, 99, 97, 0), Grasp(105, 109, None, None))
GRASP = BagSpec(grasps=GRASPS, segmentation=True, episode_ticks=(40, 40, 40), record_every=10)
LEFT, RIGHT = topics.camera_image('left'), topics.camera_image('right')


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('bags')
    return {'mcap': write_bag(root / 'motion_mcap', MOTION, 'mcap'),
            'sqlite3': write_bag(root / 'motion_sqlite3', MOTION, 'sqlite3'),
            'grasp': write_bag(root / 'grasp', GRASP)}


def rows(stream) -> list[dict]:
    """Every row of every batch, images decoded to (camera code, tick)."""
    result = []
    for batch in stream:
        for i in range(len(batch['episode'])):
            row = {}
            for key, value in batch.items():
                item = value[i]
                if key in ('frames', 'clips', 'state', 'context', 'pre', 'post', 'object'):
                    flat = item.reshape(-1, 3, SIZE, SIZE)
                    row[key] = [decode_code(image) for image in flat] if flat.shape[0] > 1 else decode_code(flat[0])
                else:
                    row[key] = item.item() if item.dim() == 0 else item
            result.append(row)
    return result


FRAME_TICKS = MOTION.episode_frame_ticks()


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_tcn_rows_show_synchronized_views_of_their_time_and_one_pass_covers_every_frame(bags, storage):
    stream = make_dataset('tcn', [bags[storage]], CONFIG, 'train', batch_size=8, epochs=1, drop_last=False)
    seen = Counter()
    for row in rows(stream):
        tick = FRAME_TICKS[row['episode']][row['times']]
        assert row['frames'] == [(10, tick), (20, tick)]
        seen[row['episode'], row['times']] += 1
    assert seen == Counter((e, t) for e, ticks in enumerate(FRAME_TICKS) for t in range(len(ticks)))


def test_tcn_batch_takes_spread_distinct_times_from_each_of_its_episodes(bags):
    stream = make_dataset('tcn', [bags['mcap']], CONFIG, 'train', batch_size=8, seed=4)
    batch = next(iter(stream))
    assert batch['frames'].shape == (8, 2, 3, SIZE, SIZE)
    per_episode = Counter(batch['episode'].tolist())
    assert sorted(per_episode.values()) == [4, 4]
    for episode in per_episode:
        times = batch['times'][batch['episode'] == episode].tolist()
        length = len(FRAME_TICKS[episode])
        strata = [next(s for s, members in enumerate(np.array_split(np.arange(length), 4)) if t in members)
                  for t in times]
        assert sorted(strata) == [0, 1, 2, 3], (episode, times)


def test_episodes_and_frames_are_split_as_recorded_across_bags(bags):
    recordings = index_recordings('tcn', [bags['mcap'], bags['sqlite3']], CONFIG)
    assert [e.id for e in recordings.episodes] == list(range(6))
    assert [(f.episode.id, len(f)) for f in recordings.frames] == [
        (i, len(ticks)) for i, ticks in enumerate(FRAME_TICKS * 2)]
    assert [e.event['seed'] for e in recordings.episodes] == [100, 101, 102] * 2


def test_robot_bag_unsynchronized_cameras_without_episode_events(tmp_path):
    spec = BagSpec(camera_offsets_ns=(0, 4_000_000), latency_ns=7_000_000, episode_events=False,
                   episode_ticks=(30,))
    bag = write_bag(tmp_path / 'robot', spec)
    config = DataConfig(cameras=(RIGHT, LEFT), image_size=SIZE, episodes_per_batch=1, val_fraction=0.0)
    found = rows(make_dataset('tcn', [bag], config, 'all', batch_size=5))
    assert sorted((r['times'], tuple(r['frames'])) for r in found) == [
        (t, ((20, tick), (10, tick))) for t, tick in enumerate(spec.image_ticks)]
    with pytest.raises(BagError, match='no synchronized frames'):
        make_dataset('tcn', [bag], config, 'all', batch_size=5, options=ReadOptions(sync_max_interval_ns=1_000_000))


def test_val_split_holds_out_whole_episodes(bags):
    config = DataConfig(image_size=SIZE, episodes_per_batch=1, val_fraction=0.34)
    split = {name: {r['episode'] for r in rows(make_dataset('tcn', [bags['mcap']], config, name, batch_size=4,
                                                              epochs=1, drop_last=False))}
             for name in ('train', 'val')}
    assert len(split['val']) == 1 and split['train'] | split['val'] == {0, 1, 2}
    assert not split['train'] & split['val']


def test_mftcn_clip_holds_n_frames_stride_apart_ending_at_its_time(bags):
    lookback = (CONFIG.clip_frames - 1) * CONFIG.clip_stride
    stream = make_dataset('mftcn', [bags['mcap']], CONFIG, 'all', batch_size=6, epochs=1)
    found = rows(stream)
    for row in found:
        ticks = FRAME_TICKS[row['episode']]
        clip = [ticks[row['times'] - lookback + CONFIG.clip_stride * j] for j in range(CONFIG.clip_frames)]
        assert row['clips'] == [(10, tick) for tick in clip] + [(20, tick) for tick in clip]
    assert sorted((r['episode'], r['times']) for r in found) == [
        (e, t) for e, ticks in enumerate(FRAME_TICKS) for t in range(lookback, len(ticks))]


def test_svtcn_rows_come_in_anchor_positive_pairs_from_the_first_camera(bags):
    found = rows(make_dataset('svtcn', [bags['mcap']], CONFIG, 'train', batch_size=8, epochs=1, drop_last=False))
    anchors = Counter()
    for anchor, positive in zip(found[::2], found[1::2]):
        assert anchor['episode'] == positive['episode']
        assert 1 <= abs(anchor['times'] - positive['times']) <= CONFIG.positive_window
        for row in (anchor, positive):
            assert row['frames'] == (10, FRAME_TICKS[row['episode']][row['times']])
        anchors[anchor['episode'], anchor['times']] += 1
    assert anchors == Counter((e, t) for e, ticks in enumerate(FRAME_TICKS) for t in range(len(ticks)))


@pytest.mark.parametrize('method', ['betavae', 'ccvae'])
def test_vae_state_with_its_episodes_first_frame_as_context(bags, method):
    found = rows(make_dataset(method, [bags['mcap']], CONFIG, 'train', batch_size=8, epochs=1, drop_last=False))
    assert len(found) == sum(map(len, FRAME_TICKS))
    for row in found:
        ticks = FRAME_TICKS[row['episode']]
        assert row['state'] == (10, ticks[row['times']])
        assert row.get('context') == ((10, ticks[0]) if method == 'ccvae' else None)


def test_grasp2vec_triplets_are_the_successful_grasps(bags):
    found = rows(make_dataset('grasp2vec', [bags['grasp']], CONFIG, 'train', batch_size=2, epochs=1,
                              drop_last=False))
    assert sorted((r['pre'], r['object'], r['post']) for r in found) == sorted(
        ((10, g.pre), (OBJECT_CODE, g.shown), (10, g.post)) for g in GRASPS if g.success)


def test_grasp2vec_evaluation_rows_include_failures_masks_and_object_identity(bags):
    found = rows(make_dataset('grasp2vec', [bags['grasp']], CONFIG, 'all', batch_size=4, labels=True))
    by_pre = {row['pre'][1]: row for row in found}
    assert sorted(by_pre) == sorted(g.pre for g in GRASPS)
    labels = resize_labels(segmentation_labels(GRASP.height, GRASP.width), SIZE)
    for grasp in GRASPS:
        row = by_pre[grasp.pre]
        index = -1 if grasp.object_index is None else grasp.object_index
        assert (row['success'], row['object_index']) == (grasp.success, index)
        assert row['object'] == ((OBJECT_CODE, grasp.shown) if grasp.success else (0, 0))
        mask = labels == index + 1 if index >= 0 else np.zeros_like(labels, bool)
        assert torch.equal(row['pre_mask'], torch.from_numpy(mask))


def test_frame_labels_are_the_ground_truth_of_the_frames_tick(bags):
    for row in rows(make_dataset('tcn', [bags['mcap']], CONFIG, 'all', batch_size=8, labels=True)):
        tick = row['frames'][0][1]
        assert (row['gripper_closed'], row['object_lifted'], row['gripper_contact']) == (
            gripper_closed(tick), object_lifted(tick), gripper_contact(tick))


def loader_rows(bags, num_workers: int, seed: int) -> list[tuple[int, int]]:
    stream = make_dataset('tcn', [bags['mcap'], bags['sqlite3']], CONFIG, 'train', batch_size=6, seed=seed,
                          epochs=1, drop_last=False, options=ReadOptions(window_samples=8))
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers)
    return [(r['episode'], r['times']) for r in rows(loader)]


def test_two_worker_processes_cover_every_frame_exactly_once_and_repeat_given_a_seed(bags):
    first = loader_rows(bags, num_workers=2, seed=11)
    assert Counter(first) == Counter((e, t) for e, ticks in enumerate(FRAME_TICKS * 2) for t in range(len(ticks)))
    assert loader_rows(bags, num_workers=2, seed=11) == first
    assert loader_rows(bags, num_workers=2, seed=12) != first


def test_decoded_images_held_never_exceed_the_cache_bound_and_batches_do_not_change(bags):
    def stream(cache_images):
        return make_dataset('tcn', [bags['mcap']], CONFIG, 'train', batch_size=6, seed=5, epochs=2,
                            options=ReadOptions(window_samples=6, cache_images=cache_images))
    # Episodes of 20, 15 and 25 frames make windows of 5 frames * 2 views = 10 images: a cache of 10 holds one of
    # the two windows each batch draws on, so windows are read again and again, yet the batches stay the same.
    bounded, roomy = stream(10), stream(None)
    small, large = list(bounded), list(roomy)
    assert bounded.cache.peak <= 10 < 2 * sum(map(len, FRAME_TICKS))
    assert bounded.cache.loads > roomy.cache.loads
    assert len(small) == len(large) and all(torch.equal(a['frames'], b['frames']) for a, b in zip(small, large))
    with pytest.raises(ValueError, match='cache_images 9 is less than the 10 images'):
        stream(9)


def test_endless_stream_fills_whole_batches_across_epochs(bags):
    stream = make_dataset('betavae', [bags['mcap']], CONFIG, 'train', batch_size=16)
    batches = list(itertools.islice(stream, 10))  # 60 frames: 3.75 batches per epoch
    assert all(len(batch['state']) == 16 for batch in batches)
    big = next(iter(make_dataset('betavae', [bags['mcap']], CONFIG, 'train', batch_size=64)))
    assert len(big['state']) == 64


def test_one_short_episode_is_cut_finer_so_that_both_workers_get_a_share(tmp_path):
    spec = BagSpec(episode_ticks=(30,))
    bag = write_bag(tmp_path / 'short', spec)
    stream = make_dataset('tcn', [bag], CONFIG, 'train', batch_size=4)
    assert len(stream.windows) == 1
    first, second = itertools.islice(DataLoader(stream, batch_size=None, num_workers=2), 2)  # one per worker
    assert not set(first['times'].tolist()) & set(second['times'].tolist())


@pytest.mark.parametrize('method', ['tcn', 'svtcn', 'mftcn', 'grasp2vec', 'betavae', 'ccvae'])
def test_batches_train_the_models(bags, method):
    bag = bags['grasp' if method == 'grasp2vec' else 'mcap']
    model_config = {'image_size': SIZE, **({'num_frames': 3, 'stride': 2} if method == 'mftcn' else {}),
                    **({'positive_radius': 2, 'negative_radius': 4} if method == 'svtcn' else {})}
    model = build_model(method, model_config)
    loss, _ = model(next(iter(make_dataset(method, [bag], CONFIG, 'train', batch_size=4))))
    assert torch.isfinite(loss)


def test_episode_frames_yield_an_episodes_raw_frames_in_order(bags):
    recordings = index_recordings('tcn', [bags['sqlite3']], CONFIG, labels=True)
    frames = list(episode_frames(recordings, 2, window_samples=4))
    assert [f.time for f in frames] == list(range(len(FRAME_TICKS[2])))
    for frame, tick in zip(frames, FRAME_TICKS[2]):
        assert [tuple(image[0, 0]) for image in frame.images] == [(10, tick % 256, 0), (20, tick % 256, 0)]
        assert frame.images[0].shape == (MOTION.height, MOTION.width, 3)
        assert frame.labels == {'gripper_closed': gripper_closed(tick), 'object_lifted': object_lifted(tick),
                                'gripper_contact': gripper_contact(tick)}


def test_required_topics():
    assert required_topics('grasp2vec', [LEFT], labels=True) == [
        LEFT, topics.camera_image(topics.OBJECT_CAMERA), topics.GRASP_EVENTS, topics.camera_segmentation('left')]
    assert required_topics('tcn', [LEFT, RIGHT], labels=True) == [LEFT, RIGHT, topics.GROUND_TRUTH]
    with pytest.raises(ValueError, match='unknown method'):
        required_topics('simclr')


def one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(err.value)
    assert '\n' not in text and all(part in text for part in parts), text


def test_bag_missing_the_methods_topics_is_an_error_listing_them(bags):
    with pytest.raises(BagError) as err:
        make_dataset('grasp2vec', [bags['mcap']], CONFIG, batch_size=2)
    one_line(err, str(bags['mcap']), topics.GRASP_EVENTS, topics.camera_image(topics.OBJECT_CAMERA))
    with pytest.raises(BagError) as err:
        make_dataset('tcn', [bags['grasp']], CONFIG, batch_size=2, labels=True)
    one_line(err, str(bags['grasp']), topics.GROUND_TRUTH)


def test_too_few_cameras_for_the_views_is_an_error(bags):
    config = DataConfig(image_size=SIZE, views=3)
    with pytest.raises(BagError) as err:
        make_dataset('tcn', [bags['mcap']], config, batch_size=2)
    one_line(err, str(bags['mcap']), 'needs 3 camera views')


def test_zero_usable_samples_is_an_error(tmp_path, bags):
    object_camera = {topics.camera_image(topics.OBJECT_CAMERA): 'sensor_msgs/msg/Image'}
    failed_only = write_bag(tmp_path / 'failed', BagSpec(grasps=(Grasp(2, 6, None),), episode_ticks=(10,),
                                                         extra_topics=object_camera))
    with pytest.raises(BagError) as err:
        make_dataset('grasp2vec', [failed_only], CONFIG, batch_size=2)
    one_line(err, str(failed_only), 'zero usable samples', '1 failed grasp')
    with pytest.raises(BagError) as err:
        make_dataset('tcn', [bags['mcap']], CONFIG, 'val', batch_size=2)
    one_line(err, 'zero usable samples', "split 'val' holds none of the 3 episode(s)")
