"""Bar data: loaders (CSV/Parquet), validation (per bar and per file) and synthetic panels.

The names below are imported from their modules on first use, so that a live actor importing
``core.data.synthetic`` (its start-up warm-up) does not import the loaders' and validation's
polars (0.2 s and 23 MiB at every actor start and restart).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.data.loaders import expand_paths, load_bars, load_wide, read_bar_file
    from core.data.synthetic import synthetic_bars, synthetic_wide
    from core.data.validation import (
        BadBar,
        BadBarAction,
        ValidationReport,
        check_bar,
        validate_bars,
    )

_HOME = {
    "BadBar": "validation",
    "BadBarAction": "validation",
    "ValidationReport": "validation",
    "check_bar": "validation",
    "validate_bars": "validation",
    "expand_paths": "loaders",
    "load_bars": "loaders",
    "load_wide": "loaders",
    "read_bar_file": "loaders",
    "synthetic_bars": "synthetic",
    "synthetic_wide": "synthetic",
}

__all__ = [
    "BadBar",
    "BadBarAction",
    "ValidationReport",
    "check_bar",
    "expand_paths",
    "load_bars",
    "load_wide",
    "read_bar_file",
    "synthetic_bars",
    "synthetic_wide",
    "validate_bars",
]


def __getattr__(name: str) -> Any:
    """One of ``__all__``, from its module (imported now if it was not)."""
    if name in _HOME:
        return getattr(import_module(f"core.data.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
