"""XLA's persistent compilation cache for every mmjax process: a model launched again (another seed, a
resumed run, an ablation's next variant) loads its compiled epoch instead of compiling it again, which is
most of the wait before the first epoch line of the larger models.

On by default in `$XDG_CACHE_HOME/mmjax/xla` (else `~/.cache/mmjax/xla`); `MMJAX_COMPILATION_CACHE=DIR`
moves it, `MMJAX_COMPILATION_CACHE=off` turns it off, and jax's own `JAX_COMPILATION_CACHE_DIR` wins when set.
A cached executable is the one the compiler would build again, so no number changes.
"""

from __future__ import annotations

import os
from typing import Mapping

OFF = ("0", "off", "none", "false")
MIN_COMPILE_SECONDS = 0.5  # compilations shorter than this are not worth a file


def cache_directory(environ: Mapping[str, str]) -> str | None:
    """Where this process's compilations are kept, or None when the cache is off or jax was told already."""
    setting = environ.get("MMJAX_COMPILATION_CACHE", "").strip()
    if setting.lower() in OFF or environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    if setting:
        return os.path.expanduser(setting)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mmjax", "xla")


def enable_compilation_cache(environ: Mapping[str, str] = os.environ) -> str | None:
    """Points jax at cache_directory(environ); returns it (None: left as jax has it)."""
    directory = cache_directory(environ)
    if directory is None:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
