"""ROS domain ids for the tests that start ROS processes, one per test (conftest's ros_domain_id fixture)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

# Fast DDS derives its ports from the domain id and exits the process (status 1, no Python error) for an id
# above 232, the largest the ROS 2 documentation allows on Linux.
MAX_DOMAIN_ID = 232


def ros_domain_ids(start: int, lowest: int = 1) -> Iterator[int]:
    """Ids from `start` up through lowest..MAX_DOMAIN_ID and round again: a suite with more ROS tests than ids
    reuses the oldest ones, long after their processes have stopped."""
    if not lowest <= start <= MAX_DOMAIN_ID:
        raise ValueError(f'start {start} is outside the domain ids {lowest}..{MAX_DOMAIN_ID}')
    count = MAX_DOMAIN_ID - lowest + 1
    return (lowest + offset % count for offset in itertools.count(start - lowest))
