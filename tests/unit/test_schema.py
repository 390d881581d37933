"""The committed JSON Schemas (schemas/*.schema.json) are exactly what the models produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcoat.content.schema import export, render, schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
REGENERATE = "run `lab schema` to regenerate"


def test_schemas_cover_every_content_kind() -> None:
    assert sorted(schemas()) == ["image.schema.json", "lab.schema.json", "quiz.schema.json", "scenario.schema.json"]


@pytest.mark.parametrize("name", sorted(schemas()))
def test_committed_schema_is_up_to_date(name: str) -> None:
    path = SCHEMAS / name
    if not path.is_file():
        pytest.fail(f"schemas/{name} is missing: {REGENERATE}", pytrace=False)
    if path.read_text(encoding="utf-8") != render(schemas()[name]):
        pytest.fail(f"schemas/{name} is stale (the models changed): {REGENERATE}", pytrace=False)


def test_no_leftover_schema_files() -> None:
    extra = sorted({p.name for p in SCHEMAS.glob("*.schema.json")} - set(schemas()))
    if extra:
        pytest.fail(f"schemas/ holds files no model produces: {', '.join(extra)}; remove them and {REGENERATE}",
                    pytrace=False)


def test_schemas_are_json_schema_documents() -> None:
    for name, schema in schemas().items():
        kind = name.removesuffix(".schema.json")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://labcoat.invalid/schemas/{name}"
        assert schema["type"] == "object"
        assert "schema_version" in schema["required"], kind
        assert schema.get("additionalProperties") is False, kind  # unknown keys are errors in editors too


def test_render_is_stable_and_sorted() -> None:
    schema = {"b": 1, "a": {"d": 2, "c": 3}}
    assert render(schema) == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'
    assert render(schemas()["lab.schema.json"]) == render(schemas()["lab.schema.json"])


def test_export_writes_what_render_gives(tmp_path: Path) -> None:
    written = export(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(schemas())
    for path in written:
        assert path.read_text(encoding="utf-8") == render(schemas()[path.name])
        json.loads(path.read_text(encoding="utf-8"))


def test_lab_schema_documents_the_quoted_id() -> None:
    lab = schemas()["lab.schema.json"]
    assert lab["properties"]["id"]["type"] == "string"
    assert "quoted" in lab["properties"]["id"]["description"]
