"""Argument checks that raise a ``ValueError`` naming the argument and the allowed range, the action
check of the single envs, and the checks of saved env states."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
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


class EnvStateError(ValueError):
    """A saved env state that does not fit the env (missing entry, wrong shape, dtype or range)."""


_KINDS = {"f": "f", "i": "iu", "u": "iu", "b": "b"}


def state_array(
    name: str,
    value: Any,
    dtype: Any,
    shape: tuple[int | None, ...],
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """``value`` as a fresh array of ``dtype`` and ``shape`` (``None``: any length), its entries in
    ``[low, high]``; raises :class:`EnvStateError` naming the entry otherwise."""
    dtype = np.dtype(dtype)
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 (anything that is not array-like)
        raise EnvStateError(f"{name}: expected an array, got {type(value).__name__}") from None
    fits = array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=True)
    )
    if not fits:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise EnvStateError(f"{name}: expected shape {want}, got {tuple(array.shape)}")
    if array.dtype.kind not in _KINDS[dtype.kind]:
        raise EnvStateError(f"{name}: expected {dtype.name} values, got {array.dtype.name}")
    array = array.astype(dtype, copy=True)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise EnvStateError(f"{name}: holds NaN or infinite values")
    if array.size and (
        (low is not None and array.min() < low) or (high is not None and array.max() > high)
    ):
        raise EnvStateError(
            f"{name}: values must lie in [{low}, {high}], got [{array.min()}, {array.max()}]"
        )
    return array


def state_entry(state: Any, key: str, prefix: str = "") -> Any:
    """``state[key]`` of a saved env state, or an :class:`EnvStateError` naming the missing entry."""
    if not isinstance(state, Mapping):
        raise EnvStateError(f"the saved env state must be a mapping, got {type(state).__name__}")
    if key not in state:
        raise EnvStateError(f"{prefix}{key}: missing from the saved env state")
    return state[key]


def state_group(state: Any, prefix: str) -> dict[str, Any]:
    """The entries ``<prefix>.*`` of a flat saved env state, without the prefix."""
    state_entry(state, f"{prefix}.rng")
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(f"{prefix}.")}


def check_action(value: Any, n: int) -> int:
    """Return a ``Discrete(n)`` action as an int: a Python or NumPy integer (or a 0-d integer array)
    in ``[0, n)``; floats, strings and bools raise a ``ValueError``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, int) or _is_np_int(value)):
        raise ValueError(f"action must be an integer in [0, {n - 1}], got {value!r}")
    if not 0 <= value < n:
        raise ValueError(f"action must be an integer in [0, {n - 1}], got {value!r}")
    return int(value)


def _is_np_int(value: Any) -> bool:
    return isinstance(value, np.integer)


def _is_np_num(value: Any) -> bool:
    return isinstance(value, (np.integer, np.floating))
