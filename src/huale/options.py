"""Option mappings from config files and the command line: one unknown-key rule, one grammar.

- :func:`check_known` rejects keys a config section, a dataclass or a strategy does not have,
  naming them and listing the valid ones (a typo never silently runs the default).
- :func:`parse_key_values` reads the ``KEY=VALUE`` strings of every ``--*-option`` flag
  (``--strategy-option``, ``--loss-option``): ``-`` in a key means ``_``; the value is one YAML
  flow scalar or collection, as it would be written in a config file, so the command line and
  the config file agree::

      beta=1.2            -> 1.2              harmonic=false      -> False
      augs=flip,cutout    -> "flip,cutout"    class_counts=[3,4]  -> [3, 4]
      entropy_prefilter=null (or ~, or empty) -> None

  With ``types`` (field name -> annotation, e.g. ``typing.get_type_hints(SomeDataclass)``), a
  value YAML read as a number or a boolean is kept as its text when the field only takes
  strings (``label=2024`` -> ``"2024"``); everything else is checked where the options are used.
"""

from __future__ import annotations

import types as pytypes
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from huale.errors import ConfigError


def check_known(values: Iterable[str], known: Iterable[str], noun: str, *, where: str = "") -> None:
    """ConfigError if ``values`` (keys) holds names outside ``known``.

    Message: ``"<where>: unknown <noun> 'a', 'b'; valid <noun>: x, y, z"`` (known in their
    given order); ``noun`` is plural (``"options"``, ``"keys"``).
    """
    known = list(known)
    unknown = sorted(set(values) - set(known))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown {noun} {', '.join(map(repr, unknown))}; "
            f"valid {noun}: {', '.join(known) if known else '(none)'}"
        )


def parse_key_values(
    pairs: Iterable[str],
    known: Iterable[str],
    *,
    flag: str,
    where: str = "",
    types: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}`` (module docstring); ConfigError naming ``flag``
    for a pair without ``=``, an unknown key (see :func:`check_known`) or unparsable YAML."""
    known = list(known)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        check_known([key], known, "options", where=where or flag)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            problem = str(err).splitlines()[0]
            raise ConfigError(f"{flag} {pair!r}: not a YAML value ({problem})") from None
        if types is not None and key in types:
            value = _as_declared(value, text.strip(), types[key])
        options[key] = value
    return options


def _as_declared(value: Any, text: str, annotation: Any) -> Any:
    """``text`` itself when the field takes strings but not the type YAML gave ``value``."""
    if isinstance(annotation, str) or value is None or isinstance(value, str):
        return value
    allowed = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, pytypes.UnionType)
        else (annotation,)
    )
    plain = tuple(t for t in allowed if isinstance(t, type))
    if str in plain and not isinstance(value, plain):
        return text
    if float in plain and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
