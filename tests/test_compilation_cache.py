"""The persistent compilation cache: where it goes, how it is turned off, and that jax is pointed at it."""

import os

import jax

from mmjax.compilation_cache import cache_directory, enable_compilation_cache


def test_cache_directory_follows_the_environment(tmp_path):
    assert cache_directory({"XDG_CACHE_HOME": str(tmp_path)}) == os.path.join(str(tmp_path), "mmjax", "xla")
    assert cache_directory({"MMJAX_COMPILATION_CACHE": str(tmp_path / "x")}) == str(tmp_path / "x")
    assert cache_directory({"HOME": "/h"}).endswith(os.path.join(".cache", "mmjax", "xla"))
    for off in ("off", "0", "None", " false "):
        assert cache_directory({"MMJAX_COMPILATION_CACHE": off}) is None
    assert cache_directory({"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}) is None  # jax's own setting wins


def test_enable_points_jax_at_the_directory(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    try:
        assert enable_compilation_cache({"MMJAX_COMPILATION_CACHE": str(tmp_path)}) == str(tmp_path)
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
        assert enable_compilation_cache({"MMJAX_COMPILATION_CACHE": "off"}) is None
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)  # off leaves jax as it is
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
