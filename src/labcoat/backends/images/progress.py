"""Progress of a debootstrap run, parsed from its output lines (a creeping estimate while it resolves)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

# debootstrap's "I:" lines and the share of its run each phase takes. Measured here on bookworm
# minbase + 11 packages (94 packages, 28-49 s in all): package index ~2 s; resolving dependencies
# 5-16 s without any output (shell code parsing the Packages file); downloads ~5 s; extracting ~8 s;
# unpacking ~9 s; configuring ~3 s; then a short second round that unpacks and configures the
# --include packages outside the required set ("the base system").
_INDEX_LINES = (
    ("I: Retrieving InRelease", "reading the release file", 0.01),
    ("I: Retrieving Packages", "downloading the package index", 0.02),
    ("I: Validating Packages", "checking the package index", 0.04),
    ("I: Resolving dependencies", "resolving dependencies", 0.05),
)
_RESOLVE = (0.05, 0.38, 8.0)  # silent phase: creeps from lo towards hi with this time constant (s)
_DEBOOTSTRAP_PHASES = (
    ("retrieve", re.compile(r"^I: (?:Retrieving|Validating) (\S+) \S+$"), 0.40, 0.50),
    ("extract", re.compile(r"^I: Extracting (\S+)\.\.\.$"), 0.50, 0.67),
    ("unpack", re.compile(r"^I: Unpacking (\S+)\.\.\.$"), 0.67, 0.88),
    ("configure", re.compile(r"^I: Configuring (\S+)\.\.\.$"), 0.88, 0.94),
)
_BASE_ROUND = (0.94, 0.97)
_VERBS = {"extract": "extracting", "unpack": "unpacking", "configure": "configuring"}


class _DebootstrapProgress:
    """Turns debootstrap's output (and, while it is silent, the clock) into (message, fraction)."""

    def __init__(self, extra_packages: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.expected = 85 + extra_packages  # bookworm minbase alone is ~85 packages
        self.retrieved: set[str] = set()
        self.counts: dict[str, int] = {}
        self.base_round = False
        self.base_done = 0
        self.clock = clock
        self.resolving_since: float | None = None

    def feed(self, line: str) -> tuple[str, float] | None:
        if line.startswith("I: Unpacking the base system"):
            self.base_round = True
            return "debootstrap: installing the extra packages", _BASE_ROUND[0]
        for name, pattern, lo, hi in _DEBOOTSTRAP_PHASES:
            m = pattern.match(line)
            if m:
                self.resolving_since = None
                return self._step(name, m.group(1), line, lo, hi)
        for prefix, what, frac in _INDEX_LINES:
            if line.startswith(prefix):
                if prefix == "I: Resolving dependencies" and self.resolving_since is None:
                    self.resolving_since = self.clock()
                return f"debootstrap: {what}", frac
        if line.startswith("I: Base system installed successfully"):
            return "debootstrap: done", _BASE_ROUND[1]
        return None

    def tick(self) -> tuple[str, float] | None:
        """An estimate while debootstrap prints nothing (it resolves dependencies silently)."""
        if self.resolving_since is None:
            return None
        lo, hi, tau = _RESOLVE
        elapsed = self.clock() - self.resolving_since
        return "debootstrap: resolving dependencies", lo + (hi - lo) * (1 - math.exp(-elapsed / tau))

    def _step(self, name: str, pkg: str, line: str, lo: float, hi: float) -> tuple[str, float]:
        if name == "retrieve":
            self.retrieved.add(pkg)
            total = max(self.expected, int(len(self.retrieved) * 1.05) + 1)
            done = len(self.retrieved) - (0.5 if line.startswith("I: Retrieving") else 0)
            return f"debootstrap: downloading {pkg} ({len(self.retrieved)})", lo + (hi - lo) * done / total
        if self.base_round:
            # Each extra package is unpacked once and configured once.
            self.base_done += 1
            extra = max(len(self.retrieved) - self.counts.get("extract", 0), 1)
            lo, hi = _BASE_ROUND
            return f"debootstrap: {_VERBS[name]} {pkg}", lo + (hi - lo) * min(
                self.base_done / (2 * extra), 1.0
            )
        self.counts[name] = count = self.counts.get(name, 0) + 1
        # The first round handles the required packages: the ones that were extracted.
        total = (
            len(self.retrieved) if name == "extract" else self.counts.get("extract") or len(self.retrieved)
        )
        total = max(total, count, 1)
        return f"debootstrap: {_VERBS[name]} {pkg} ({count}/{total})", lo + (hi - lo) * count / total
