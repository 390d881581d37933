"""Shared helpers for lab 5.3's checks (a plain module: checks use only `host`, `sandbox` and labcoat.testing)."""

from __future__ import annotations

import secrets

import pytest

from labcoat.testing import parse_answers

ANSWERS_HINT = "record answers inside the sandbox with `answer PART KEY VALUE` (see `lab show PART`)"


def snapshot(host, script: str, sections: list[str]) -> dict[str, str]:
    """Run several reads in ONE command; return each section's text by name.

    One round trip per part keeps `lab check` fast: every check of the part then
    asserts on this snapshot instead of running commands of its own.
    """
    # Unguessable: a learner's answers file (the first section) holding the marker would otherwise
    # shift every later section, forging the live readings the checks compare with (issue 15).
    marker = f"@@labcoat-section-{secrets.token_hex(8)}@@"
    out = host.run(script.replace("@@", marker)).stdout
    chunks = out.split(marker)[1:]
    return {name: text.strip("\n") for name, text in zip(sections, chunks, strict=False)}


def answers_of(part: str):
    """A module-scoped fixture factory: the learner's recorded answers for `part`."""

    @pytest.fixture(scope="module")
    def fixture(live):
        return parse_answers(live.get("answers", ""))

    return fixture
