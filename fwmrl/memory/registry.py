"""Build any memory core by name: ``make_core("fwm", input_size=8, hidden_size=32, memory_size=16)``."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from fwmrl.memory.base import MemoryCore

_CORES: dict[str, str | type[MemoryCore]] = {
    "lstm": "fwmrl.memory.lstm:LSTMCore",
    "fwm": "fwmrl.memory.fwm:FWMCore",
    "gated_fw": "fwmrl.memory.gated_fw:GatedFWCore",
    "mnm_g": "fwmrl.memory.mnm:MNMGCore",
    "mnm_p": "fwmrl.memory.mnm:MNMPCore",
}


NO_CORE = "none"
"""The core name of the memoryless baseline: no core is built, and a policy's encoder feeds its heads
directly (:class:`fwmrl.agents.policy.NoMemoryCore`)."""


class CoreConfigError(ValueError):
    """An unknown core name or an argument the core does not take."""


def register_core(name: str, cls: type[MemoryCore]) -> None:
    """Make ``cls`` constructible as ``make_core(name, ...)``."""
    if not (isinstance(cls, type) and issubclass(cls, MemoryCore)):
        raise TypeError(f"register_core: {cls!r} is not a MemoryCore subclass")
    _CORES[name] = cls


def available_cores() -> list[str]:
    """Names accepted by :func:`make_core`."""
    return sorted(_CORES)


def core_class(name: str) -> type[MemoryCore]:
    """The class registered under ``name``."""
    if name not in _CORES:
        raise CoreConfigError(f"unknown core {name!r}; available cores: {available_cores()}")
    entry = _CORES[name]
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = getattr(importlib.import_module(module), attr)
        _CORES[name] = entry
    return entry


def core_arguments(name: str) -> dict[str, Any]:
    """``{argument: default}`` of a core's constructor (``inspect.Parameter.empty`` if required)."""
    signature = inspect.signature(core_class(name).__init__)
    return {p.name: p.default for p in list(signature.parameters.values())[1:]}


def make_core(name: str, **kwargs: Any) -> MemoryCore:
    """Construct the core registered as ``name`` with keyword arguments.

    Raises
    ------
    CoreConfigError
        For an unknown name, an argument the core does not take, a missing required argument or a
        bad value; the message lists what is allowed.
    """
    cls = core_class(name)
    allowed = core_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    missing = sorted(
        k for k, v in allowed.items() if v is inspect.Parameter.empty and k not in kwargs
    )
    listing = ", ".join(
        k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in allowed.items()
    )
    if unknown:
        raise CoreConfigError(
            f"core {name!r} got unknown argument(s) {unknown}; allowed arguments: {listing}"
        )
    if missing:
        raise CoreConfigError(
            f"core {name!r} is missing argument(s) {missing}; arguments: {listing}"
        )
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as error:
        raise CoreConfigError(f"core {name!r}: {error}") from None
