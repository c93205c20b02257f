"""A progress line for long runs: steps, tokens/s (in total and, for a stack, per model), ETA and
per-model losses, on stderr."""

from __future__ import annotations

import math
import sys
import threading
import time


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Prints one updating line on a terminal, or a line every ``every_s`` seconds otherwise. Off
    the main thread (a sweep's lanes train several groups at once) it prints lines, each naming
    its group: updating lines of two groups would overwrite each other."""

    def __init__(self, label: str, total_steps: int, *, stream=None, enabled: bool = True, every_s: float = 10.0,
                 models: int = 1):
        if not isinstance(models, int) or models < 1:
            raise ValueError(f"Progress: `models` must be a positive int, got {models!r}")
        self.label, self.total, self.models = label, max(total_steps, 1), models
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = (hasattr(self.stream, "isatty") and self.stream.isatty()
                    and threading.current_thread() is threading.main_thread())
        self.every_s = every_s
        self.start = time.perf_counter()
        self.last_print = -math.inf

    def update(self, step: int, tokens_per_s: float, losses: list[float | None],
               per_model: float | None = None) -> None:
        """``tokens_per_s``: all models together; ``per_model``: one model's rate while it trains
        (default: the total over ``models``); a loss of None: that model's budget is spent
        (shown ``done``, where a NaN reads as a divergence)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not self.tty and now - self.last_print < self.every_s and step < self.total:
            return
        self.last_print = now
        elapsed = now - self.start
        eta = elapsed / step * (self.total - step) if step else math.inf
        shown = " ".join("done" if l is None else "nan" if not math.isfinite(l) else f"{l:.3f}"
                         for l in losses[:8])
        more = f" (+{len(losses) - 8})" if len(losses) > 8 else ""
        rate = f"{tokens_per_s:,.0f}" if math.isfinite(tokens_per_s) else "-"  # not timed yet
        if self.models > 1 and math.isfinite(tokens_per_s):
            one = tokens_per_s / self.models if per_model is None else per_model
            rate += f" tok/s total, {one:,.0f} per model"
        else:
            rate += " tok/s"
        line = (f"{self.label} step {step}/{self.total} | {rate} | "
                f"ETA {_fmt_time(eta)} | loss {shown}{more}")
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if step >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
