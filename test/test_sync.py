import itertools
import random

import pytest

from ssl_robot.sync import ApproximateTimeSynchronizer, ClockJump, Drop, DropReason

MS = 1_000_000
S = 1_000_000_000


def reasons(sync: ApproximateTimeSynchronizer) -> list[tuple[str, int, str]]:
    return [(drop.name, drop.stamp_ns, drop.reason) for drop in sync.drain_drops()]


def test_exact_match_emits_one_set_with_every_input():
    sync = ApproximateTimeSynchronizer(['left', 'right'])
    assert sync.add('left', 100 * MS, 'L') == []
    (synced,) = sync.add('right', 100 * MS, 'R')
    assert synced.items == {'left': 'L', 'right': 'R'}
    assert synced.stamps == {'left': 100 * MS, 'right': 100 * MS}
    assert synced.stamp_ns == 100 * MS
    assert sync.drain_drops() == []


def test_approximate_set_within_interval_is_stamped_with_its_newest_item():
    sync = ApproximateTimeSynchronizer(['left', 'right'], max_interval_ns=10 * MS)
    sync.add('left', 100 * MS, 'L')
    (synced,) = sync.add('right', 108 * MS, 'R')
    assert synced.stamps == {'left': 100 * MS, 'right': 108 * MS}
    assert synced.stamp_ns == 108 * MS


def test_no_set_beyond_interval_and_the_stale_item_is_dropped_once_a_newer_set_forms():
    sync = ApproximateTimeSynchronizer(['left', 'right'], max_interval_ns=10 * MS)
    sync.add('left', 100 * MS, 'L0')
    assert sync.add('right', 111 * MS, 'R1') == []
    (synced,) = sync.add('left', 115 * MS, 'L1')
    assert synced.items == {'left': 'L1', 'right': 'R1'}
    assert reasons(sync) == [('left', 100 * MS, DropReason.OLDER_THAN_EMITTED)]


def test_tightest_combination_is_chosen():
    sync = ApproximateTimeSynchronizer(['a', 'b', 'c'], max_interval_ns=20 * MS)
    for stamp in (81, 92, 99):
        sync.add('b', stamp * MS, f'b{stamp}')
    for stamp in (85, 97, 104):
        sync.add('c', stamp * MS, f'c{stamp}')
    (synced,) = sync.add('a', 100 * MS, 'a100')
    # b99 + c97 spans 3 ms; b92 + c97 spans 8 ms, b99 + c104 spans 5 ms.
    assert synced.stamps == {'a': 100 * MS, 'b': 99 * MS, 'c': 97 * MS}
    assert sorted(reasons(sync)) == [('b', 81 * MS, DropReason.OLDER_THAN_EMITTED),
                                     ('b', 92 * MS, DropReason.OLDER_THAN_EMITTED),
                                     ('c', 85 * MS, DropReason.OLDER_THAN_EMITTED)]
    (synced,) = sync.add('a', 110 * MS, 'a110') + sync.add('b', 111 * MS, 'b111')
    assert synced.items == {'a': 'a110', 'b': 'b111', 'c': 'c104'}


def test_out_of_order_item_older_than_the_emitted_set_is_dropped():
    sync = ApproximateTimeSynchronizer(['left', 'right'])
    sync.add('left', 100 * MS, 'L')
    sync.add('right', 100 * MS, 'R')
    assert sync.add('left', 90 * MS, 'late') == []
    assert sync.add('right', 100 * MS, 'again') == []
    assert reasons(sync) == [('left', 90 * MS, DropReason.OLDER_THAN_EMITTED),
                             ('right', 100 * MS, DropReason.DUPLICATE_STAMP)]
    # Reordering among items still queued is fine.
    sync.add('left', 130 * MS, 'L130')
    sync.add('left', 120 * MS, 'L120')
    (synced,) = sync.add('right', 121 * MS, 'R121')
    assert synced.items == {'left': 'L120', 'right': 'R121'}


def test_duplicate_stamp_keeps_the_first_item():
    sync = ApproximateTimeSynchronizer(['left', 'right'])
    sync.add('left', 100 * MS, 'first')
    assert sync.add('left', 100 * MS, 'second') == []
    assert sync.drain_drops() == [Drop('left', 100 * MS, DropReason.DUPLICATE_STAMP.value)]
    (synced,) = sync.add('right', 100 * MS, 'R')
    assert synced.items['left'] == 'first'


def test_silent_input_overflows_the_other_queues_and_is_named():
    sync = ApproximateTimeSynchronizer(['left', 'right', 'wrist'], queue_size=3)
    for frame in range(10):
        assert sync.add('left', frame * 33 * MS, frame) == []
        assert sync.add('right', frame * 33 * MS, frame) == []
    drops = sync.drain_drops()
    assert {drop.reason for drop in drops} == {DropReason.QUEUE_OVERFLOW}
    assert sorted((drop.name, drop.stamp_ns) for drop in drops) == sorted(
        (name, frame * 33 * MS) for name in ('left', 'right') for frame in range(7))
    assert sync.drop_counts[DropReason.QUEUE_OVERFLOW] == 14
    now = 9 * 33 * MS
    assert sync.silent_inputs(now, timeout_ns=200 * MS) == ['wrist']
    assert sync.silent_inputs(now, timeout_ns=400 * MS) == []
    (synced,) = sync.add('wrist', 9 * 33 * MS, 'w')
    assert synced.stamps == {name: 9 * 33 * MS for name in ('left', 'right', 'wrist')}


def test_silent_inputs_counts_from_the_first_question_when_nothing_arrived():
    sync = ApproximateTimeSynchronizer(['left', 'right'])
    assert sync.silent_inputs(5 * S, timeout_ns=1 * S) == []
    assert sync.silent_inputs(6 * S + 1, timeout_ns=1 * S) == ['left', 'right']
    sync.add('left', 6 * S, 'L')
    assert sync.silent_inputs(6 * S + 1, timeout_ns=1 * S) == ['right']


def test_backward_clock_jump_flushes_queues_and_resumes_on_the_new_timeline():
    sync = ApproximateTimeSynchronizer(['left', 'right'], clock_jump_ns=1 * S)
    sync.add('left', 10 * S, 'L')
    sync.add('right', 10 * S, 'R')
    sync.add('left', 10 * S + 33 * MS, 'queued before the reset')
    assert sync.add('left', 5 * MS, 'L after reset') == []
    # The right camera's frame from before the reset was still in flight.
    assert sync.add('right', 10 * S + 33 * MS, 'in flight') == []
    (synced,) = sync.add('right', 5 * MS, 'R after reset')
    assert synced.items == {'left': 'L after reset', 'right': 'R after reset'}
    assert reasons(sync) == [('left', 10 * S + 33 * MS, DropReason.CLOCK_JUMP),
                             ('right', 10 * S + 33 * MS, DropReason.CLOCK_JUMP)]
    assert sync.drop_counts[DropReason.CLOCK_JUMP] == 2
    # The flush itself is reported once, for the consumer to warn about, whatever it dropped.
    assert sync.drain_clock_jumps() == [ClockJump('left', 10 * S + 33 * MS, 5 * MS, flushed=1)]
    assert sync.drain_clock_jumps() == []
    sync.add('right', 20 * S, 'R')
    sync.add('right', 21 * S, 'R')
    sync.add('left', 1 * MS, 'back again')
    assert sync.drain_clock_jumps() == [ClockJump('left', 21 * S, 1 * MS, flushed=2)]


def test_backward_step_within_clock_jump_is_only_reordering():
    sync = ApproximateTimeSynchronizer(['left', 'right'], clock_jump_ns=1 * S)
    sync.add('left', 10 * S, 'L')
    sync.add('right', 10 * S, 'R')
    sync.add('left', 10 * S - 500 * MS, 'old')
    assert reasons(sync) == [('left', 10 * S - 500 * MS, DropReason.OLDER_THAN_EMITTED)]


def test_unknown_input_is_dropped_with_its_reason():
    sync = ApproximateTimeSynchronizer(['left'])
    assert sync.add('lfet', 1, 'x') == []
    assert reasons(sync) == [('lfet', 1, DropReason.UNKNOWN_INPUT)]


def test_single_input_passes_every_item_through():
    sync = ApproximateTimeSynchronizer(['only'])
    assert [synced.items['only'] for stamp in (1, 2, 3) for synced in sync.add('only', stamp, stamp)] == [1, 2, 3]


def test_reset_forgets_queues_and_counts():
    sync = ApproximateTimeSynchronizer(['left', 'right'])
    sync.add('left', 100, 'L')
    sync.add('left', 100, 'L')
    sync.reset()
    assert sync.drain_drops() == []
    assert sum(sync.drop_counts.values()) == 0
    assert sync.add('right', 100, 'R') == []


@pytest.mark.parametrize('kwargs, message', [
    ({'names': []}, 'names is empty'),
    ({'names': ['a', 'a']}, "['a', 'a']"),
    ({'names': ['a'], 'queue_size': 0}, 'queue_size 0'),
    ({'names': ['a'], 'max_interval_ns': -1}, 'max_interval_ns -1'),
    ({'names': ['a'], 'clock_jump_ns': 0}, 'clock_jump_ns 0'),
])
def test_invalid_configuration_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        ApproximateTimeSynchronizer(**kwargs)


@pytest.mark.parametrize('seed', range(20))
def test_random_streams_emit_valid_sets_and_account_for_every_item(seed):
    rng = random.Random(seed)
    names = ['a', 'b', 'c'][:rng.randint(2, 3)]
    interval = rng.choice([0, 2, 5, 15]) * MS
    sync = ApproximateTimeSynchronizer(names, queue_size=rng.randint(1, 6), max_interval_ns=interval)
    arrivals = []
    for name in names:
        period, offset = rng.randint(20, 40) * MS, rng.randint(0, 30) * MS
        for frame in range(60):
            stamp = offset + frame * period + rng.randint(-3, 3) * MS
            arrivals.append((stamp + rng.randint(0, 80) * MS, name, stamp))
            if rng.random() < 0.05:
                arrivals.append((stamp + rng.randint(0, 80) * MS, name, stamp))
    arrivals.sort()

    emitted: list[tuple[str, int]] = []
    sets = []
    for index, (_, name, stamp) in enumerate(arrivals):
        for synced in sync.add(name, stamp, (name, stamp, index)):
            sets.append(synced)
            emitted.extend((item_name, item[2]) for item_name, item in synced.items.items())
            assert max(synced.stamps.values()) - min(synced.stamps.values()) <= interval
            assert synced.stamp_ns == max(synced.stamps.values())
            assert all(synced.items[n][:2] == (n, synced.stamps[n]) for n in names)
    assert len(emitted) == len(set(emitted)), 'an item was emitted twice'
    for name in names:
        contributions = [synced.stamps[name] for synced in sets]
        assert contributions == sorted(set(contributions)), f'{name} went back in time'
    # A clock jump flushes whatever is still queued, so every arrival is now emitted or dropped.
    sync.add(names[0], -10 * S, 'after the jump')
    drops = sync.drain_drops()
    assert len(emitted) + len(drops) == len(arrivals)
    assert sum(sync.drop_counts.values()) == len(drops)


def test_emitted_set_is_as_tight_as_any_combination_of_what_was_queued():
    rng = random.Random(7)
    names = ['a', 'b', 'c']
    sync = ApproximateTimeSynchronizer(names, queue_size=5, max_interval_ns=30 * MS)
    checked = 0
    for step in range(600):
        name = rng.choice(names)
        stamp = (step * 4 + rng.randint(-25, 25)) * MS
        queued = {n: list(queue.stamps) for n, queue in sync._inputs.items()}
        synced_sets = sync.add(name, stamp, None)
        if not synced_sets:
            continue
        queued[name] = sorted(set(queued[name]) | {stamp})
        best = min(max(combo) - min(combo) for combo in itertools.product(*(queued[n] for n in names))
                   if stamp in combo)
        (synced,) = synced_sets
        assert max(synced.stamps.values()) - min(synced.stamps.values()) == best
        checked += 1
    assert checked > 50
