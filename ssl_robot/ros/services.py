"""Answering std_srvs/Trigger requests the same way in every node."""

from __future__ import annotations

from collections.abc import Callable

from std_srvs.srv import Trigger


def answer_trigger(response: Trigger.Response, action: Callable[[], str],
                   refusals: tuple[type[Exception], ...]) -> Trigger.Response:
    """Run action(): success with the line it returns, or, when it raises one of refusals, failure with that error's
    message, so the caller learns why. Any other exception is a bug and propagates."""
    try:
        response.message = action()
        response.success = True
    except refusals as error:
        response.success, response.message = False, str(error)
    return response


class RetriedCall:
    """One service request, made until the service answers success: goal_sequence_node's steps. poll(now_s) on a
    monotonic clock says whether it has; warn(line) hears every refusal and every dropped call.

    The request goes out once the service is ready, and again retry_period_s after a refusal (a goal node may have
    no model or frame yet). A call unanswered for answer_timeout_s is dropped and made again: a response can be lost
    (a request sent before the server has matched the client's response reader is answered into the void), and
    waiting on it would stall the caller for good."""

    def __init__(self, client, request, name: str, warn: Callable[[str], None], retry_period_s: float = 1.0,
                 answer_timeout_s: float = 10.0) -> None:
        if not (retry_period_s > 0 and answer_timeout_s > 0):
            raise ValueError(f'retry_period_s and answer_timeout_s must be > 0, got {retry_period_s} and '
                             f'{answer_timeout_s}')
        self.client, self.request, self.name, self.warn = client, request, name, warn
        self.retry_period_s, self.answer_timeout_s = retry_period_s, answer_timeout_s
        self._pending = None
        self._sent_s: float | None = None
        self.calls = 0

    def poll(self, now_s: float) -> bool:
        """True once the service has answered success; otherwise calls it when due and returns False."""
        if self._pending is not None:
            if self._pending.done():
                response, self._pending = self._pending.result(), None
                if response.success:
                    return True
                self.warn(f'{self.name}: {response.message}; retrying')
            elif now_s - self._sent_s >= self.answer_timeout_s:
                self.client.remove_pending_request(self._pending)
                self._pending, self._sent_s = None, None   # call again at once
                self.warn(f'{self.name}: no answer in {self.answer_timeout_s:g} s; calling again')
            else:
                return False
        due = self._sent_s is None or now_s - self._sent_s >= self.retry_period_s
        if due and self.client.service_is_ready():
            self._pending, self._sent_s = self.client.call_async(self.request), now_s
            self.calls += 1
        return False
