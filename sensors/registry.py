"""The sensor registry: every sensor Casino knows, with its metadata.

Importing this module imports each family module once, which registers its sensors.
Plugins (extra sensor modules, e.g. test doubles) register themselves the same way with
``sensors.base.sensor`` and are picked up by ``all_sensors()`` once imported.
"""

from __future__ import annotations

import importlib

from sensors import momentum, patterns, regime, structure, trend, volatility, volume  # noqa: F401 - registers
from sensors.base import Family, SensorSpec, defined

FAMILY_ORDER = tuple(Family)


def all_sensors() -> dict[str, SensorSpec]:
    """Every registered sensor by name, grouped by family then in definition order."""
    specs = defined()
    return {s.name: s for s in sorted(specs.values(), key=lambda s: FAMILY_ORDER.index(s.family))}


def builtin_sensors() -> dict[str, SensorSpec]:
    """The sensors Casino ships (``all_sensors`` without plugins loaded into this process)."""
    return {n: s for n, s in all_sensors().items() if s.fn.__module__.startswith("sensors.")}


def get(name: str) -> SensorSpec:
    """The sensor called ``name`` (KeyError listing nothing but the name when unknown)."""
    specs = defined()
    if name not in specs:
        raise KeyError(f"unknown sensor {name!r}")
    return specs[name]


def load_plugins(modules: tuple[str, ...]) -> None:
    """Import extra sensor modules so their sensors register (same in every worker process)."""
    for module in modules:
        importlib.import_module(module)
