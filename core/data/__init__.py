"""Bar data: loaders (CSV/Parquet), validation (per bar and per file) and synthetic panels."""

from __future__ import annotations

from core.data.loaders import expand_paths, load_bars, load_wide, read_bar_file
from core.data.synthetic import synthetic_bars, synthetic_wide
from core.data.validation import (
    BadBar,
    BadBarAction,
    ValidationReport,
    check_bar,
    validate_bars,
)

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
