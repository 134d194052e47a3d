"""Ctrl-C and SIGTERM (as torchrun sends) during training: the first asks the trainer to stop after the batch in
progress (it then checkpoints and exits cleanly); a second stops at once."""

from __future__ import annotations

import signal
import threading


class StopRequests:
    """A context manager that turns SIGINT and SIGTERM into `requested = True` while it is active."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # signals can only be caught there
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> bool:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        return False
