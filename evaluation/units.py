"""Length units: every spelling a model or a benchmark uses, converted to meters.

Meters are the one internal unit (docs/CONVENTIONS.md). The factors are the ones SpatialRGPT's judge prompt states
(1 in = 0.0254 m, 1 ft = 0.3048 m, 1 cm = 0.01 m); Q-Spatial's official code scores in centimeters, which is the
same ratio test after a common factor, so converting both sides to meters changes nothing there.
"""

from __future__ import annotations

import re

METERS_PER_UNIT: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "km": 1000.0,
    "ft": 0.3048,
    "in": 0.0254,
    "yd": 0.9144,
}

# Spelling -> canonical unit. Matched case-insensitively, longest first, on word boundaries.
UNIT_ALIASES: dict[str, str] = {
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "mtr": "m",
    "mtrs": "m",
    "cm": "cm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "mm": "mm",
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "km": "km",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "ft": "ft",
    "foot": "ft",
    "feet": "ft",
    "'": "ft",
    "\u2032": "ft",
    "in": "in",
    "inch": "in",
    "inches": "in",
    '"': "in",
    "\u2033": "in",
    "''": "in",
    "yd": "yd",
    "yard": "yd",
    "yards": "yd",
}

# Regex alternation of every alias, longest first so "meters" wins over "m" and "''" over "'".
_WORD_ALIASES = sorted((a for a in UNIT_ALIASES if a[0].isalpha()), key=len, reverse=True)
_MARK_ALIASES = sorted((a for a in UNIT_ALIASES if not a[0].isalpha()), key=len, reverse=True)
UNIT_PATTERN = (
    r"(?:(?:" + "|".join(re.escape(a) for a in _WORD_ALIASES) + r")\.?(?![a-zA-Z])"
    r"|(?:" + "|".join(re.escape(a) for a in _MARK_ALIASES) + r"))"
)


def canonical_unit(token: str | None) -> str | None:
    """Canonical unit ('m', 'cm', 'ft', ...) for a spelling, or None when it is not a length unit."""
    if token is None:
        return None
    key = token.strip().rstrip(".").lower()
    if key in UNIT_ALIASES:
        return UNIT_ALIASES[key]
    return UNIT_ALIASES.get(token.strip())


def to_meters(value: float, unit: str | None) -> float:
    """Convert a value in `unit` (any known spelling) to meters; an unknown unit is a ValueError, never a guess."""
    canon = canonical_unit(unit)
    if canon is None:
        raise ValueError(f"unknown length unit {unit!r}")
    return float(value) * METERS_PER_UNIT[canon]


def from_meters(value_m: float, unit: str) -> float:
    canon = canonical_unit(unit)
    if canon is None:
        raise ValueError(f"unknown length unit {unit!r}")
    return float(value_m) / METERS_PER_UNIT[canon]
