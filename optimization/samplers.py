"""Seeded Optuna samplers by name, and the proposer that turns a study into parameter sets.

Every sampler gets an explicit seed. ``grid`` does not use Optuna's GridSampler (which asks
duplicates when several trials run at once and stops the study from inside ``tell``): the
valid combinations are enumerated once, shuffled with the seed, and enqueued one by one, so a
grid search never evaluates a set twice or an invalid one at all, and a resumed grid search
skips the sets its storage already holds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import optuna

from optimization.space import iter_grid, suggest_params
from optimization.specs import Sampler
from strategies.base import Strategy
from strategies.params import Param

__all__ = ["Proposer", "make_sampler"]


def make_sampler(kind: Sampler, seed: int, n_objectives: int = 1) -> optuna.samplers.BaseSampler:
    """The seeded sampler of a kind (``grid`` proposes through enqueued random-sampler trials)."""
    if kind is Sampler.TPE:
        return optuna.samplers.TPESampler(seed=seed)
    if kind is Sampler.CMAES:
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind is Sampler.NSGA2:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class Proposer:
    """Asks a study for parameter sets: sampled, or the next unseen grid point."""

    def __init__(
        self,
        study: optuna.Study,
        strategy_cls: type[Strategy],
        specs: Mapping[str, Param[Any]],
        fixed: Mapping[str, Any],
        kind: Sampler,
        seed: int,
    ) -> None:
        self.study = study
        self.specs = dict(specs)
        self.fixed = dict(fixed)
        self.grid: Iterator[dict[str, Any]] | None = None
        if kind is Sampler.GRID:
            seen = {
                _key(t.params)
                for t in study.get_trials(deepcopy=False)
                if t.state.is_finished() and t.params
            }
            values = {k: s.grid() for k, s in self.specs.items()}
            points = [
                {k: p[k] for k in self.specs}
                for p in iter_grid(strategy_cls, fixed, values)
                if _key({k: p[k] for k in self.specs}) not in seen
            ]
            random.Random(seed).shuffle(points)
            self.grid = iter(points)

    def next(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """A new trial and its full parameter set; None when a grid is exhausted."""
        if self.grid is not None:
            point = next(self.grid, None)
            if point is None:
                return None
            self.study.enqueue_trial(point, skip_if_exists=False)
        trial = self.study.ask()
        return trial, suggest_params(trial, self.specs, self.fixed)
