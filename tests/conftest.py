"""Test-session settings: JAX's persistent compilation cache, shared by the tests and their subprocesses.

Most tests train a small model from scratch, and many compile the same programs (the same model on the
same synthetic shapes); with the cache each distinct program is compiled once per machine, which halves
the suite's time on 2 cores. Compiled programs are keyed by their HLO, options and jax version, so a cached
one is the program a fresh compile would produce: results do not change. Set JAX_COMPILATION_CACHE_DIR to
use another folder.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"mmjax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402  (after the environment, which jax reads when first imported)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_after_each_module():
    """Tests that build trainers or jit closures themselves leave their programs in jax's memory; dropping
    them after each file keeps the suite's process under the kernel's limit of memory mappings (it crashed
    in XLA at about 470 tests without this). fit() does the same after every run."""
    yield
    from mmjax.train.loop import release_compiled_programs

    release_compiled_programs()
