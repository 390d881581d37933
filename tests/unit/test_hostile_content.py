"""Issue 15, content: every hostile case measured there is a clean error (file:line:col, a fix).

Each test breaks the tiny valid content tree (tests/unit/conftest.py) in exactly one way
and checks the error: no traceback, no hang, no read outside the content folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from labcoat.content.catalog import Catalog, natural_key
from labcoat.content.loader import load_model_collecting
from labcoat.content.models import Lab, Scenario
from labcoat.errors import CONTENT_INVALID, OK, ContentError

LAB = "labs/1.1.yaml"
SCENARIO = "scenarios/fill.yaml"


def errors_of(tree) -> list[ContentError]:
    return Catalog.load(tree.root, strict=False, cache=False).errors


def only_error(tree) -> ContentError:
    errors = errors_of(tree)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def clean(result) -> None:
    """No traceback and no internal error, whatever the input."""
    assert result.exit_code != 70, result
    assert "Traceback" not in result.stdout + result.stderr, result


# ----------------------------------------------------------------------------- YAML values (issue: "raised outside the try")


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    ('title: Tiny lab\n', "title: Tiny lab\npass_mark: 2020-13-45\n", 4, "pass_mark: Input should be a valid number"),
    ("  memory: 64m\n", "  memory: 64m\n  pids_limit: 0x_\n", 8, "pids_limit: Input should be a valid integer"),
    ("  memory: 64m\n", "  memory: 64m\n  pids_limit: !foo 20\n", 8, "explicit tag !foo is not allowed"),
    ('title: Tiny lab\n', "title: Tiny lab\npass_mark: !!float abc\n", 4, "explicit tag !!float is not allowed"),
    ("  memory: 64m\n", "  memory: 64m\n  <<: 5\n", 8, "'<<' merges mappings"),
    ("  memory: 64m\n", "  memory: " + "1" + "0" * 400 + "\n", 7, "number too large"),
    ("  memory: 64m\n", "  memory: " + "1" + "0" * 400 + "m\n", 7, "memory: '1000"),
    ("  memory: 64m\n", "  memory: 1" + "0" * 4400 + "\n", 7, "number too large"),
    ('title: Tiny lab\n', "title: Tiny lab\npass_mark: 1e999999999\n", 4, "number out of range"),
    ('title: Tiny lab\n', "title: Tiny lab\npass_mark: .nan\n", 4, ".nan is not a finite number"),
    ('title: Tiny lab\n', "title: Tiny lab\nquiz_points: 0644\n", 4, "a leading zero is read as text"),
])
def test_yaml_values_that_used_to_escape_the_try(content_tree, old: str, new: str, line: int, words: str) -> None:
    content_tree.edit(LAB, old, new)
    err = only_error(content_tree)
    assert err.path == LAB and err.line == line and err.col is not None, str(err)
    assert words in err.message, str(err)
    assert err.hint, str(err)


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "-16:40", "2020-13-45", "1_000", "0b101", "="])
def test_yaml_1_1_surprises_stay_text(content_tree, value: str) -> None:
    """A title (text) takes them as written; YAML 1.1 would have made numbers, bools or dates of them."""
    content_tree.edit(LAB, "title: Tiny lab\n", f"title: {value}\n")
    assert errors_of(content_tree) == []
    assert Catalog.load(content_tree.root, cache=False).lab("1.1").title == value


def test_yes_for_a_boolean_says_to_write_true_or_false(content_tree) -> None:
    content_tree.edit(LAB, "  memory: 64m\n", "  memory: 64m\n  network: yes\n")
    err = only_error(content_tree)
    assert (err.line, err.col) == (8, 12)
    assert err.hint and "true or false" in err.hint


def test_self_referencing_alias_is_a_loop(content_tree) -> None:
    content_tree.edit(LAB, "  memory: 64m\n", "  memory: 64m\n  cap_add: &loop [*loop]\n")
    err = only_error(content_tree)
    assert err.line == 8 and "loop" in err.message


def test_recursive_merge_is_a_loop(content_tree) -> None:
    content_tree.edit(LAB, "sandbox:\n", "sandbox: &s\n  <<: *s\n")
    err = only_error(content_tree)
    assert "loop" in err.message and err.line == 6


def test_500_deep_nesting(content_tree) -> None:
    content_tree.edit(LAB, "  memory: 64m\n", "  memory: 64m\n  cap_add: " + "[" * 500 + "]" * 500 + "\n")
    err = only_error(content_tree)
    assert "nested too deeply" in err.message and err.line == 8


def test_billion_laughs_is_refused_quickly(content_tree) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    assert len(bomb) < 700
    content_tree.write("labs/bomb.yaml", "schema_version: 1\n" + bomb)
    start = time.monotonic()
    errors = errors_of(content_tree)
    assert time.monotonic() - start < 5
    [err] = errors
    assert err.path == "labs/bomb.yaml" and "expand to more than" in err.message and err.line


def test_aliases_still_work_within_bounds(content_tree) -> None:
    content_tree.edit(SCENARIO, "  - run:\n      cmd: echo hello\n",
                      "  - run: &r\n      cmd: echo hello\n  - run: *r\n")
    assert errors_of(content_tree) == []


def test_lone_surrogate_is_refused_by_validate(content_tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml refuses the escape itself; PyYAML's own parser (used without libyaml) lets it through."""
    content_tree.edit(LAB, "title: Tiny lab\n", 'title: "a\\ud800b"\n')
    assert only_error(content_tree).line == 3
    import yaml

    from labcoat.content import loader

    monkeypatch.setattr(loader, "_PARSER", yaml.SafeLoader)
    err = only_error(content_tree)
    assert (err.line, err.col) == (3, 8) and "lone surrogate" in err.message


def test_escape_sequence_in_a_title_is_refused(content_tree) -> None:
    content_tree.edit(LAB, "title: Tiny lab\n", 'title: "\\e[2J\\e]0;pwned\\a"\n')
    err = only_error(content_tree)
    assert (err.line, err.col) == (3, 8) and "control character \\x1b" in err.message


# ----------------------------------------------------------------------------- files that are not plain files


def test_fifo_named_like_a_lab_does_not_block(content_tree) -> None:
    os.mkfifo(content_tree.path("labs/x.yaml"))
    start = time.monotonic()
    err = only_error(content_tree)
    assert time.monotonic() - start < 5
    assert err.path == "labs/x.yaml" and "named pipe" in err.message


def test_symlink_to_dev_zero_is_not_read(content_tree) -> None:
    os.symlink("/dev/zero", content_tree.path("labs/z.yaml"))
    err = only_error(content_tree)
    assert err.path == "labs/z.yaml" and "outside the content folder" in err.message


def test_symlink_to_dev_zero_inside_the_root_is_not_read(content_tree) -> None:
    """Even a device node inside the content folder is refused by what it is, before reading."""
    os.symlink("/dev/zero", content_tree.path("labs/1.1/zero"))
    content_tree.edit(LAB, "intro: 1.1/intro.md", "intro: 1.1/zero")
    err = only_error(content_tree)
    assert "outside the content folder" in err.message and err.line == 4


@pytest.mark.parametrize("target", ["nowhere.yaml", "loop.yaml"])
def test_dangling_and_looping_symlinks_are_clean_errors(cli, content_tree, target: str) -> None:
    os.symlink(target, content_tree.path("labs/loop.yaml"))
    os.symlink("loop.yaml" if target == "loop.yaml" else "gone.py", content_tree.path("checks/test_gone.py"))
    err = only_error(content_tree)
    assert err.path == "labs/loop.yaml" and ("loop" in err.message or "does not exist" in err.message)
    for args in (["validate"], ["list", "--json"], ["show", "intro", "--lab", "1.1"]):
        result = cli("--content", str(content_tree.root), *args)
        clean(result)
        assert result.exit_code == CONTENT_INVALID, result


def test_a_referenced_symlink_loop(content_tree) -> None:
    os.symlink("a.md", content_tree.path("labs/1.1/b.md"))
    os.symlink("b.md", content_tree.path("labs/1.1/a.md"))
    content_tree.edit(LAB, "instructions: 1.1/part1.md", "instructions: 1.1/a.md")
    err = only_error(content_tree)
    assert err.message == "part1.instructions: 1.1/a.md is a symlink loop" and err.line == 11


def test_unwritable_cache_folder_does_not_break_loading(cli, content_tree, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # mkdir fails whoever runs it (root too)
    assert Catalog.load(content_tree.root).lab("1.1").title == "Tiny lab"
    result = cli("--content", str(content_tree.root), "list", "--json")
    assert result.exit_code == OK, result


def test_huge_markdown_is_refused_and_show_stays_fast(cli, content_tree) -> None:
    content_tree.write("labs/1.1/intro.md", "word " * (4 * 1024 * 1024))  # 20 MiB, one line
    err = only_error(content_tree)
    assert err.message.startswith("intro: 1.1/intro.md is too large") and err.line == 4
    start = time.monotonic()
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "1.1")
    assert time.monotonic() - start < 10
    assert result.exit_code == CONTENT_INVALID, result
    clean(result)


def test_markdown_that_is_not_utf8_fails_validate(cli, content_tree) -> None:
    content_tree.path("labs/1.1/part1.md").write_bytes(b"# Part 1\n\ncaf\xe9\n")
    err = only_error(content_tree)
    assert err.message == "part1.instructions: 1.1/part1.md is not UTF-8 text (byte 0xe9 on line 3, column 4)"
    assert err.line == 11
    result = cli("--content", str(content_tree.root), "show", "part1", "--lab", "1.1")
    assert result.exit_code == CONTENT_INVALID, result
    clean(result)


def test_a_check_file_that_is_not_utf8(content_tree) -> None:
    content_tree.path("checks/test_tiny_part1.py").write_bytes(b"def test_one(host):\n    '\xff'\n")
    err = only_error(content_tree)
    assert "part1.checks: checks/test_tiny_part1.py is not UTF-8 text" in err.message and err.line == 14


# ----------------------------------------------------------------------------- path traversal


@pytest.mark.parametrize(("old", "new", "line"), [
    ("intro: 1.1/intro.md", "intro: ../../etc/passwd", 4),
    ("instructions: 1.1/part1.md", "instructions: 1.1/../../../etc/passwd", 11),
    ("solution: 1.1/part1-solution.sh", "solution: ../../../../../../etc/passwd", 17),
    ("script: 1.1/part1-decoy.sh", "script: ../../etc/passwd", 20),
    ("checks: test_tiny_part1.py", "checks: ../../../etc/passwd", 14),
])
def test_path_traversal_is_refused_at_its_key(cli, content_tree, old: str, new: str, line: int) -> None:
    content_tree.edit(LAB, old, new)
    err = only_error(content_tree)
    assert err.path == LAB and err.line == line, str(err)
    assert "may not contain '..'" in err.message
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "1.1")
    assert "root:" not in result.stdout  # /etc/passwd is never printed
    assert result.exit_code == CONTENT_INVALID


def test_image_source_traversal_is_refused(content_tree) -> None:
    content_tree.write("images/tiny/image.yaml", content_tree.read("images/tiny/image.yaml")
                       + "compile:\n  - src: ../../../../etc/passwd\n    dest: /x\n")
    err = errors_of(content_tree)[0]  # then the image is unknown to the lab and the scenario that use it
    assert err.path == "images/tiny/image.yaml" and err.line == 6 and "'..'" in err.message


def test_a_symlink_out_of_the_content_folder_is_refused(cli, content_tree) -> None:
    content_tree.remove("labs/1.1/intro.md")
    os.symlink("/etc/passwd", content_tree.path("labs/1.1/intro.md"))
    err = only_error(content_tree)
    assert err.message == "intro: 1.1/intro.md points outside the content folder" and err.line == 4
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "1.1")
    assert result.exit_code == CONTENT_INVALID and "root:" not in result.stdout


def test_a_symlinked_folder_out_of_the_content_folder_is_refused(content_tree) -> None:
    os.symlink("/etc", content_tree.path("labs/etc"))
    content_tree.edit(LAB, "intro: 1.1/intro.md", "intro: etc/passwd")
    err = only_error(content_tree)
    assert "points outside the content folder" in err.message


def test_a_symlink_inside_the_content_folder_is_fine(content_tree) -> None:
    os.symlink("part1.md", content_tree.path("labs/1.1/same.md"))
    content_tree.edit(LAB, "intro: 1.1/intro.md", "intro: 1.1/same.md")
    assert errors_of(content_tree) == []


def test_absolute_path_is_refused_in_words(content_tree) -> None:
    content_tree.edit(LAB, "intro: 1.1/intro.md", "intro: /etc/passwd")
    err = only_error(content_tree)
    assert err.message == "intro: '/etc/passwd' is not allowed here; write a relative path (not starting with '/'), e.g. 5.3/part1.md"


# ----------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("points", ["0", "-50"])
def test_check_points_must_be_positive(content_tree, points: str) -> None:
    content_tree.edit(LAB, "      test_one: 4\n", f"      test_one: {points}\n")
    err = only_error(content_tree)
    assert err.line == 16 and "greater than 0" in err.message


def test_undefined_var_is_refused_at_its_line(content_tree) -> None:
    content_tree.edit(SCENARIO, "cmd: echo hello", "cmd: echo ${greeting}")
    err = errors_of(content_tree)[0]  # then the lab's prepare names an unknown scenario
    assert (err.path, err.line) == (SCENARIO, 9)
    assert err.message == "${greeting} is not a declared var"


def test_declared_var_is_fine(content_tree) -> None:
    content_tree.edit(SCENARIO, "steps:\n", "vars:\n  greeting:\n    choice: [hi, hello]\nsteps:\n")
    content_tree.edit(SCENARIO, "cmd: echo hello", "cmd: echo ${greeting}")
    assert errors_of(content_tree) == []


@pytest.mark.parametrize(("step", "words"), [
    ("  - expect:\n      metric: usage\n      op: '>'\n      value: 0\n      message: m\n      since: start\n",
     "expect.since: no earlier mark step is labelled 'start'"),
    ("  - predict:\n      procs: before\n", "predict.procs: no earlier procs step is labelled 'before'"),
    ("  - expect_faster:\n      fast: warm\n      slow: cold\n", "expect_faster.fast: no earlier time_read or time_run"),
    ("  - expect_prediction:\n      min_margin_pages: 1\n", "expect_prediction needs a predict step before it"),
])
def test_undefined_labels_are_refused(content_tree, step: str, words: str) -> None:
    content_tree.write(SCENARIO, content_tree.read(SCENARIO) + step)
    errors = errors_of(content_tree)
    assert errors and words in errors[0].message and errors[0].line and errors[0].line >= 13, [str(e) for e in errors]


def test_a_label_defined_before_is_fine(content_tree) -> None:
    content_tree.edit(LAB, "    prepare: [fill]\n", "    provoke: fill\n")  # observing steps: not in a prepare
    content_tree.write(SCENARIO, content_tree.read(SCENARIO) + "  - mark:\n      label: start\n"
                       "  - expect:\n      metric: usage\n      op: '>'\n      value: 0\n      message: m\n"
                       "      since: start\n")
    assert errors_of(content_tree) == []


@pytest.mark.parametrize(("value", "words"), [("5m", "at least 6m"), ("2048g", "at most 1 TiB"),
                                              ("1" + "0" * 30 + "m", "at most 15 digits")])
def test_memory_within_sane_bounds(content_tree, value: str, words: str) -> None:
    content_tree.edit(LAB, "  memory: 64m\n", f"  memory: {value}\n")
    err = only_error(content_tree)
    assert err.line == 7 and words in err.message, str(err)


def test_swap_within_sane_bounds(content_tree) -> None:
    content_tree.edit(LAB, "  memory: 64m\n", "  memory: 64m\n  swap: 4096g\n")
    err = only_error(content_tree)
    assert err.line == 8 and "at most 1 TiB" in err.message


def test_duplicate_part_id_is_at_the_second_part(content_tree) -> None:
    text = content_tree.read(LAB)
    part = text[text.index("  - id: part1"):]
    content_tree.write(LAB, text + part)
    err = only_error(content_tree)
    assert err.message.startswith("part id 'part1' is used twice") and err.line == 22


def test_duplicate_id_across_files_points_at_the_id(content_tree) -> None:
    content_tree.write("labs/again.yaml", content_tree.read(LAB))
    err = only_error(content_tree)
    assert (err.path, err.line, err.col) == ("labs/again.yaml", 2, 5)


@pytest.mark.parametrize(("old", "new", "loc"), [
    ("  image: tiny\n", "  image: huge\n", (6, 10)),
    ("prepare: [fill]", "prepare: [fill, flood]", (13, 21)),
    ("checks: test_tiny_part1.py", "checks: test_gone.py", (14, 13)),
    ("      test_one: 4\n", "      test_three: 4\n", (16, 7)),
])
def test_cross_reference_errors_carry_the_referring_line(content_tree, old: str, new: str, loc: tuple) -> None:
    content_tree.edit(LAB, old, new)
    err = only_error(content_tree)
    assert (err.path, err.line, err.col) == (LAB, *loc), str(err)


def test_pattern_errors_are_in_words(content_tree) -> None:
    content_tree.edit(LAB, "  - id: part1\n", "  - id: Part One\n")
    err = only_error(content_tree)
    assert "^" not in err.message and "lower-case letters, digits and '-'" in err.message


def test_every_pattern_in_the_schemas_has_words() -> None:
    from labcoat.content.models import PATTERN_WORDS
    from labcoat.content.schema import schemas

    def patterns(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
            return found.union(*(patterns(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(patterns(v) for v in node))
        return set()

    used = set().union(*(patterns(s) for s in schemas().values()))
    assert used and used <= set(PATTERN_WORDS), used - set(PATTERN_WORDS)


# ----------------------------------------------------------------------------- lab list: sorting and markup


def test_natural_key_orders_numbers_and_text() -> None:
    ids = ["intro", "5.10", "5.3", "10.1", "a2", "a10", "5.3b"]
    assert sorted(ids, key=natural_key) == ["5.3", "5.3b", "5.10", "10.1", "a2", "a10", "intro"]


def _second_lab(tree, lab_id: str, title: str) -> None:
    tree.write(f"labs/{lab_id}.yaml", tree.read(LAB).replace('id: "1.1"', f'id: "{lab_id}"').replace(
        "title: Tiny lab", f"title: {title}"))


def test_lab_list_with_numeric_and_text_ids(cli, content_tree) -> None:
    _second_lab(content_tree, "intro", "Intro")
    _second_lab(content_tree, "5.3", "Memory")
    result = cli("--content", str(content_tree.root), "list")
    assert result.exit_code == OK, result
    assert result.stdout.index("1.1") < result.stdout.index("5.3") < result.stdout.index("intro")


def test_markup_in_a_title_is_shown_as_written(cli, content_tree) -> None:
    _second_lab(content_tree, "2.1", '"[/] [bold red]x[/bold red] [link=http://x]y"')
    result = cli("--content", str(content_tree.root), "list")
    assert result.exit_code == OK, result
    assert "[/] [bold red]x[/bold red] [link=http://x]y" in " ".join(result.stdout.split())


def test_single_file_validate_has_the_same_semantics(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nid: s\ntitle: S\nsteps:\n  - run:\n      cmd: echo ${nope}\n")
    errors: list[ContentError] = []
    assert load_model_collecting(Scenario, path, errors, "s.yaml") is None
    assert [(e.line, e.message) for e in errors] == [(6, "${nope} is not a declared var")]
    assert load_model_collecting(Lab, tmp_path / "missing.yaml", errors, "x") is None


def test_a_content_folder_that_is_a_symlink_loop(cli, tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    result = cli("--content", str(tmp_path / "loop"), "list")
    clean(result)
    assert result.exit_code == 2, result


def test_validate_a_fifo(cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.yaml")
    result = cli("validate", str(tmp_path / "x.yaml"))
    clean(result)
    assert result.exit_code == 2 and "neither a file nor a folder" in result.stderr, result


def _two_parts_with_services(content_tree, first: str, second: str, second_cmd: str = "true") -> None:
    """Part 1 prepares `fill` (hogs drawn from `first`); a part 2 prepares `other` (from `second`)."""
    content_tree.edit(SCENARIO, "steps:\n", f"vars:\n  svc:\n    choice: [{first}]\nsteps:\n"
                      "  - hog: {name: '${svc}', mib: 8}\n")
    content_tree.write("scenarios/other.yaml", (
        "schema_version: 1\nid: other\ntitle: Other services\nvars:\n"
        f"  svc:\n    choice: [{second}]\nsteps:\n  - run: {{cmd: \"{second_cmd}\"}}\n"
        "  - run: {cmd: \"hog --name ${svc} 8 &\"}\n"))
    part2 = ("  - id: part2\n    title: Second part\n    instructions: 1.1/part1.md\n    points: 10\n"
             "    prepare: [other]\n    checks: test_tiny_part1.py\n    solution: 1.1/part1-solution.sh\n"
             "    decoys:\n      - name: wrong\n        script: 1.1/part1-decoy.sh\n        why: a plausible mistake\n")
    content_tree.write(LAB, content_tree.read(LAB) + part2)


def test_parts_drawing_the_same_process_name_are_refused(content_tree) -> None:
    # Seen in CI: on one host (the local backend) part 6's `pkill -x` killed part 1's hog of the same name.
    _two_parts_with_services(content_tree, "indexer, mailqueue", "searchd, indexer")
    err = only_error(content_tree)
    assert (err.path, err.line) == (LAB, 26)  # part2's `prepare:`
    assert "part1 and part2 may both start a process named 'indexer'" in err.message
    assert "draw each part's process names from a list no other part uses" in (err.hint or "")


def test_a_pkill_naming_another_parts_process_is_refused(content_tree) -> None:
    _two_parts_with_services(content_tree, "indexer, mailqueue", "searchd, metricsd", "pkill -x 'searchd|mailqueue'")
    err = only_error(content_tree)
    assert "a command of part2 names 'mailqueue', which part1 starts" in err.message


def test_disjoint_process_names_are_fine(content_tree) -> None:
    _two_parts_with_services(content_tree, "indexer, mailqueue", "searchd, metricsd", "pkill -x 'searchd|metricsd'")
    assert errors_of(content_tree) == []
