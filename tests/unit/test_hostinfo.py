"""hostinfo's pure pieces (no Docker, no VM)."""

from __future__ import annotations

import pytest

from labcoat.hostinfo import TIME_SCALE_ENV, time_scale


@pytest.mark.parametrize(("value", "scale"), [
    (None, 1.0), ("", 1.0), ("4", 4.0), ("2.5", 2.5), ("0.5", 1.0), ("-3", 1.0), ("nan", 1.0), ("inf", 1.0),
    ("lots", 1.0),
])
def test_time_scale_only_ever_lengthens_limits(value: str | None, scale: float) -> None:
    assert time_scale({} if value is None else {TIME_SCALE_ENV: value}) == scale
