"""Builders for the control API's end-to-end tests: a live system with the Serve app over it.

``live_system`` starts the live actors of a config, deploys ``cluster.serve:app`` with Ray
Serve on a free loopback port (tokens through the private token file, as ``raytrader serve``
does), and on exit shuts Serve down and kills the live actors, so the next module starts
clean. Journal helpers read what the tests check: kill events with their wall time, and the
positions a strategy held before each order.
"""

from __future__ import annotations

import secrets
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cluster.security import ApiToken
from core.events import EventKind, OrderAccepted, OrderFilled
from core.journal import Journal
from core.run_config import RunConfig

__all__ = [
    "LiveSystem",
    "exposure_increasing_after",
    "free_port",
    "live_system",
    "wall_ns",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveSystem:
    """A running system: topology, API URL, and the tokens by name."""

    topo: Any
    url: str
    tokens: dict[str, str]
    data_dir: Path

    def bearer(self, name: str = "ops") -> dict[str, str]:
        """The Authorization header of a token."""
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@contextmanager
def live_system(
    config: RunConfig,
    data_dir: Path,
    *,
    token_names: tuple[str, ...] = ("ops", "ci"),
) -> Iterator[LiveSystem]:
    """Start the config's actors and the control API over them (see the module docstring)."""
    from ray import serve

    from actors.runtime import kill_live_actors, start
    from cluster.serve import ServeSettings, deploy

    kill_live_actors()
    serve.shutdown()
    tokens = {name: secrets.token_urlsafe(32) for name in token_names}
    api_tokens = [ApiToken(name=n, secret=SecretStr(t)) for n, t in tokens.items()]
    topo = start(config)
    try:
        settings = ServeSettings(port=free_port(), data_dir=str(data_dir), rate=10_000,
                                 burst=10_000)  # fmt: skip
        deployed = deploy(settings, api_tokens)
        try:
            yield LiveSystem(topo, deployed.url, tokens, data_dir)
        finally:
            serve.shutdown()
            if deployed.token_dir:
                import shutil

                shutil.rmtree(deployed.token_dir, ignore_errors=True)
    finally:
        kill_live_actors()


def wall_ns(journal_path: str | Path, seq: int) -> int:
    """The wall time (ns) at which the journal row ``seq`` was written."""
    with sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True) as db:
        (value,) = db.execute("SELECT wall_ns FROM events WHERE seq = ?", (seq,)).fetchone()
    return int(value)


def exposure_increasing_after(
    journal_path: str | Path, strategy: str, since_seq: int
) -> list[tuple[int, str, float, float]]:
    """Orders accepted and fills of ``strategy`` after ``since_seq`` that did not reduce its
    exposure in their symbol: ``(seq, kind, position before, qty)`` for each.

    Positions are rebuilt from every fill of the strategy in journal order; an order reduces
    exposure when it trades against a position and no more than its size.
    """
    position: dict[str, float] = {}
    bad = []
    kinds = [EventKind.ORDER_ACCEPTED, EventKind.ORDER_FILLED]
    with Journal(journal_path, readonly=True) as journal:
        for entry in journal.read(kinds, strategy=strategy):
            event = entry.event
            assert isinstance(event, OrderAccepted | OrderFilled)
            qty = float(event.qty)
            before = position.get(event.symbol, 0.0)
            if entry.seq > since_seq:
                reduces = before != 0 and qty * before < 0 and abs(qty) <= abs(before) + 1e-9
                if not reduces:
                    bad.append((entry.seq, entry.kind.value, before, qty))
            if isinstance(event, OrderFilled):
                position[event.symbol] = before + qty
    return bad
