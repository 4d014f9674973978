"""Shared fixtures. Tests marked `ros` create ROS nodes: they only run inside a loopback-only network
namespace (`make test` runs pytest through scripts/loopback-run), each with its own ROS domain id."""

from __future__ import annotations

import os

import pytest

from domain_ids import ros_domain_ids
from ssl_robot.ros.netns import in_loopback_only_namespace

# 101..232: above the 1..100 that scripts/loopback-run picks for the namespace itself, so the tests' nodes never meet
# whatever runs in the namespace's own domain.
_domain_ids = ros_domain_ids(int(os.environ.get('ROS_DOMAIN_ID', '0')) % 100 + 101, lowest=101)


def pytest_collection_modifyitems(config, items):
    if in_loopback_only_namespace():
        return
    refuse = pytest.mark.skip(
        reason='creates ROS nodes: run inside a loopback-only network namespace (make test, or '
               'scripts/loopback-run python -m pytest), never on the host network')
    for item in items:
        if 'ros' in item.keywords:
            item.add_marker(refuse)


@pytest.fixture
def ros_domain_id(monkeypatch) -> int:
    """A ROS domain id of this test's own, exported for the processes the test starts."""
    domain_id = next(_domain_ids)
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain_id))
    return domain_id


@pytest.fixture
def probe(ros_domain_id, monkeypatch):
    """A node of the test's own, in its own domain, for observing the graph under test. Node processes the test
    starts run one torch thread each: the machine's cores are shared with the test."""
    from ros_harness import Probe
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    probe = Probe(ros_domain_id)
    yield probe
    probe.close()
