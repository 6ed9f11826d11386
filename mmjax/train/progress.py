"""A progress bar inside each training epoch (train.progress): the epoch runs as one compiled scan, so its
steps report to the host through a debug callback, and rich draws the bar with the time left.

'auto' draws it only when stderr is a terminal (never into log files or CI output); the bar is transient,
so the epoch's log line replaces it. The callback reads no value of the step, so training computes the
same numbers with the bar as without it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

from mmjax.errors import ConfigError

PROGRESS = ("auto", "bar", "none")


def wants_bar(setting: str) -> bool:
    """Whether train.progress asks for a bar here; ConfigError for an unknown setting."""
    if setting not in PROGRESS:
        raise ConfigError(f"train.progress: expected one of {PROGRESS}, got {setting!r}")
    return setting == "bar" or (setting == "auto" and sys.stderr.isatty())


class StepBar:
    """Counts the steps of the running epoch (device 0's callbacks) and shows them as a rich bar."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress = None
        self._task = None
        self.steps_seen = 0  # steps reported in the current epoch

    def start(self, epoch: int, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.steps_seen = 0
        self._progress = Progress(TextColumn(f"epoch {epoch:4d}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("steps, left"), TimeRemainingColumn(),
                                  console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task("train", total=total)
        self._progress.start()

    def on_step(self, device) -> None:
        """Host callback of every step on every device; device 0's count."""
        if int(device) != 0:
            return
        with self._lock:
            self.steps_seen += 1
            if self._progress is not None:
                self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextlib.contextmanager
    def epoch(self, epoch: int, total: int) -> Iterator[None]:
        """The bar drawn while one epoch of `total` steps runs, removed however the epoch ends."""
        self.start(epoch, total)
        try:
            yield
        finally:
            self.stop()
