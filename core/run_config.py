"""The live run's configuration: one YAML file, the same models the CLI and the HTTP API take.

A ``RunConfig`` names the strategies (each with its parameters, symbols, simulation settings
and the cash allocated to it), the risk limits, the broker, the feed, the journal and the
runtime's failure policy. Every model is frozen with ``extra="forbid"``, so a typo in a key is
an error, not a silently ignored setting. Strategy parameters are checked against the
strategy's declared parameters while the config is validated.

``load_run_config(path)`` reads YAML and raises ``RunConfigError`` whose message names the file,
the field path (``strategies[1].params.fast``) and the rule. Relative paths in the file (data,
journal, a ``file.py:Class`` strategy) are resolved against the file's directory.

Checking parameters needs the strategy classes: this is the one place ``core`` reaches into
``strategies``, lazily inside the validators, so importing ``core`` stays free of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.config import DataSpec
from core.errors import ConfigError
from core.paper_account import PaperOptions
from core.risk.limits import RiskLimits
from core.sim import SimConfig
from core.types import BadBarPolicy

__all__ = [
    "ABSENT",
    "STRATEGY_ID_PATTERN",
    "BrokerConfig",
    "FeedConfig",
    "FeedData",
    "JournalConfig",
    "RunConfig",
    "RunConfigError",
    "RuntimeConfig",
    "StrategyConfig",
    "describe_errors",
    "identity_changes",
    "load_run_config",
]

#: Strategy ids name actors (``strategy:<id>``) and scopes: letters, digits, ``_ . -``.
STRATEGY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_SYMBOL = r"^[A-Za-z0-9_.\-/]{1,64}$"
#: ``identity_changes``'s value for a field one side does not have.
ABSENT = "<absent>"
_PARAM_RULE = re.compile(r"^parameter [^=]+=.*?: (?P<rule>.+)$", re.S)


class RunConfigError(ConfigError):
    """A run config breaks a rule; ``errors`` lists ``(field path, rule)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], *, file: str | None = None) -> None:
        self.errors = errors
        self.file = file
        prefix = f"{file}: " if file else ""
        lines = [f"{prefix}{path}: {rule}" if path else f"{prefix}{rule}" for path, rule in errors]
        super().__init__("\n".join(lines))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _param_rule(exc: ConfigError) -> str:
    """The rule of a parameter error (``must be in [1, 1000]``), without the repeated name."""
    match = _PARAM_RULE.match(str(exc))
    return match.group("rule") if match else str(exc)


class StrategyConfig(_Frozen):
    """One strategy instance: what runs, on which symbols, with how much cash.

    ``sim.cash`` is the capital allocated to this strategy (its broker sub-account).
    """

    id: Annotated[str, Field(pattern=STRATEGY_ID_PATTERN)]
    strategy: str = Field(min_length=1, description="registry name or 'package.module:Class'")
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[Annotated[str, Field(pattern=_SYMBOL)]] = Field(min_length=1, max_length=10_000)
    sim: SimConfig = Field(default_factory=SimConfig)
    max_history: int | None = Field(
        None, ge=2, description="cap the host's bar history (opt-in: recursive indicators drift)"
    )

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for symbol in value:
            if symbol in seen:
                raise ValueError(f"symbol {symbol!r} is listed twice")
            seen.add(symbol)
        return value

    @field_validator("params")
    @classmethod
    def _declared_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("strategy")
        if name is None:  # the strategy field failed already; its error is reported
            return value
        from strategies.registry import get_strategy

        try:
            klass = get_strategy(name)
        except ConfigError:
            return value  # reported by the model validator, under ``strategy``
        specs = klass.param_specs()
        for key, raw in value.items():
            if key not in specs:
                declared = ", ".join(specs) or "none"
                raise PydanticCustomError(
                    "strategy_param", "{param}: unknown parameter (declared: {declared})",
                    {"param": key, "declared": declared},
                )  # fmt: skip
            try:
                specs[key].validate(raw)
            except ConfigError as exc:
                raise PydanticCustomError(
                    "strategy_param", "{param}: {rule}", {"param": key, "rule": _param_rule(exc)}
                ) from None
        try:
            klass(**value)  # cross-parameter rules (fast < slow)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _known_strategy(self) -> StrategyConfig:
        from strategies.registry import get_strategy

        try:
            get_strategy(self.strategy)
        except ConfigError as exc:
            raise PydanticCustomError(
                "strategy_name", "strategy: {rule}", {"rule": str(exc)}
            ) from None
        return self


class BrokerConfig(_Frozen):
    """The broker: ``paper`` fills with the backtest's fill model (Alpaca comes later)."""

    kind: Literal["paper"] = "paper"
    max_volume_pct: float | None = Field(None, gt=0, le=100)
    fill_probability: float = Field(1.0, gt=0, le=1)
    seed: int = 0

    def paper_options(self) -> PaperOptions:
        """The paper engine's realism options (defaults keep exact backtest parity)."""
        return PaperOptions(
            max_volume_pct=self.max_volume_pct, fill_probability=self.fill_probability,
            seed=self.seed,
        )  # fmt: skip


class FeedData(DataSpec):
    """Where the feed's bars come from; like a backtest's data, but bad bars are quarantined
    (``reject``) by default: a live run trades on, a backtest stops."""

    bad_bars: BadBarPolicy = BadBarPolicy.REJECT


class FeedConfig(_Frozen):
    """The data feed: its bars and the replay speed (``max``, or a factor of real time)."""

    data: FeedData = Field(default_factory=FeedData)
    speed: Literal["max"] | float = Field(
        "max", description="'max': as fast as the pipeline allows; 1.0: real time; N: N x faster"
    )

    @field_validator("speed", mode="before")
    @classmethod
    def _speed(cls, value: object) -> object:
        if value == "max":
            return value
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not 0 < float(value) <= 1e9:  # type: ignore[arg-type]
            raise ValueError(f"must be 'max' or a positive number (1.0 = real time), got {value!r}")
        return float(value)  # type: ignore[arg-type]


class JournalConfig(_Frozen):
    """The journal file; None: a fresh file in a temporary directory for this run."""

    path: str | None = None
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"


class RuntimeConfig(_Frozen):
    """Failure policy (what hosts do while risk is down, how long callers wait) and the
    per-bar schedule.

    ``early_hosts``: a bar that is not carried by the previous bar's close (a paced feed's
    bar, the first one, the one after a pause) goes to the hosts whose sub-accounts its
    open cannot touch (no open order, no position a stop could close) while the broker
    opens it, instead of after; the feed checks the open's report and has any host the
    open did touch size its orders again. Same trades either way; off to compare.

    ``warm_before_ms``: when paced bars are at least twice this far apart, the hosts, risk
    and the broker run their bar path on the last bar (changing nothing) at least this long
    before the next one is due, so the bar does not find them cold (docs/live.md, "Cold
    bars"); longer when recent warm-ups took longer, so that they end before the bar (at
    most half the spacing). 0: off. Same trades either way.

    ``marks_snapshot_bars``: every this many bars risk journals all its marks (day-start
    equities, peaks, loss streaks) in one row; a restarted risk actor reads the last such
    row and the rows after it, so its restart does not grow with the length of the run.
    """

    on_risk_down: Literal["buffer", "drop"] = "buffer"
    risk_buffer_limit: int = Field(1000, ge=1, le=1_000_000)
    call_timeout_s: float = Field(60.0, gt=0, le=3600)
    restart_wait_s: float = Field(60.0, gt=0, le=3600)
    early_hosts: bool = True
    warm_before_ms: float = Field(6.0, ge=0, le=60_000)
    marks_snapshot_bars: int = Field(500, ge=1, le=1_000_000)


class RunConfig(_Frozen):
    """A whole live run: strategies, risk limits, broker, feed, journal, runtime policy."""

    strategies: list[StrategyConfig] = Field(min_length=1, max_length=1000)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @field_validator("strategies")
    @classmethod
    def _unique_ids(cls, value: list[StrategyConfig]) -> list[StrategyConfig]:
        seen: set[str] = set()
        for i, strategy in enumerate(value):
            if strategy.id in seen:
                raise PydanticCustomError(
                    "duplicate_id", "[{index}].id: id {id!r} is used twice",
                    {"index": i, "id": strategy.id},
                )  # fmt: skip
            seen.add(strategy.id)
        return value

    @model_validator(mode="after")
    def _limits_name_strategies(self) -> RunConfig:
        # a typo in an override's id would leave that strategy on the global limits unseen
        ids = [s.id for s in self.strategies]
        for sid in self.risk.strategies:
            if sid not in ids:
                raise PydanticCustomError(
                    "unknown_strategy_limits",
                    "risk.strategies.{sid}: no strategy of this config has the id '{sid}' "
                    "(ids: {ids}); a strategy launched later gets its limits from "
                    "`raytrader limits set` once it runs",
                    {"sid": sid, "ids": ", ".join(ids)},
                )  # fmt: skip
        return self

    def strategy(self, strategy_id: str) -> StrategyConfig:
        """One strategy's config by id (KeyError when unknown)."""
        for strategy in self.strategies:
            if strategy.id == strategy_id:
                return strategy
        raise KeyError(strategy_id)

    def unknown_symbols(self, available: Iterable[str]) -> list[tuple[str, str]]:
        """``(field path, rule)`` for every strategy symbol the feed's data does not have."""
        have = set(available)
        paths, named = self.feed.data.paths, self.feed.data.symbol
        # a lone file without a symbol column is named by its stem: say so when it was
        stem = Path(paths[0]).stem if len(paths) == 1 and named is None else None
        hint = (
            f"; the file {Path(paths[0]).name} has no symbol column, so its bars are named "
            f"{stem!r} after it: set feed.data.symbol to name them" if stem in have else ""
        )  # fmt: skip
        out = []
        for i, strategy in enumerate(self.strategies):
            for k, symbol in enumerate(strategy.symbols):
                if symbol not in have:
                    out.append((
                        f"strategies[{i}].symbols[{k}]",
                        f"strategy {strategy.id!r} trades {symbol!r}, which is not in the "
                        f"feed's data ({', '.join(sorted(have)) or 'no symbols'}){hint}",
                    ))  # fmt: skip
        return out

    def identity(self) -> dict[str, Any]:
        """What makes a journal this run's: everything that decides its trades (strategies
        with every parameter, defaults included; risk limits; broker; the feed's data), not
        how it runs (speed, runtime policy, the journal's settings). JSON values only."""
        from strategies.registry import get_strategy

        out = self.model_dump(
            mode="json", exclude={"journal": True, "runtime": True, "feed": {"speed"}}
        )
        for strategy, dumped in zip(self.strategies, out["strategies"], strict=True):
            params = get_strategy(strategy.strategy)(**strategy.params).params
            dumped["params"] = json.loads(json.dumps(params, default=str))
        return out

    def resolved(self, base: Path) -> RunConfig:
        """This config with relative data and journal paths resolved against ``base``."""
        data = self.feed.data
        paths = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in data.paths]
        feed = self.feed.model_copy(update={"data": data.model_copy(update={"paths": paths})})
        journal = self.journal
        if journal.path is not None and not Path(journal.path).is_absolute():
            journal = journal.model_copy(update={"path": str((base / journal.path).resolve())})
        return self.model_copy(update={"feed": feed, "journal": journal})


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def identity_changes(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(field path, before, after)`` for every leaf where two ``RunConfig.identity()``
    values differ; a side that lacks the field has ``ABSENT``."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else str(key)
            out += identity_changes(before.get(key, ABSENT), after.get(key, ABSENT), sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [c for i, (b, a) in enumerate(zip(before, after, strict=True))
                for c in identity_changes(b, a, f"{path}[{i}]")]  # fmt: skip
    return [] if before == after else [(path, before, after)]


def describe_errors(err: ValidationError) -> list[tuple[str, str]]:
    """``(field path, rule)`` per error, paths like ``strategies[1].params.fast``."""
    out = []
    for e in err.errors():
        loc = tuple(e["loc"])
        msg = e["msg"]
        ctx = e.get("ctx") or {}
        if e["type"] == "strategy_param":
            loc, msg = (*loc, ctx["param"]), msg.split(": ", 1)[1]
        elif e["type"] == "strategy_name":
            loc, msg = (*loc, "strategy"), str(ctx["rule"])
        elif e["type"] == "unknown_strategy_limits":
            loc, msg = ("risk", "strategies", ctx["sid"]), msg.split(": ", 1)[1]
        elif e["type"] == "duplicate_id":
            loc, msg = (*loc, ctx["index"], "id"), f"id {ctx['id']!r} is used twice"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append((_loc(loc), msg))
    return out


def parse_run_config(data: Any, *, file: str | None = None) -> RunConfig:
    """Validate a mapping (parsed YAML or a JSON body) into a ``RunConfig``.

    Raises:
        RunConfigError: naming every broken field by its path and rule.
    """
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise RunConfigError([("", f"expected a mapping at the top level, got {kind}")], file=file)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise RunConfigError(describe_errors(exc), file=file) from None


def load_run_config(path: str | Path) -> RunConfig:
    """Read, validate and resolve a YAML run config.

    Raises:
        RunConfigError: the file is not YAML, or a field breaks a rule (named by its path).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunConfigError([("", f"not valid YAML: {exc}")], file=str(path)) from None
    base = path.resolve().parent
    config = parse_run_config(_strategy_files_resolved(data, base), file=str(path))
    return config.resolved(base)


def _strategy_files_resolved(data: Any, base: Path) -> Any:
    """The raw config with every relative ``file.py:Class`` strategy made absolute against
    ``base`` (the config's folder, like its data and journal paths), so the file is found
    whatever the working directory, by this process and by the actors alike."""
    from strategies.registry import file_location

    if not isinstance(data, dict) or not isinstance(data.get("strategies"), list):
        return data
    strategies = []
    for entry in data["strategies"]:
        spec = entry.get("strategy") if isinstance(entry, dict) else None
        found = file_location(spec) if isinstance(spec, str) else None
        if found is not None and not found[0].is_absolute():
            entry = {**entry, "strategy": f"{(base / found[0]).resolve()}:{found[1]}"}
        strategies.append(entry)
    return {**data, "strategies": strategies}
