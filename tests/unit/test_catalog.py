"""The catalog: every file of a content root loaded, and every cross reference checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from labcoat.content.catalog import Catalog, default_content_root
from labcoat.errors import CONTENT_INVALID, USAGE, ContentError, ContentErrors, UsageProblem

LAB = "labs/1.1.yaml"


def _only_error(root: Path) -> ContentError:
    catalog = Catalog.load(root, strict=False)
    assert len(catalog.errors) == 1, [str(e) for e in catalog.errors]
    return catalog.errors[0]


# ----------------------------------------------------------------------------- the valid tree


def test_valid_tree_loads(content_tree) -> None:
    catalog = Catalog.load(content_tree.root)
    assert catalog.errors == []
    assert catalog.root == content_tree.root.resolve()
    assert list(catalog.labs) == ["1.1"]
    assert list(catalog.scenarios) == ["fill"]
    assert list(catalog.images) == ["tiny"]
    assert catalog.quizzes == {}
    lab = catalog.lab("1.1")
    assert lab.title == "Tiny lab"
    assert catalog.lab_dir("1.1") == catalog.root / "labs"
    assert catalog.lab_file("1.1", lab.intro).read_text() == "# Tiny lab\n\nWelcome.\n"
    assert catalog.checks_file(lab.parts[0]) == catalog.root / "checks" / "test_tiny_part1.py"
    assert catalog.image_dir("tiny") == catalog.root / "images" / "tiny"
    assert catalog.scenario("fill").steps[1].kind == "fill_cache"
    assert catalog.files[("labs", "1.1")] == catalog.root / LAB
    assert catalog.display(catalog.root / LAB) == LAB


def test_unknown_ids_are_usage_errors_listing_what_there_is(content_tree) -> None:
    catalog = Catalog.load(content_tree.root)
    with pytest.raises(UsageProblem) as info:
        catalog.lab("9.9")
    assert info.value.exit_code == USAGE
    assert info.value.message == "no lab '9.9'"
    assert info.value.hint == "labs here: 1.1 (see `lab list`)"
    with pytest.raises(UsageProblem) as info:
        catalog.scenario("nope")
    assert info.value.hint == "scenarios here: fill (see `lab scenarios`)"
    with pytest.raises(UsageProblem) as info:
        catalog.quiz("1.1")
    assert info.value.hint == "quizzes here: none"


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem) as info:
        Catalog.load(tmp_path / "nowhere")
    assert "does not exist" in info.value.message
    assert info.value.hint and "LABCOAT_CONTENT" in info.value.hint


def test_empty_root_is_valid_and_empty(tmp_path: Path) -> None:
    catalog = Catalog.load(tmp_path)
    assert (catalog.labs, catalog.scenarios, catalog.images, catalog.errors) == ({}, {}, {}, [])


# ----------------------------------------------------------------------------- one broken reference at a time


def test_unknown_image_id(content_tree) -> None:
    content_tree.edit(LAB, "  image: tiny\n", "  image: huge\n")
    err = _only_error(content_tree.root)
    assert err.path == LAB
    assert err.message == "sandbox.image 'huge' is not an image id"
    assert err.hint == "known images: tiny"


def test_unknown_image_in_a_parts_own_sandbox(content_tree) -> None:
    content_tree.edit(LAB, "    prepare: [fill]\n", "    prepare: [fill]\n    sandbox:\n      image: huge\n      memory: 32m\n")
    err = _only_error(content_tree.root)
    assert err.path == LAB
    assert err.message == "part1.sandbox.image 'huge' is not an image id"
    assert err.hint == "known images: tiny"


def test_unknown_image_in_a_scenario(content_tree) -> None:
    content_tree.edit("scenarios/fill.yaml", "  image: tiny\n", "  image: huge\n")
    err = _only_error(content_tree.root)
    assert err.path == "scenarios/fill.yaml"
    assert err.message == "sandbox.image 'huge' is not an image id"


def test_unknown_scenario_in_prepare(content_tree) -> None:
    content_tree.edit(LAB, "prepare: [fill]", "prepare: [fill, flood]")
    err = _only_error(content_tree.root)
    assert err.path == LAB
    assert err.message == "part1.prepare: 'flood' is not a scenario id"
    assert err.hint == "known scenarios: fill"


def test_observing_step_in_prepare_is_a_content_error_at_its_line(content_tree) -> None:
    # Regression: preparing a part ran steps through the acting handlers only, so a `sample` (or any
    # observing step) in a prepare scenario raised KeyError at `lab start`; validation let it through.
    content_tree.edit("scenarios/fill.yaml", "  - fill_cache:\n", "  - sample: {}\n  - fill_cache:\n")
    err = _only_error(content_tree.root)
    assert (err.path, err.line) == (LAB, 13)  # the part's `prepare:` line
    assert err.message == ("part1.prepare: scenario 'fill' has an observing step `sample` (steps[1], "
                           "scenarios/fill.yaml:10); preparing a part only acts, it observes nothing")
    assert "provoke" in err.hint


def test_observing_steps_are_fine_in_a_provoked_scenario(content_tree) -> None:
    content_tree.edit("scenarios/fill.yaml", "  - fill_cache:\n", "  - sample: {}\n  - fill_cache:\n")
    content_tree.edit(LAB, "    prepare: [fill]\n", "    provoke: fill\n")
    assert Catalog.load(content_tree.root, strict=False).errors == []


def test_unknown_scenario_to_provoke(content_tree) -> None:
    content_tree.edit(LAB, "    prepare: [fill]\n", "    prepare: [fill]\n    provoke: flood\n")
    err = _only_error(content_tree.root)
    assert err.message == "part1.provoke: 'flood' is not a scenario id"
    assert err.hint == "known scenarios: fill"


def test_unknown_scenario_with_no_scenarios_at_all(content_tree) -> None:
    content_tree.remove("scenarios/fill.yaml")
    err = _only_error(content_tree.root)
    assert err.message == "part1.prepare: 'fill' is not a scenario id"
    assert err.hint == "known scenarios: none"


def test_missing_check_file(content_tree) -> None:
    content_tree.remove("checks/test_tiny_part1.py")
    err = _only_error(content_tree.root)
    assert err.path == LAB
    assert err.message == "part1.checks: checks/test_tiny_part1.py does not exist"


def test_missing_instructions_file(content_tree) -> None:
    content_tree.remove("labs/1.1/part1.md")
    err = _only_error(content_tree.root)
    assert err.path == LAB
    assert err.message == "part1.instructions: 1.1/part1.md does not exist next to the lab file"


def test_missing_intro_and_solution(content_tree) -> None:
    content_tree.remove("labs/1.1/intro.md")
    content_tree.remove("labs/1.1/part1-solution.sh")
    catalog = Catalog.load(content_tree.root, strict=False)
    assert [e.message for e in catalog.errors] == [
        "intro: 1.1/intro.md does not exist next to the lab file",
        "part1.solution: 1.1/part1-solution.sh does not exist next to the lab file",
    ]


def test_missing_decoy_script(content_tree) -> None:
    content_tree.remove("labs/1.1/part1-decoy.sh")
    err = _only_error(content_tree.root)
    assert err.message == "part1.decoys.wrong: 1.1/part1-decoy.sh does not exist next to the lab file"


def test_check_points_name_a_missing_function(content_tree) -> None:
    content_tree.edit(LAB, "      test_one: 4\n", "      test_three: 4\n")
    err = _only_error(content_tree.root)
    assert err.message == "part1.check_points: no check function 'test_three' in test_tiny_part1.py"


def test_check_points_above_the_parts_points(content_tree) -> None:
    content_tree.edit(LAB, "      test_one: 4\n", "      test_one: 6\n      test_two: 5\n")
    err = _only_error(content_tree.root)
    assert err.message == "part1.check_points add up to more than the part's 10 points"


def test_check_points_equal_to_the_parts_points_are_fine(content_tree) -> None:
    content_tree.edit(LAB, "      test_one: 4\n", "      test_one: 5\n      test_two: 5\n")
    assert Catalog.load(content_tree.root).errors == []


def test_unknown_quiz(content_tree) -> None:
    content_tree.edit(LAB, "title: Tiny lab\n", "title: Tiny lab\nquiz: \"1.1\"\n")
    err = _only_error(content_tree.root)
    assert err.message == "quiz '1.1' is not a quiz id"


def test_duplicate_lab_id_across_two_files(content_tree) -> None:
    content_tree.write("labs/1.1b.yaml", content_tree.read(LAB))
    err = _only_error(content_tree.root)
    assert err.path == "labs/1.1b.yaml"
    assert err.message == "id '1.1' is already used by labs/1.1.yaml"
    assert err.hint and "unique" in err.hint


def test_duplicate_scenario_id_across_two_files(content_tree) -> None:
    content_tree.write("scenarios/fill2.yaml", content_tree.read("scenarios/fill.yaml"))
    err = _only_error(content_tree.root)
    assert err.path == "scenarios/fill2.yaml"
    assert err.message == "id 'fill' is already used by scenarios/fill.yaml"


def test_image_files_must_exist(content_tree) -> None:
    content_tree.remove("images/tiny/Dockerfile")
    content_tree.write(
        "images/tiny/image.yaml",
        content_tree.read("images/tiny/image.yaml") + "compile:\n  - src: hog.c\n    dest: /usr/local/bin/hog\n",
    )
    catalog = Catalog.load(content_tree.root, strict=False)
    assert [(e.path, e.message) for e in catalog.errors] == [
        ("images/tiny/image.yaml", "compile.src: hog.c does not exist in tiny/"),
        ("images/tiny/image.yaml", "dockerfile: Dockerfile does not exist"),
    ]


# ----------------------------------------------------------------------------- everything at once


def _break_everything(tree) -> None:
    tree.edit(LAB, "  image: tiny\n", "  image: huge\n")  # 1 unknown image
    tree.edit(LAB, "prepare: [fill]", "prepare: [flood]")  # 2 unknown scenario
    tree.edit(LAB, "      test_one: 4\n", "      test_three: 4\n      test_two: 7\n")  # 3 + 4 check_points
    tree.remove("labs/1.1/part1.md")  # 5 instructions
    tree.remove("labs/1.1/part1-decoy.sh")  # 6 decoy
    # 7 a second lab whose check file is missing
    tree.write("labs/2.1.yaml", tree.read(LAB).replace('id: "1.1"', 'id: "2.1"').replace(
        "  image: huge\n", "  image: tiny\n").replace("prepare: [flood]", "prepare: [fill]").replace(
        "checks: test_tiny_part1.py", "checks: test_gone.py"))
    tree.write("labs/2.1/part1.md", "x\n")
    tree.write("labs/2.1/intro.md", "x\n")
    tree.write("labs/2.1/part1-solution.sh", "x\n")
    tree.write("labs/2.1/part1-decoy.sh", "x\n")
    tree.edit("labs/2.1.yaml", "intro: 1.1/intro.md", "intro: 2.1/intro.md")
    tree.edit("labs/2.1.yaml", "instructions: 1.1/part1.md", "instructions: 2.1/part1.md")
    tree.edit("labs/2.1.yaml", "solution: 1.1/part1-solution.sh", "solution: 2.1/part1-solution.sh")
    tree.edit("labs/2.1.yaml", "script: 1.1/part1-decoy.sh", "script: 2.1/part1-decoy.sh")
    tree.write("labs/2.1b.yaml", tree.read("labs/2.1.yaml"))  # 8 duplicate id
    tree.write("labs/x.yaml", 'schema_version: 1\nid: "9.1"\ntitle: Broken: yes\n')  # 9 YAML syntax


EXPECTED_ALL = [
    ("labs/2.1b.yaml", "id '2.1' is already used by labs/2.1.yaml"),
    ("labs/x.yaml", "YAML syntax error: mapping values are not allowed here"),
    (LAB, "sandbox.image 'huge' is not an image id"),
    (LAB, "part1.prepare: 'flood' is not a scenario id"),
    (LAB, "part1.check_points: no check function 'test_three' in test_tiny_part1.py"),
    (LAB, "part1.check_points add up to more than the part's 10 points"),
    (LAB, "part1.instructions: 1.1/part1.md does not exist next to the lab file"),
    (LAB, "part1.decoys.wrong: 1.1/part1-decoy.sh does not exist next to the lab file"),
    ("labs/2.1.yaml", "part1.checks: checks/test_gone.py does not exist"),
]


def test_non_strict_load_collects_every_error_at_once(content_tree) -> None:
    _break_everything(content_tree)
    catalog = Catalog.load(content_tree.root, strict=False)
    assert len(catalog.errors) == len(EXPECTED_ALL) == 9
    assert [(e.path, e.message) for e in catalog.errors] == EXPECTED_ALL
    syntax = catalog.errors[1]
    assert (syntax.line, syntax.col) == (3, 14)
    # What loaded is still usable.
    assert sorted(catalog.labs) == ["1.1", "2.1"]


def test_strict_load_raises_all_errors(content_tree) -> None:
    _break_everything(content_tree)
    with pytest.raises(ContentErrors) as info:
        Catalog.load(content_tree.root)
    exc = info.value
    assert exc.exit_code == CONTENT_INVALID
    assert exc.message == "9 content error(s)"
    assert [(e.path, e.message) for e in exc.errors] == EXPECTED_ALL
    text = str(exc)
    assert "labs/x.yaml:3:14: YAML syntax error" in text
    assert "\n    fix: known images: tiny" in text


# ----------------------------------------------------------------------------- where the content is


def test_default_content_root_honours_labcoat_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCOAT_CONTENT", str(tmp_path))
    assert default_content_root() == tmp_path


def test_default_content_root_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LABCOAT_CONTENT", "~/course")
    assert default_content_root() == tmp_path / "course"


def test_default_content_root_without_the_variable() -> None:
    # The autouse fixture removes LABCOAT_CONTENT. From a source checkout the content is the
    # checkout's; from an installed wheel it is the copy shipped inside the package.
    import labcoat

    package = Path(labcoat.__file__).resolve().parent
    checkout = package.parent.parent
    if (checkout / "labs").is_dir() and (checkout / "pyproject.toml").is_file():
        assert default_content_root() == checkout
    else:
        assert default_content_root() == package / "_content"


def test_load_without_a_root_uses_labcoat_content(content_tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCOAT_CONTENT", str(content_tree.root))
    catalog = Catalog.load()
    assert catalog.root == content_tree.root.resolve()
    assert list(catalog.labs) == ["1.1"]


def test_catalog_cache_is_keyed_by_the_engine_code_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a pickled catalog of older models (same version, one field fewer) was served after a
    model changed in an editable install; the fingerprint now covers the content package's modules."""
    import os

    from labcoat.content import catalog as catalog_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = default_content_root()
    before = catalog_module._fingerprint(root)
    assert catalog_module._fingerprint(root) == before  # stable while nothing changes
    models = Path(catalog_module.__file__).with_name("models.py")
    st = models.stat()
    try:
        os.utime(models, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert catalog_module._fingerprint(root) != before
    finally:
        os.utime(models, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert catalog_module._fingerprint(root) == before
