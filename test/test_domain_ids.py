"""The tests' domain ids (test/domain_ids.py), which every ROS test relies on: an id Fast DDS refuses ends
the whole pytest process with status 1 and no report."""

from __future__ import annotations

import itertools

import pytest

from domain_ids import MAX_DOMAIN_ID, ros_domain_ids


@pytest.mark.parametrize('start, lowest', [(1, 1), (101, 101), (200, 101), (232, 101), (232, 1)])
def test_domain_ids_stay_in_the_range_fast_dds_accepts_however_many_tests_ask(start, lowest):
    ids = list(itertools.islice(ros_domain_ids(start, lowest), 1000))
    assert ids[0] == start
    assert all(lowest <= domain_id <= MAX_DOMAIN_ID for domain_id in ids)
    # Consecutive tests never share a domain: leftovers of one test cannot reach the next.
    assert all(a != b for a, b in zip(ids, ids[1:]))
    assert len(set(ids[:MAX_DOMAIN_ID - lowest + 1])) == MAX_DOMAIN_ID - lowest + 1


@pytest.mark.parametrize('start', [0, 100, 233])
def test_a_start_outside_the_range_is_refused(start):
    with pytest.raises(ValueError, match=str(start)):
        ros_domain_ids(start, lowest=101)
