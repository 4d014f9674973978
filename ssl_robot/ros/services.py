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
