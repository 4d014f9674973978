"""ssl_robot.data.samplers: synchronization, episodes, splits, windows and the batch plan (no files read)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ssl_robot.data.bag_index import BagIndex, StampIndex
from ssl_robot.data.samplers import (AFTER_ALL_NS, BEFORE_ALL_NS, bag_episodes, episode_of, held_out, plan_batches,
                                     shard_windows, split_into_windows, stratified_order, synchronize)

MS = 1_000_000


def stamps(values_ms, latency_ms: float = 0) -> StampIndex:
    values = np.array([int(v * MS) for v in values_ms], dtype=np.int64)
    return StampIndex(values + int(latency_ms * MS), values)


def test_synchronize_pairs_cameras_a_few_ms_apart_and_skips_a_missing_frame():
    left = stamps([0, 100, 200, 300])
    right = stamps([3, 103, 303], latency_ms=2)  # no frame near 200
    synced = synchronize([left, right], max_interval_ns=5 * MS, queue_size=10)
    np.testing.assert_array_equal(synced.stamp_ns // MS, [[0, 3], [100, 103], [300, 303]])
    np.testing.assert_array_equal(synced.log_ns // MS, [[0, 5], [100, 105], [300, 305]])


def test_synchronize_makes_no_set_of_stamps_further_apart_than_the_interval():
    synced = synchronize([stamps([0, 100]), stamps([8, 108])], max_interval_ns=5 * MS, queue_size=10)
    assert synced.stamp_ns.shape == (0, 2)


def test_one_camera_makes_every_image_a_frame():
    synced = synchronize([stamps([0, 10, 20])], max_interval_ns=0, queue_size=2)
    np.testing.assert_array_equal(synced.stamp_ns[:, 0] // MS, [0, 10, 20])


def test_episodes_split_the_timeline_at_their_event_stamps():
    index = BagIndex(Path('bag'), {}, {}, episodes=[{'stamp': {'sec': s, 'nanosec': 0}, 'episode': n}
                                                    for n, s in enumerate((1, 5, 9))])
    episodes = bag_episodes(index, bag=0, first_id=7)
    assert [(e.id, e.start_ns, e.end_ns) for e in episodes] == [
        (7, 1 * 10**9, 5 * 10**9), (8, 5 * 10**9, 9 * 10**9), (9, 9 * 10**9, AFTER_ALL_NS)]
    owner = episode_of(episodes, np.array([0, 10**9, 5 * 10**9 - 1, 5 * 10**9, 20 * 10**9]))
    np.testing.assert_array_equal(owner, [-1, 0, 0, 1, 2])


def test_a_bag_without_episode_events_is_one_episode():
    (episode,) = bag_episodes(BagIndex(Path('robot'), {}, {}), bag=0, first_id=0)
    assert (episode.start_ns, episode.end_ns, episode.event) == (BEFORE_ALL_NS, AFTER_ALL_NS, None)


def test_held_out_episodes_depend_on_the_keys_only():
    keys = [f'bag:{i}' for i in range(20)]
    val = held_out(keys, 0.1)
    assert len(val) == 2
    shuffled = keys[::-1]
    assert {keys[i] for i in val} == {shuffled[i] for i in held_out(shuffled, 0.1)}
    assert held_out(keys[:1], 0.5) == set() and len(held_out(keys[:2], 0.01)) == 1


def test_windows_cover_the_range_in_near_equal_parts():
    windows = split_into_windows(3, 2, 23, 8)
    assert [(w.sequence, w.start, w.stop) for w in windows] == [(3, 2, 9), (3, 9, 16), (3, 16, 23)]
    assert split_into_windows(0, 4, 4, 8) == []


@pytest.mark.parametrize('count, group', [(12, 4), (10, 4), (3, 5), (1, 1)])
def test_stratified_groups_take_one_member_per_stratum(count, group):
    strata = np.array_split(np.arange(count), group)
    stratum_of = {int(m): s for s, members in enumerate(strata) for m in members}
    for rng in (None, np.random.default_rng(1)):
        order = stratified_order(count, group, rng)
        assert sorted(order) == list(range(count))
        groups = [order[i:i + group] for i in range(0, count, group)]
        for members in groups:
            assert len({stratum_of[m] for m in members}) == len(members)


def test_stratified_order_without_rng_is_the_natural_spread():
    assert stratified_order(8, 4, None) == [0, 2, 4, 6, 1, 3, 5, 7]


def test_plan_uses_every_unit_once_in_full_batches_with_even_shares():
    counts = [9, 12, 7, 20, 5]
    plans = list(plan_batches(enumerate(counts), slots=2, batch_units=6, drop_last=False))
    used = Counter(row for plan in plans for row in plan.rows)
    assert used == Counter((w, u) for w, n in enumerate(counts) for u in range(n))
    assert [len(plan.rows) for plan in plans] == [6] * 8 + [5]
    assert Counter(row[0] for row in plans[0].rows) == {0: 3, 1: 3}
    finished = [w for plan in plans for w in plan.finished]
    assert sorted(finished) == list(range(len(counts)))


def test_plan_takes_units_in_window_order():
    plans = list(plan_batches(enumerate([4, 4]), slots=2, batch_units=4, drop_last=False))
    assert [plan.rows for plan in plans] == [[(0, 0), (0, 1), (1, 0), (1, 1)], [(0, 2), (0, 3), (1, 2), (1, 3)]]


def test_plan_holds_at_most_slots_windows_while_they_can_fill_a_batch():
    counts = [10] * 6
    active: set[int] = set()
    for plan in plan_batches(enumerate(counts), slots=3, batch_units=6, drop_last=True):
        active |= {w for w, _ in plan.rows}
        assert len(active) <= 3
        active -= set(plan.finished)


def test_plan_opens_more_windows_when_the_active_ones_cannot_fill_a_batch():
    plans = list(plan_batches(enumerate([2, 2, 2, 2]), slots=1, batch_units=4, drop_last=True))
    assert [sorted({w for w, _ in plan.rows}) for plan in plans] == [[0, 1], [2, 3]]


def test_drop_last_leaves_out_the_short_last_batch():
    assert [len(p.rows) for p in plan_batches(enumerate([5, 4]), slots=2, batch_units=4, drop_last=True)] == [4, 4]


def test_plan_draws_windows_lazily_and_runs_on_over_an_endless_supply():
    drawn = []

    def endless():
        for key in itertools.count():
            drawn.append(key)
            yield key, 3

    plans = list(itertools.islice(plan_batches(endless(), slots=2, batch_units=4, drop_last=True), 5))
    assert all(len(plan.rows) == 4 for plan in plans)
    rows = [row for plan in plans for row in plan.rows]
    assert len(set(rows)) == len(rows) == 20
    opened = {window for window, _ in rows}
    assert len(drawn) == len(opened) == max(opened) + 1


def test_shards_partition_the_epochs_windows():
    rng_seed = 3
    shards = [shard_windows(11, shard, 3, np.random.default_rng(rng_seed)) for shard in range(3)]
    assert sorted(w for shard in shards for w in shard) == list(range(11))
    assert shard_windows(5, 1, 2, None) == [1, 3]
