"""Memory cores: one interface (:class:`MemoryCore`, :class:`CoreState`), built by name with
:func:`make_core`."""

from fwmrl.memory.base import CoreOutput, CoreState, MemoryCore
from fwmrl.memory.fwm import FWMCore, FWMState
from fwmrl.memory.gated_fw import GatedFWCore, GatedFWState
from fwmrl.memory.lstm import LSTMCore, LSTMState
from fwmrl.memory.registry import (
    NO_CORE,
    CoreConfigError,
    available_cores,
    core_arguments,
    core_class,
    make_core,
    register_core,
)

__all__ = [
    "NO_CORE",
    "CoreConfigError",
    "CoreOutput",
    "CoreState",
    "FWMCore",
    "FWMState",
    "GatedFWCore",
    "GatedFWState",
    "LSTMCore",
    "LSTMState",
    "MemoryCore",
    "available_cores",
    "core_arguments",
    "core_class",
    "make_core",
    "register_core",
]
