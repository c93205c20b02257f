"""Graceful pre-emption: SIGINT and SIGTERM ask the training loop to checkpoint and stop.

The first signal sets a flag that the loop checks at every dispatch boundary (a few seconds at
most); the loop then saves a checkpoint and raises ``runner.Interrupted``, and the command exits
with status 128 + the signal number (130 for SIGINT, 143 for SIGTERM) after printing how to
resume. A second SIGINT exits at once (status 130), without saving.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


class StopRequest:
    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def graceful_stop():
    request = StopRequest()

    def handler(signum, frame):
        if request.signum is not None and signum == signal.SIGINT:
            sys.stderr.write("\nsecond interrupt: exiting now, without a checkpoint\n")
            os._exit(130)
        request.signum = signum
        sys.stderr.write(f"\n{signal.Signals(signum).name}: saving a checkpoint at the next step boundary "
                         "(interrupt again to exit at once)\n")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
