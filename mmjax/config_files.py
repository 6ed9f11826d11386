"""Config files outside absl flags (scripts, ablation runners): load a get_config() file, apply overrides."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
from typing import Any, Mapping

import ml_collections

from mmjax.errors import ConfigError


def call_file_function(path: str, function: str) -> Any:
    """`function()` defined by the python file at `path` (a config file's get_config, a grid's get_grid)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: file not found")
    spec = importlib.util.spec_from_file_location(f"_mmjax_file_{abs(hash(os.path.abspath(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, function):
            raise ConfigError(f"{path}: defines no {function}()")
        return getattr(module, function)()
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - a broken file is bad input: named in one line
        raise ConfigError(f"{path}: {function}() failed: {type(error).__name__}: {error}") from None


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """get_config() of a python config file such as configs/lightgcn.py."""
    return call_file_function(path, "get_config")


def parse_value(text: str) -> Any:
    """A command-line value: a python literal (1e-3, True, ('image',), None) or else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {sorted(known)})"


def field_parent(config: ml_collections.ConfigDict, dotted: str,
                 what: str = "override ") -> tuple[ml_collections.ConfigDict, str]:
    """(section, leaf name) of an existing dotted field ('train.num_epochs'); ConfigError naming the
    nearest known name for a section or field the config does not have."""
    *parents, leaf = dotted.split(".")
    node = config
    for parent in parents:
        if parent not in node or not isinstance(node[parent], ml_collections.ConfigDict):
            sections = [k for k in node.keys() if isinstance(node[k], ml_collections.ConfigDict)]
            raise ConfigError(f"{what}{dotted}: config has no section {parent!r}{_did_you_mean(parent, sections)}")
        node = node[parent]
    if leaf not in node:
        raise ConfigError(f"{what}{dotted}: config has no field {leaf!r}{_did_you_mean(leaf, list(node.keys()))}")
    return node, leaf


def flat_fields(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Every leaf field of a config by dotted name, in the config's order."""
    fields: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            fields.update(flat_fields(value, f"{prefix}{key}."))
        else:
            fields[f"{prefix}{key}"] = value
    return fields


def with_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """A copy of `config` with dotted fields set ('model.fusion' -> 'mean'); unknown fields are errors."""
    config = ml_collections.ConfigDict(config.to_dict())
    for dotted, value in overrides.items():
        node, leaf = field_parent(config, dotted)
        current = node[leaf]
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            node[leaf] = value
        except TypeError:
            # placeholder fields (None by default) take their first real value; others keep their type
            raise ConfigError(f"override {dotted}: {value!r} does not fit the field's type "
                              f"({type(current).__name__})") from None
    return config
