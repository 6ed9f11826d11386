"""Where log lines go: the terminal, a run's <workdir>/mmjax.log, without jax's TPU probe on other machines."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

LOG_FILE = "mmjax.log"


def log_to_workdir(workdir: str) -> logging.Handler | None:
    """Every log line of this run also goes to <workdir>/mmjax.log (appended: a resumed run adds to it);
    returns the handler (None when the workdir cannot be written)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        handler = logging.FileHandler(os.path.join(workdir, LOG_FILE))
    except OSError:
        return None  # an unwritable workdir is reported, in one line, where the run first writes to it
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


@contextlib.contextmanager
def workdir_log(workdir: str) -> Iterator[None]:
    """log_to_workdir for one of several runs of a process (an ablation's, a search's trials)."""
    handler = log_to_workdir(workdir)
    try:
        yield
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def quiet_platform_probe() -> None:
    """jax logs that it found no TPU on every machine without one; that is not news on a CPU or GPU."""
    logging.getLogger("jax._src.xla_bridge").addFilter(
        lambda record: "Unable to initialize backend" not in record.getMessage())


def script_logging() -> None:
    """INFO lines with times on stderr for the experiments' scripts (progress of every run they train).

    A plain terminal handler an imported library already gave the root logger (often at WARNING level,
    which would silence every progress line) is replaced; other handlers (files, a test's log capture) stay."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    root.addHandler(terminal)
    root.setLevel(logging.INFO)
    quiet_platform_probe()
