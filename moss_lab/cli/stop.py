"""Ctrl-C in a long command: the first asks the run to stop after this step and keep what
it has learned; the second aborts.

    with StopOnCtrlC("step") as stop:
        train_reward_model(..., should_stop=stop)   # stop() is True after the first Ctrl-C
"""
from __future__ import annotations

import signal
import threading


class StopOnCtrlC:
    def __init__(self, unit: str = "step"):
        self.unit = unit            # "step" or "iteration", for the message
        self.requested = False
        self._previous = None

    def __call__(self) -> bool:
        """Has a stop been asked for? (pass the object itself as `should_stop`)"""
        return self.requested

    def handle(self, signum=None, frame=None) -> None:
        """The SIGINT handler: the first call sets the flag, the second aborts."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nstopping after this {self.unit} (Ctrl-C again to abort)", flush=True)

    def __enter__(self) -> "StopOnCtrlC":
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            self._previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
