"""Joining a running Ray cluster (``RAY_ADDRESS``): fail fast where Ray would retry for
minutes, and say what to set when a join fails. Used by every command that joins one."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import RaytraderError

__all__ = ["ClusterConnectError", "check_reachable", "join", "join_hint"]


class ClusterConnectError(RaytraderError):
    """``RAY_ADDRESS`` names a cluster this process could not join; the message says why
    and what to set."""


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on a ``host:port`` nothing answers at: Ray itself retries such an address
    for many minutes. ``auto`` and ``ray://`` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise ClusterConnectError(
            f"RAY_ADDRESS={address}: nothing answers there ({exc}); is a cluster running at "
            "that address (`ray start --head` prints it) and reachable from here? "
            "RAY_ADDRESS=auto joins the cluster started on this machine"
        ) from exc


def join_hint(address: str, env: Mapping[str, str]) -> str:
    """What to check when joining ``address`` failed. Ray 2.60 clusters started by ``ray
    start`` require a token, and Ray sends the local one to an explicit address only when
    ``RAY_AUTH_MODE=token`` (never on its own, so no token goes anywhere unasked)."""
    if address == "auto":  # Ray found no cluster started on this machine, or could not join it
        return (
            "start one with `ray start --head` (the same venv), or unset RAY_ADDRESS to run "
            "Ray inside this process"
        )
    mode = env.get("RAY_AUTH_MODE")
    token_file = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    token = "RAY_AUTH_TOKEN" if env.get("RAY_AUTH_TOKEN") else token_file
    has_token = bool(env.get("RAY_AUTH_TOKEN")) or token_file.is_file()
    if mode != "token" and has_token:
        return (
            f"this machine has a Ray token ({token}) but RAY_AUTH_MODE is "
            f"{'not set' if mode is None else repr(mode)}: a cluster started by `ray start` "
            "requires the token; export RAY_AUTH_MODE=token (or RAY_ADDRESS=auto for a "
            "cluster on this machine)"
        )
    if mode == "token" and not has_token:
        return (
            f"RAY_AUTH_MODE=token but no token: none in RAY_AUTH_TOKEN nor in {token_file} "
            "(copy the cluster's ~/.ray/auth_token there, or set RAY_AUTH_TOKEN_PATH)"
        )
    return (
        f"is a cluster running at {address} (`ray start --head` prints its address), "
        "reachable from here, with this Ray version?"
    )


def join(address: str, init: Callable[..., object], **options: Any) -> None:
    """``init(address=address, **options)`` (the caller's ``ray.init``) after checking that
    something answers there; Ray's errors for a cluster not joined become a
    ``ClusterConnectError`` naming the address, Ray's reason and what to check."""
    check_reachable(address)
    try:
        init(address=address, **options)
    except (ConnectionError, RuntimeError) as exc:  # Ray's errors for a cluster not joined
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ClusterConnectError(
            f"RAY_ADDRESS={address}: could not join the Ray cluster there ({reason}); "
            f"{join_hint(address, os.environ)}"
        ) from exc
