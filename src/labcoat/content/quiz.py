"""Placeholder quiz schema; replaced by the quiz engine work (issue 5)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Quiz(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: int
    id: str
