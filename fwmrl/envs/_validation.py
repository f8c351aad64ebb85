"""Argument checks that raise a ``ValueError`` naming the argument and the allowed range."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[low, high]`` (``high=None``: unbounded)."""
    allowed = f"an integer in [{low}, {'inf' if high is None else high}]"
    if isinstance(value, bool) or not isinstance(value, int) and not _is_np_int(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is finite and in the given interval."""
    allowed = (
        f"a finite number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_np_num(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v > low if low_open else v >= low)
    ok = ok and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices, key=str)}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_render_mode(value: Any, modes: Collection[str]) -> str | None:
    """Return ``value`` if it is ``None`` or one of the env's render modes."""
    if value is not None and value not in modes:
        raise ValueError(f"render_mode must be None or one of {sorted(modes)}, got {value!r}")
    return value


def _is_np_int(value: Any) -> bool:
    return isinstance(value, np.integer)


def _is_np_num(value: Any) -> bool:
    return isinstance(value, (np.integer, np.floating))
