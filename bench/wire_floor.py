"""W5's floor: the paced bar's message chain through processes that do no work.

``python -m bench.wire_floor [--hosts 10] [--bars 400] [--paced-ms 25]``

The same processes and hops as a paced W5 bar, on the same wire (``actors.wire``), with
every method a no-op: a feed actor emits a bar (the packed bytes of a 50-symbol bar) every
``--paced-ms``, sends it to ``risk.open_bar`` (which calls ``broker.on_bar``) together with
every host's ``on_bar`` (W5's hosts are quiet, so the real feed does the same), then
``risk.close_bar`` with the hosts' answers (which calls ``broker.submit``). The latency is the
wall time from emitting the bar to the broker's answer to ``submit``: the real W5 figure
(bar-to-journaled-fill) minus the work, the journal and the checks. It is what fourteen Python
processes passing one bar along cost on this machine, whatever they compute.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from actors.common import ActorShell

__all__ = ["floor", "main"]


def _wires() -> Any:
    """Wire peers by actor name (``actors.wire.Wires``), found through Ray."""
    import ray

    from actors.wire import Wires

    return Wires(ray.get_actor, restart_wait_s=10, timeout_s=10)


class _Null(ActorShell):
    """A wire server whose methods do nothing (``forward``: call one peer, as risk does);
    ``endpoint`` and ``pid`` are the live actors' own (``ActorShell``)."""

    WIRE_METHODS = frozenset({"on_bar", "open_bar", "close_bar", "submit"})

    def __init__(self, forward: str | None = None) -> None:
        self._forward = forward
        self._wires: Any = None

    def _call(self, method: str, *args: Any) -> Any:
        assert self._forward is not None
        self._wires = self._wires or _wires()
        return self._wires(self._forward).call(method, *args)

    def on_bar(self, wire: bytes, *rest: Any) -> dict[str, Any]:
        """A host's (or the broker's) answer to a bar: no intents."""
        return {"intents": b"", "n": len(wire)}

    def open_bar(self, wire: bytes) -> bytes:
        """Risk's open: the broker's, passed on."""
        return self._call("on_bar", wire)["intents"]

    def close_bar(self, wire: bytes, intents: list[Any]) -> bytes:
        """Risk's close: the intents to the broker."""
        return self._call("submit", intents)

    def submit(self, intents: list[Any]) -> bytes:
        """The broker's fills: none."""
        return b"fills"


class _Feed:
    """Emits paced bars and times each one's chain (see the module docstring)."""

    def run(self, hosts: int, bars: int, paced_ms: float, wire: bytes) -> list[float]:
        from actors.wire import call_all

        wires = _wires()
        risk = wires("floor-risk")
        host_peers = [wires(f"floor-host-{k}") for k in range(hosts)]
        out: list[float] = []
        next_at = time.monotonic()
        for _ in range(bars):
            next_at += paced_ms / 1e3
            time.sleep(max(0.0, next_at - time.monotonic()))
            t0 = time.perf_counter()
            calls = [(risk, "open_bar", (wire,))]
            calls += [(p, "on_bar", (wire, (), None, False)) for p in host_peers]
            answers = call_all(calls)
            risk.call("close_bar", wire, [a["intents"] for a in answers[1:]])
            out.append(time.perf_counter() - t0)
        return out


def floor(hosts: int = 10, bars: int = 400, paced_ms: float = 25.0) -> list[float]:
    """Seconds per paced bar through no-op actors on the wire (Ray must be connected)."""
    import ray

    from actors.common import pack
    from bench.live import w5_config
    from core.replay import load_source

    null = ray.remote(num_cpus=0)(_Null)
    actors = [null.options(name="floor-broker").remote()]
    actors.append(null.options(name="floor-risk").remote("floor-broker"))
    actors += [null.options(name=f"floor-host-{k}").remote() for k in range(hosts)]
    ray.get([a.pid.remote() for a in actors])
    feed = ray.remote(num_cpus=0)(_Feed).remote()
    wire = pack(load_source(w5_config(2).feed.data).emit(0).bar)  # W5's bar, as the feed sends it
    try:
        ray.get(feed.run.remote(hosts, 20, paced_ms, wire))  # connect and warm up
        return ray.get(feed.run.remote(hosts, bars, paced_ms, wire))
    finally:
        for actor in [*actors, feed]:
            ray.kill(actor)


def main() -> None:
    """Print the floor's p50/p99 beside W5's target."""
    from actors.runtime import connect

    parser = argparse.ArgumentParser(prog="python -m bench.wire_floor")
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--bars", type=int, default=400)
    parser.add_argument("--paced-ms", type=float, default=25.0)
    args = parser.parse_args()
    connect()
    ms = np.asarray(floor(args.hosts, args.bars, args.paced_ms)) * 1e3
    print(f"W5 floor: {args.hosts} no-op hosts, no-op risk and broker on the wire, a bar every "
          f"{args.paced_ms:g} ms, {args.bars} bars: p50 {np.percentile(ms, 50):.2f} ms, "
          f"p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms (W5 target p99 < 10 ms)")


if __name__ == "__main__":
    main()
