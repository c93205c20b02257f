"""Graceful pre-emption: SIGINT and SIGTERM ask the training loop to checkpoint and stop.

The first signal sets a flag that the loop checks at every dispatch boundary (a few seconds at
most); the loop then saves a checkpoint and raises ``runner.Interrupted``, and the command exits
with status 128 + the signal number (130 for SIGINT, 143 for SIGTERM) after printing how to
resume. A second SIGINT exits at once (status 130), without saving.

Several processes (``jax.distributed``): a signal may reach one process only, or reach them at
different boundaries, so the flag is agreed at each check (any process asked: every process
stops there, with the signal's status), or a process that stops alone would leave the others
waiting for ever in the next collective. ``runner.train_group`` agrees any ``should_stop`` it is
given as well (``devices.any_process``); this one also carries the signal, for the exit status.
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
        """Whether to stop at this dispatch boundary. On several processes this is a collective,
        called at the same boundaries on every process; a process not signalled takes the
        signal of one that was (the highest number), for its exit status."""
        jax = sys.modules.get("jax")  # a process that has not imported jax has joined no job
        if jax is None or jax.process_count() == 1:
            return self.signum is not None
        from jaxscale.devices import max_over_processes

        agreed = max_over_processes(self.signum or 0)
        if agreed and self.signum is None:
            self.signum = agreed
        return agreed != 0

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
