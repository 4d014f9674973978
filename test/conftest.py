"""Shared fixtures. Tests marked `ros` create ROS nodes: they only run inside a loopback-only network
namespace (`make test` runs pytest through scripts/loopback-run), each with its own ROS domain id."""

from __future__ import annotations

import itertools
import os

import pytest

from ssl_robot.ros.netns import in_loopback_only_namespace

_domain_ids = itertools.count(int(os.environ.get('ROS_DOMAIN_ID', '0')) % 100 + 101)


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
