"""YAML → model with every error at file:line:col, the way a lab author meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from labcoat.content.loader import SCHEMA_VERSION, load_model, load_model_collecting
from labcoat.content.models import Image, Lab, Scenario, Step
from labcoat.errors import CONTENT_INVALID, ContentError

# Line numbers below refer to this text; keep them in step when editing it.
LAB = """\
schema_version: 1
id: "1.1"
title: Tiny lab
intro: intro.md
sandbox:
  image: tiny
  memory: 64m
parts:
  - id: part1
    title: First part
    instructions: part1.md
    points: 10
    checks: test_part1.py
    solution: part1-solution.sh
    decoys:
      - name: wrong
        script: part1-decoy.sh
        why: a plausible mistake
  - id: part2
    title: Second part
    instructions: part2.md
    points: 5
    checks: test_part2.py
    solution: part2-solution.sh
    decoys:
      - name: wrong
        script: part2-decoy.sh
        why: another mistake
"""

SCENARIO = """\
schema_version: 1
id: fill
title: Fill
steps:
  - run:
      cmd: echo hi
  - sleep:
      seconds: 1
"""

SHOWN = "labs/lab.yaml"


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _write(tmp_path: Path, text: str, name: str = "lab.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str, model: type = Lab) -> ContentError:
    """The only error loading `text` gives (and there must be exactly one)."""
    errors: list[ContentError] = []
    result = load_model_collecting(model, _write(tmp_path, text), errors, SHOWN)
    assert result is None
    assert len(errors) == 1, [str(e) for e in errors]
    assert isinstance(errors[0], ContentError)
    assert errors[0].exit_code == CONTENT_INVALID
    return errors[0]


# ----------------------------------------------------------------------------- the valid file


def test_valid_lab_loads(tmp_path: Path) -> None:
    lab = load_model(Lab, _write(tmp_path, LAB))
    assert lab.id == "1.1"
    assert [p.id for p in lab.parts] == ["part1", "part2"]
    assert lab.parts[1].points == 5
    assert lab.parts[0].decoys[0].script == "part1-decoy.sh"
    assert lab.sandbox.memory_bytes == 64 * 1024 * 1024
    assert lab.part("part2").title == "Second part"


def test_valid_scenario_loads(tmp_path: Path) -> None:
    scenario = load_model(Scenario, _write(tmp_path, SCENARIO, "fill.yaml"))
    assert [s.kind for s in scenario.steps] == ["run", "sleep"]
    assert scenario.steps[0].args.cmd == "echo hi"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- YAML syntax


def test_syntax_error_has_line_column_and_hint(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "title: Tiny lab\n", "title: Tiny: a lab\n"))
    assert (err.path, err.line, err.col) == (SHOWN, 3, 12)
    assert err.message == "YAML syntax error: mapping values are not allowed here"
    assert str(err) == f"{SHOWN}:3:12: YAML syntax error: mapping values are not allowed here"
    assert err.hint is not None and "quotes" in err.hint and "indentation" in err.hint


def test_bad_indentation_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "    title: Second part\n", "   title: Second part\n"))
    assert err.message.startswith("YAML syntax error:")
    assert (err.line, err.col) == (20, 4)
    assert err.hint


def test_unterminated_quote_names_the_line_it_began_on(tmp_path: Path) -> None:
    err = _error(tmp_path, 'schema_version: 1\ntitle: "open\nid: x\n')
    assert (err.line, err.col) == (4, 1)
    assert err.message == "YAML syntax error: while scanning a quoted scalar on line 2, found unexpected end of stream"


def test_two_documents_in_one_file(tmp_path: Path) -> None:
    err = _error(tmp_path, "schema_version: 1\n---\nid: x\n")
    assert (err.line, err.col) == (2, 1)
    assert err.message.endswith("but found another document")
    assert err.hint == "a content file holds one YAML document; remove the '---' line"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_bytes(b"schema_version: 1\ntitle: caf\xe9\n")
    errors: list[ContentError] = []
    assert load_model_collecting(Lab, path, errors, SHOWN) is None
    [err] = errors
    assert (err.line, err.col) == (2, 11)
    assert err.message == "not UTF-8 text (byte 0xe9)"
    assert err.hint == "save the file as UTF-8"


def test_a_control_character(tmp_path: Path) -> None:
    err = _error(tmp_path, "schema_version: 1\ntitle: a\x07b\n")
    assert (err.line, err.col) == (2, 9)
    assert err.message == "YAML syntax error: character #x0007 is not allowed in YAML"


# ----------------------------------------------------------------------------- duplicate keys


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, 'id: "1.1"\n', 'id: "1.1"\nid: "1.2"\n'))
    assert (err.line, err.col) == (3, 1)
    assert err.message == "duplicate key 'id' (first defined on line 2)"
    assert err.hint and "only the last" in err.hint


def test_duplicate_key_inside_a_part(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "    points: 5\n", "    points: 5\n    points: 6\n"))
    assert (err.line, err.col) == (23, 5)
    assert err.message == "duplicate key 'points' (first defined on line 22)"


def test_duplicate_key_whose_value_is_a_block_names_the_first_keys_line(tmp_path: Path) -> None:
    err = _error(tmp_path, LAB + "sandbox:\n  image: other\n  memory: 1g\n")
    assert (err.line, err.col) == (29, 1)
    assert err.message == "duplicate key 'sandbox' (first defined on line 5)"


def test_a_key_may_override_one_merged_in_from_an_anchor(tmp_path: Path) -> None:
    text = _edit(SCENARIO, "  - run:\n      cmd: echo hi\n", (
        "  - run: &quick\n      cmd: echo hi\n      timeout: 5\n"
        "  - run:\n      <<: *quick\n      timeout: 9\n"
        "  - run: *quick\n"
    ))
    scenario = load_model(Scenario, _write(tmp_path, text, "fill.yaml"))
    runs = [s.args for s in scenario.steps if s.kind == "run"]
    assert [(r.cmd, r.timeout) for r in runs] == [("echo hi", 5), ("echo hi", 9), ("echo hi", 5)]


def test_a_key_written_twice_next_to_a_merge_is_still_a_duplicate(tmp_path: Path) -> None:
    text = _edit(SCENARIO, "  - run:\n      cmd: echo hi\n", (
        "  - run: &quick\n      cmd: echo hi\n"
        "  - run:\n      <<: *quick\n      timeout: 9\n      timeout: 8\n"
    ))
    err = _error(tmp_path, text, Scenario)
    assert (err.line, err.col) == (10, 7)
    assert err.message == "duplicate key 'timeout' (first defined on line 9)"


# ----------------------------------------------------------------------------- ids and types


def test_unquoted_dotted_id_is_refused_with_a_quoting_hint(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, 'id: "1.1"\n', "id: 5.10\n"))
    assert (err.line, err.col) == (2, 5)
    assert err.message == "id: must be text, found the number 5.10 (YAML reads it as 5.1)"
    assert err.hint == 'quote the value so YAML reads it as text: id: "5.10"'


def test_quoted_dotted_id_keeps_its_trailing_zero(tmp_path: Path) -> None:
    ten = load_model(Lab, _write(tmp_path, _edit(LAB, 'id: "1.1"', 'id: "5.10"'), "a.yaml"))
    one = load_model(Lab, _write(tmp_path, _edit(LAB, 'id: "1.1"', 'id: "5.1"'), "b.yaml"))
    assert ten.id == "5.10"
    assert one.id == "5.1"
    assert ten.id != one.id


def test_number_where_text_is_expected(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "    title: Second part\n", "    title: 42\n"))
    assert (err.line, err.col) == (20, 12)
    assert err.message == "parts[1].title: must be text, found the number 42"
    assert err.hint == 'quote the value so YAML reads it as text: title: "42"'


# ----------------------------------------------------------------------------- unknown and missing keys


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = _error(tmp_path, LAB + "colour: red\n")
    assert err.line == 29
    assert err.message == "(top level): unknown key 'colour'"
    assert err.hint and "schemas/" in err.hint


def test_unknown_key_in_a_part(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "    points: 10\n", "    points: 10\n    colour: red\n"))
    assert err.line == 13
    assert err.message == "parts[0]: unknown key 'colour'"


def test_unknown_capitalised_key_is_named(tmp_path: Path) -> None:
    # Pydantic's loc also holds class names of union members; a user's capitalised key must survive.
    err = _error(tmp_path, _edit(LAB, "  memory: 64m\n", "  memory: 64m\n  Swap: 0\n"))
    assert err.line == 8
    assert err.message == "sandbox: unknown key 'Swap'"


def test_missing_required_top_level_key(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "title: Tiny lab\n", ""))
    assert (err.line, err.col) == (1, 1)
    assert err.message == "title: Field required"
    assert err.hint == "add this key"


def test_missing_key_in_a_part_points_at_the_part(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "    checks: test_part2.py\n", ""))
    assert (err.line, err.col) == (19, 5)
    assert err.message == "parts[1].checks: Field required"


def test_missing_key_in_a_block_mapping_points_at_its_key(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "  memory: 64m\n", ""))
    assert (err.line, err.col) == (5, 1)
    assert err.message == "sandbox.memory: Field required"


def test_error_deep_in_a_list_points_at_that_line(tmp_path: Path) -> None:
    # Exactly one error: not also pydantic's "parts: at least 1 item ... not 0".
    err = _error(tmp_path, _edit(LAB, "    points: 5\n", "    points: 0\n"))
    assert (err.line, err.col) == (22, 13)
    assert err.message == "parts[1].points: Input should be greater than 0"


def test_every_error_is_collected(tmp_path: Path) -> None:
    text = _edit(_edit(LAB, "title: Tiny lab\n", ""), "    points: 5\n", "    points: 0\n")
    errors: list[ContentError] = []
    assert load_model_collecting(Lab, _write(tmp_path, text), errors, SHOWN) is None
    assert [(e.line, e.message) for e in errors] == [
        (1, "title: Field required"),
        (21, "parts[1].points: Input should be greater than 0"),
    ]
    with pytest.raises(ContentError) as info:
        load_model(Lab, _write(tmp_path, text), SHOWN)
    assert info.value.message == "title: Field required"


def test_a_mapping_key_must_be_plain(tmp_path: Path) -> None:
    err = _error(tmp_path, LAB + "? [a, b]\n: 1\n")
    assert err.message == "a mapping key must be a plain value"
    assert err.line == 29


# ----------------------------------------------------------------------------- schema_version and empty files


def test_missing_schema_version(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "schema_version: 1\n", ""))
    assert (err.line, err.col) == (1, 1)
    assert err.message == "missing 'schema_version'"
    assert err.hint == "add 'schema_version: 1' at the top"


def test_too_new_schema_version(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 1
    err = _error(tmp_path, _edit(LAB, "schema_version: 1\n", "schema_version: 2\n"))
    assert (err.line, err.col) == (1, 17)
    assert err.message == "written for schema_version 2; this labcoat reads up to 1"
    assert err.hint is not None and "upgrade labcoat" in err.hint


def test_schema_version_must_be_a_whole_number(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(LAB, "schema_version: 1\n", 'schema_version: "1"\n'))
    assert (err.line, err.col) == (1, 17)
    assert err.message == "schema_version must be a whole number"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err = _error(tmp_path, text)
    assert err.message == "the file is empty"
    assert (err.path, err.line, err.col) == (SHOWN, None, None)
    assert err.hint == "start it with 'schema_version: 1'"


def test_top_level_list(tmp_path: Path) -> None:
    err = _error(tmp_path, "- a\n- b\n")
    assert err.message == "the top level must be a mapping of keys to values"
    assert (err.line, err.col) == (1, 1)


def test_unreadable_file(tmp_path: Path) -> None:
    errors: list[ContentError] = []
    assert load_model_collecting(Lab, tmp_path / "nope.yaml", errors, SHOWN) is None
    assert len(errors) == 1
    assert errors[0].message.startswith("cannot read:")


# ----------------------------------------------------------------------------- scenario steps and images


def test_unknown_step_is_refused_at_its_line(tmp_path: Path) -> None:
    text = _edit(SCENARIO, "  - sleep:\n      seconds: 1\n", "  - explode:\n      now: true\n")
    err = _error(tmp_path, text, Scenario)
    assert (err.line, err.col) == (7, 5)
    assert err.message == "steps[1]: unknown key 'explode'"


def test_step_with_two_keys_is_refused(tmp_path: Path) -> None:
    text = _edit(SCENARIO, "      cmd: echo hi\n", "      cmd: echo hi\n    sleep:\n      seconds: 1\n")
    err = _error(tmp_path, text, Scenario)
    assert (err.line, err.col) == (5, 5)
    valid = ", ".join(Step.model_fields)  # the vocabulary grows; the message lists all of it
    assert valid.startswith("run, hog, fill_cache, sleep, reclaim, write_file")
    assert err.message == f"steps[0]: Value error, a step has exactly one of: {valid}; found 2 (run, sleep)"


def test_step_with_no_key_is_refused(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(SCENARIO, "  - sleep:\n      seconds: 1\n", "  - {}\n"), Scenario)
    assert err.line == 7
    assert "found 0 ()" in err.message


def test_step_argument_error_names_the_step_key(tmp_path: Path) -> None:
    err = _error(tmp_path, _edit(SCENARIO, "      seconds: 1\n", "      seconds: 0\n"), Scenario)
    assert (err.line, err.col) == (8, 16)
    assert err.message == "steps[1].sleep.seconds: Input should be greater than 0"


def test_image_package_names_are_checked(tmp_path: Path) -> None:
    text = "schema_version: 1\nid: tiny\npackages:\n  - procps\n  - Bad_Name\n"
    err = _error(tmp_path, text, Image)
    assert err.line == 3
    assert err.message == "packages: Value error, 'Bad_Name' is not a Debian package name"
