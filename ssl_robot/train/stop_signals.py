"""SIGINT and SIGTERM as requests to stop training after the current step, with a checkpoint, instead of a
KeyboardInterrupt in the middle of an optimizer step. A second Ctrl-C quits at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignals:
    """While entered, records the first SIGINT/SIGTERM in `received` (only from the main thread, where Python
    delivers signals; elsewhere the default handlers stay)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # torchrun forwards a SIGTERM after the terminal's SIGINT; only a repeated Ctrl-C means "now".
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signal.Signals(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
