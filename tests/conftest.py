"""Shared pytest fixtures and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# CI runs the same examples every time (a failure there is reproducible); locally hypothesis
# keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def data_dir() -> Path:
    """The repository's bundled real daily data (data/*.csv)."""
    return REPO / "data"
