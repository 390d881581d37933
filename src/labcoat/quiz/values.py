"""Numbers, sizes and short tokens as learners write them, read exactly and safely.

Every answer arrives as the text the learner wrote (answers files are read as source text,
never through YAML 1.1's number/boolean/sexagesimal guessing). This module turns such text
into an exact `Fraction`, under the size convention the question states:

* ``docker``: binary k m g t, with or without ``i``/``b``, any case (``10g`` = ``10GiB``);
* ``kubernetes``: quantities; ``k M G T P E`` are decimal, ``Ki Mi Gi Ti Pi Ei`` binary,
  ``m`` is 1/1000, case matters, and ``GB``/``MB``/``g`` are refused (not quantities);
* ``procfs``: ``kB`` means KiB, as in /proc/meminfo; ``M``/``MB``/``MiB`` and the rest are
  binary, as ``free -m`` / ``free -g`` print them.

Everything is bounded *before* any conversion: at most `MAX_DIGITS` digits and an exponent of
at most `MAX_EXPONENT`, so ``1e999999999`` or 5000 digits are a clean error in microseconds,
never a huge `Fraction`, a 4300-digit `ValueError` or an `OverflowError`.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from typing import Any

MAX_TEXT = 64  # characters in a number or size answer
MAX_DIGITS = 30  # digits in its mantissa
MAX_EXPONENT = 30  # |exponent| of a number written with e/E

_NUMBER = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?$")
_DOCKER = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:([kmgt])i?)?b?$", re.IGNORECASE)
_K8S = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(?:(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)|[eE]([+-]?\d+))?$")
_PROCFS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:(k|m|g|t)(?:i?b|i)?|b)?$", re.IGNORECASE)

_BINARY = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_K8S_SUFFIX = {
    None: Fraction(1), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}

UNIT_RULES = {
    "docker": "Sizes are read as Docker reads them: k, m, g and t are binary (1g = 1024³ bytes), with or "
    "without i and b, in any case (10g = 10G = 10Gi = 10GB); a plain number is bytes.",
    "kubernetes": "Sizes are Kubernetes quantities: k, M, G and T are decimal (1G = 10⁹ bytes), Ki, Mi, Gi and "
    "Ti are binary (1Gi = 2³⁰ bytes) and m is a thousandth; letter case matters; GB, MB, g or K are not "
    "quantities and are refused; a plain number is bytes.",
    "procfs": "Sizes follow /proc/meminfo and free: kB means KiB (1024 bytes), as in /proc/meminfo, and M, MB, "
    "MiB, G, GB, GiB are binary, as free -m and free -g print them; a plain number is bytes.",
}
EXAMPLES = {
    "docker": "10g, 10240m or 10737418240",
    "kubernetes": "10Gi, 10G, 100Mi or 104857600",
    "procfs": "24684084 kB, 512 MiB or 4096",
}


class AnswerFormatError(ValueError):
    """An answer that cannot be read for its question: wrong shape, unknown id, not a number."""


def clean(text: str) -> str:
    """NFKC, Unicode minus as '-', no underscores (10_000), stripped."""
    return unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("_", "").strip()


def _bounded(mantissa: str, exponent: str | None, shown: str) -> None:
    if sum(ch.isdigit() for ch in mantissa) > MAX_DIGITS:
        raise AnswerFormatError(f"{shown!r} has more than {MAX_DIGITS} digits; no answer here needs that many")
    if exponent is not None:
        digits = exponent.lstrip("+-").lstrip("0")
        if len(digits) > 3 or int(digits or "0") > MAX_EXPONENT:
            raise AnswerFormatError(f"{shown!r} has an exponent beyond ±{MAX_EXPONENT}; no answer here needs that")


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def parse_number(text: str, unit: str | None = None) -> Fraction:
    """A decimal number as written (`-997`, `0.5`, `1e3`, `30%` when unit is %), exactly."""
    shown = _short(text)
    body = clean(text)
    if len(body) > MAX_TEXT:
        raise AnswerFormatError(f"{shown!r} is too long for a number")
    if unit and body.lower().endswith(unit.lower()):
        body = body[: -len(unit)].strip()
    m = _NUMBER.match(body)
    if not m:
        extra = f" (optionally followed by {unit})" if unit else ""
        raise AnswerFormatError(f"not a number: {shown!r}; write a plain number such as 42 or -0.5{extra}")
    sign, mantissa, exponent = m.groups()
    _bounded(mantissa, exponent, shown)
    value = Fraction(mantissa) * Fraction(10) ** int(exponent or "0")
    return -value if sign == "-" else value


def parse_size(text: str, units: str) -> Fraction:
    """A size in bytes under the convention `units` (docker, kubernetes or procfs), exactly."""
    shown = _short(text)
    body = clean(text)
    if len(body) > MAX_TEXT:
        raise AnswerFormatError(f"{shown!r} is too long for a size")
    hint = f"write e.g. {EXAMPLES[units]}"
    if units == "kubernetes":
        m = _K8S.match(body)
        if not m:
            if re.match(r"^[\d.]+\s*[A-Za-z]+$", body):
                raise AnswerFormatError(
                    f"{shown!r} is not a Kubernetes quantity (suffixes: k M G T = 10³ 10⁶ 10⁹ 10¹², Ki Mi Gi Ti "
                    f"= 2¹⁰ 2²⁰ 2³⁰ 2⁴⁰, case matters; there is no GB or MB); {hint}"
                )
            raise AnswerFormatError(f"not a size: {shown!r}; {hint}")
        number, suffix, exponent = m.groups()
        _bounded(number, exponent, shown)
        if exponent is not None:
            return Fraction(number) * Fraction(10) ** int(exponent)
        return Fraction(number) * _K8S_SUFFIX[suffix]
    pattern = _PROCFS if units == "procfs" else _DOCKER
    m = pattern.match(body)
    if not m:
        raise AnswerFormatError(f"not a size: {shown!r}; {hint}")
    number, unit = m.groups()
    _bounded(number, None, shown)
    return Fraction(number) * _BINARY[(unit or "").lower()]


def parse_value(spec: Any, raw: str | int | float) -> Fraction:
    """The value of an answer (or of a quiz file's answer/tolerance) for a numeric question or blank."""
    if isinstance(raw, bool):
        raise AnswerFormatError(f"expected a value, found true/false ({raw!r})")
    if isinstance(raw, int):
        if abs(raw) >= 10**MAX_DIGITS:
            raise AnswerFormatError(f"{_short(str(raw))!r} has more than {MAX_DIGITS} digits")
        return Fraction(raw)
    if isinstance(raw, float):
        raw = repr(raw)  # 0.1 is 1/10, as written, not the binary float
        if raw in ("inf", "-inf", "nan"):
            raise AnswerFormatError(f"{raw} is not a value")
    if spec.kind == "bytes":
        return parse_size(raw, spec.units)
    return parse_number(raw, spec.unit)


def value_problem(spec: Any, value: Any) -> str | None:
    """Why a quiz file's value cannot be read for this question, or None."""
    if isinstance(value, bool):
        return "must be a value, not true/false"
    if spec.kind == "bytes" and isinstance(value, float):
        return "write a size as text (e.g. 100Mi) or a whole number of bytes"
    try:
        parse_value(spec, value)
    except AnswerFormatError as exc:
        return str(exc)
    return None


def normal_token(text: str, case_sensitive: bool = False) -> str:
    """A token for exact comparison: NFKC, outer whitespace, quotes and backticks gone, inner spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).strip().strip("`'\"").strip()
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold()
