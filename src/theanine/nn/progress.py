"""The progress bar ``fit`` draws on a terminal: samples done, loss and metrics, speed."""

from __future__ import annotations

import sys
import time


def format_logs(logs):
    """'loss 0.4123  accuracy 0.8312' from a dict of numbers."""
    return "  ".join(f"{key} {value:.4f}" for key, value in logs.items())


class ProgressBar:
    """One line per epoch, redrawn in place: ``epoch 3/50 [=====>   ] 1200/4000 loss ...``.

    The speed is that of training (samples per second up to the last batch); the bar
    is drawn at most every ``interval`` seconds, and only when ``enabled``.
    """

    def __init__(self, epoch, epochs, total, stream=None, enabled=True, width=24, interval=0.1):
        self.prefix = f"epoch {epoch + 1}/{epochs}"
        self.total, self.width, self.interval = total, width, interval
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = self.last_draw = time.perf_counter()
        self.done, self.speed = 0, 0.0

    def update(self, done, logs, force=False):
        """Record that ``done`` samples are processed, with the running ``logs``; redraw
        if the last drawing is older than the interval (or ``force``)."""
        now = time.perf_counter()
        self.done, self.speed = done, done / max(now - self.start, 1e-9)
        if self.enabled and (force or now - self.last_draw >= self.interval):
            self.last_draw = now
            self._draw(logs)

    def _draw(self, logs):
        filled = int(self.width * self.done / max(self.total, 1))
        bar = ("=" * filled + ">" + " " * self.width)[:self.width]
        self.stream.write(f"\r{self.prefix} [{bar}] {self.done}/{self.total}  {format_logs(logs)}  "
                          f"{self.speed:,.0f} samples/s\x1b[K")
        self.stream.flush()

    def finish(self, logs):
        """Draw the epoch's final logs (validation included) and end its line."""
        if self.enabled:
            self._draw(logs)
            self.stream.write("\n")
            self.stream.flush()
