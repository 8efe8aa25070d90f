"""Find a strategy class by name: built-ins, installed plugins, or user code by location.

``get_strategy`` accepts a built-in name (``sma_crossover``), a name registered by an installed
distribution in the ``raytrader.strategies`` entry-point group, ``package.module:Class``, or
``path/to/file.py:Class``. Built-in names take precedence over entry points of the same name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from core.errors import ConfigError
from strategies.base import Strategy
from strategies.breakout import Breakout
from strategies.momentum import Momentum
from strategies.pairs import Pairs
from strategies.rsi_reversion import RsiReversion
from strategies.sma_crossover import SmaCrossover

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "get_strategy", "list_strategies"]

ENTRY_POINT_GROUP = "raytrader.strategies"

#: The built-in strategies by name.
BUILTINS: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCrossover, RsiReversion, Breakout, Momentum, Pairs)
}


def _as_strategy_class(obj: object, where: str) -> type[Strategy]:
    """Return ``obj`` if it is a Strategy subclass, else raise ConfigError naming ``where``."""
    if isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy:
        return obj
    raise ConfigError(f"{where} is {obj!r}, not a subclass of strategies.base.Strategy")


def _plugin_names() -> dict[str, object]:
    """Entry points of the ``raytrader.strategies`` group, by name (not yet loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(name: str, ep: object) -> type[Strategy]:
    where = f"entry point {name!r} ({ENTRY_POINT_GROUP})"
    try:
        obj = ep.load()  # type: ignore[attr-defined]
    except Exception as exc:  # a broken plugin is a configuration problem, named
        raise ConfigError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    return _as_strategy_class(obj, where)


def _import_file(path: Path) -> ModuleType:
    """Import a Python file as a uniquely named module registered in ``sys.modules``."""
    if not path.is_file():
        raise ConfigError(f"strategy file {str(path)!r} does not exist")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:12]
    module_name = f"raytrader_user_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigError(
            f"strategy file {str(path)!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ConfigError(
            f"strategy module {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def file_location(spec: str) -> tuple[Path, str] | None:
    """``(file, class name)`` when ``spec`` is a ``path/to/file.py:Class`` location, else None
    (a built-in or entry-point name, or ``package.module:Class``)."""
    target, _, attr = spec.strip().rpartition(":")
    if target and (target.endswith(".py") or "/" in target or "\\" in target):
        return Path(target), attr
    return None


def _load_location(spec: str) -> type[Strategy]:
    """Load ``module:Class`` or ``file.py:Class``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"strategy {spec!r}: expected 'package.module:Class' or 'file.py:Class'")
    module = _import_file(Path(target)) if file_location(spec) else _import_module(target)
    if not hasattr(module, attr):
        raise ConfigError(f"strategy {spec!r}: {target!r} has no attribute {attr!r}")
    return _as_strategy_class(getattr(module, attr), f"strategy {spec!r}")


def list_strategies() -> dict[str, type[Strategy]]:
    """Every strategy known by name: the built-ins, then the installed entry points."""
    found = dict(BUILTINS)
    for name, ep in sorted(_plugin_names().items()):
        if name not in found:
            found[name] = _load_entry_point(name, ep)
    return found


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class a name or location refers to; ConfigError listing known names if none."""
    name = name.strip()
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" in name:
        return _load_location(name)
    plugins = _plugin_names()
    if name in plugins:
        return _load_entry_point(name, plugins[name])
    known = sorted(set(BUILTINS) | set(plugins))
    raise ConfigError(
        f"unknown strategy {name!r}; known: {', '.join(known)} "
        "(or give 'package.module:Class' or 'path/to/file.py:Class')"
    )
