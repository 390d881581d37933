"""Sizes as people write them (64m, 256Mi, 1G, 10737418240) and as people read them."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])i?)?b?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Return a size in bytes; binary units, as Docker reads them.

    >>> parse_size("64m"), parse_size("256Mi"), parse_size("1G"), parse_size(4096)
    (67108864, 268435456, 1073741824, 4096)
    """
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a size: {text!r} (write e.g. 64m, 256Mi, 1G or a number of bytes)")
    number, unit = match.groups()
    if len(number) > 30:  # bounded before conversion: 1 and 400 zeros would overflow float -> int
        raise ValueError(f"not a size: {text[:40]!r}... has too many digits (at most 30)")
    return int(float(number) * _UNITS[(unit or "").lower()])


def human(n: float) -> str:
    """Bytes as a short binary figure.

    >>> human(67108864), human(1536), human(12)
    ('64.0 MiB', '1.5 KiB', '12 B')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        # Compare what is printed: 1048575 bytes is "1.0 MiB", not "1024.0 KiB".
        if (abs(value) < 1024 if unit == "B" else round(abs(value), 1) < 1024) or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
