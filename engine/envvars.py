"""Numbers read from ``FATHOM_*`` environment variables (budgets, limits, worker sizes).

A mistyped variable must neither crash the studio at start-up with a bare ``ValueError`` nor be
ignored without a word: the value is refused with a warning that names the variable, what it
holds and how to fix it, and the default is used.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

log = logging.getLogger("fathom.env")
_warned: set[tuple[str, str]] = set()


def env_number(
    name: str,
    default: float,
    what: str,
    *,
    minimum: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> float:
    """``name``'s value as a finite number of at least ``minimum``; ``default`` when it is
    unset or empty, and (with a warning, once per value) when it is not such a number. ``what`` says
    what the number counts, for the warning ("megabytes of temporary video files")."""
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    value = _number(raw)
    if value is not None and value >= minimum:
        return value
    if (name, raw) not in _warned:
        _warned.add((name, raw))
        log.warning(
            "%s=%r is not a number of %s of at least %g; using %g. Fix: set %s to a number "
            "such as %g, or unset it",
            name,
            raw,
            what,
            minimum,
            default,
            name,
            default,
        )
    return default


def overridden(name: str, minimum: float = 0.0, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``name`` is set to a number ``env_number`` takes (it then overrides a setting;
    a refused value does not)."""
    value = _number((os.environ if env is None else env).get(name, "").strip())
    return value is not None and value >= minimum


def _number(raw: str) -> float | None:
    """A finite number (not nan, inf or 1e400), or None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
