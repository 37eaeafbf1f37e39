"""The strategy registry: one explicit table of names, with option introspection.

``build_strategy("cald", beta=1.3)`` builds a strategy; unknown names and options are
:class:`ConfigError`s that list the valid ones. Options are the keyword arguments of each
entry (a class, or a factory such as :func:`coreset` that names another strategy), so
``strategy_options(name)`` gives the defaults for ``--help`` and config files.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from huale.errors import ConfigError
from huale.options import check_known, parse_key_values
from huale.strategies.base import Strategy
from huale.strategies.cald import Cald
from huale.strategies.consistency import FlipConsistency
from huale.strategies.coreset import CoreSet
from huale.strategies.entropy import EntropySampling
from huale.strategies.hua import Hua
from huale.strategies.huale import Huale
from huale.strategies.random_sampling import RandomSampling


def coreset(
    *,
    base: str | None = None,
    base_options: Mapping[str, Any] | None = None,
    pool_multiplier: float = 4.0,
) -> CoreSet:
    """Core-set, alone or (``base``: a registered strategy name, built with ``base_options``)
    as the diversity stage after that strategy's top ⌊pool_multiplier·B⌋."""
    if base is None:
        if base_options:
            raise ConfigError("coreset: base_options given without a base strategy")
        return CoreSet(pool_multiplier=pool_multiplier)
    if base == "coreset":
        raise ConfigError("coreset cannot use coreset as its base strategy")
    first = build_strategy(base, **dict(base_options or {}))
    return CoreSet(base=first, pool_multiplier=pool_multiplier)


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": RandomSampling,
    "entropy": EntropySampling,
    "consistency": FlipConsistency,
    "cald": Cald,
    "hua": Hua,
    "huale": Huale,
    "coreset": coreset,
}


def available_strategies() -> list[str]:
    """Registered strategy names, in registry order."""
    return list(STRATEGIES)


def _strategy_class(name: str) -> Callable[..., Strategy]:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def strategy_options(name: str) -> dict[str, Any]:
    """``option -> default`` of strategy ``name`` (its constructor's keyword arguments)."""
    params = inspect.signature(_strategy_class(name)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_strategy(name: str, **options: Any) -> Strategy:
    """The strategy ``name`` built with ``options`` (the rest keep their defaults)."""
    cls = _strategy_class(name)
    check_known(options, strategy_options(name), "options", where=f"strategy {name!r}")
    return cls(**options)


def parse_strategy_options(name: str, pairs: Iterable[str]) -> dict[str, Any]:
    """Options of strategy ``name`` from ``"key=value"`` strings (CLI), values parsed as YAML
    (:func:`huale.options.parse_key_values`).

    ``["beta=1.2", "augs=flip,cutout", "entropy_prefilter=null"]`` ->
    ``{"beta": 1.2, "augs": "flip,cutout", "entropy_prefilter": None}``.
    """
    return parse_key_values(
        pairs, strategy_options(name), flag="--strategy-option", where=f"strategy {name!r}"
    )


def format_strategy_help() -> str:
    """One line per strategy: its name and its options with defaults (for ``--help``)."""
    lines = []
    for name in STRATEGIES:
        options = ", ".join(f"{k}={v!r}" for k, v in strategy_options(name).items())
        lines.append(f"{name}: {options or '(no options)'}")
    return "\n".join(lines)
