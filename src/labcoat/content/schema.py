"""Export the content models as JSON Schema files, for editor completion.

`lab schema` (or `python -m labcoat.content.schema`) writes them to `schemas/`; a unit
test fails when the committed files differ from what the models produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def schemas() -> dict[str, dict[str, Any]]:
    """file name -> JSON Schema, one per content kind."""
    from labcoat.content.models import Image, Lab, Scenario
    from labcoat.content.quiz import Quiz

    out = {}
    for name, model in (("lab", Lab), ("scenario", Scenario), ("quiz", Quiz), ("image", Image)):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://labcoat.invalid/schemas/{name}.schema.json"
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(dest: Path) -> list[Path]:
    """Write every schema into `dest`; return the paths written."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = dest / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in export(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(p)
