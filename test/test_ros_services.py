"""RetriedCall (ssl_robot.ros.services): a service request made until it succeeds, against a fake client; no ROS
graph."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ssl_robot.ros.services import RetriedCall


class FakeFuture:
    def __init__(self) -> None:
        self.response = None

    def done(self) -> bool:
        return self.response is not None

    def result(self):
        return self.response


class FakeClient:
    """Records calls; the test answers (or loses) each call's future."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.calls: list[FakeFuture] = []
        self.removed: list[FakeFuture] = []

    def service_is_ready(self) -> bool:
        return self.ready

    def call_async(self, request) -> FakeFuture:
        self.calls.append(FakeFuture())
        return self.calls[-1]

    def remove_pending_request(self, future: FakeFuture) -> None:
        self.removed.append(future)


def answer(success: bool, message: str = '') -> SimpleNamespace:
    return SimpleNamespace(success=success, message=message)


def retried(client: FakeClient, warnings: list[str]) -> RetriedCall:
    return RetriedCall(client, 'request', '/goal/sample', warnings.append, retry_period_s=1.0, answer_timeout_s=10.0)


def test_calls_once_ready_and_is_done_when_the_answer_is_success():
    client, warnings = FakeClient(ready=False), []
    call = retried(client, warnings)
    assert not call.poll(0.0) and client.calls == []          # no server yet: nothing sent
    client.ready = True
    assert not call.poll(0.5) and len(client.calls) == 1
    assert not call.poll(0.6) and len(client.calls) == 1       # waiting for the answer, not calling again
    client.calls[0].response = answer(True)
    assert call.poll(0.7) and warnings == []


def test_a_refusal_is_warned_and_retried_after_the_retry_period():
    client, warnings = FakeClient(), []
    call = retried(client, warnings)
    call.poll(0.0)
    client.calls[0].response = answer(False, 'no frame from /cameras/task/image_raw yet')
    assert not call.poll(0.2) and len(client.calls) == 1      # refused: the next call waits out the period
    assert warnings == ['/goal/sample: no frame from /cameras/task/image_raw yet; retrying']
    assert not call.poll(0.9) and len(client.calls) == 1
    assert not call.poll(1.0) and len(client.calls) == 2
    client.calls[1].response = answer(True)
    assert call.poll(1.1)


def test_a_call_never_answered_is_dropped_and_made_again():
    """A lost response must not stall the caller: after answer_timeout_s the call is removed from the client's
    pending requests and sent again at once."""
    client, warnings = FakeClient(), []
    call = retried(client, warnings)
    call.poll(0.0)
    assert not call.poll(9.9) and len(client.calls) == 1
    assert not call.poll(10.0) and len(client.calls) == 2 and client.removed == [client.calls[0]]
    assert warnings == ['/goal/sample: no answer in 10 s; calling again']
    client.calls[1].response = answer(True)
    assert call.poll(10.1) and call.calls == 2


@pytest.mark.parametrize('retry_period_s, answer_timeout_s', [(0.0, 10.0), (1.0, -1.0)])
def test_periods_must_be_positive(retry_period_s, answer_timeout_s):
    with pytest.raises(ValueError, match='retry_period_s and answer_timeout_s must be > 0'):
        RetriedCall(FakeClient(), 'request', 'name', print, retry_period_s=retry_period_s,
                    answer_timeout_s=answer_timeout_s)
