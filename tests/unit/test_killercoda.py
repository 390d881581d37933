"""Killercoda export and import without Docker: structure, validity, mapping, reports.

The export's wheels are stood in by a tiny fake wheel (building and downloading the real
ones is the integration test's business); the hog is compiled for real when gcc is here.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from labcoat.content.catalog import Catalog
from labcoat.errors import UsageProblem
from labcoat.killercoda import export as kexport
from labcoat.killercoda.format import (
    asset_install_script,
    load_index,
    read_scenario,
    referenced_files,
    resolve_assets,
    validate_scenario,
)
from labcoat.killercoda.importer import (
    DECOY_NAME,
    import_scenario,
    selftest_summary,
    solution_from_text,
    validate_import,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "killercoda"


def require_gcc() -> None:
    """The export compiles the sandbox image's C programs (`compile` in images/sandbox/image.yaml:
    hog) with `gcc -static` for the Killercoda VM, which gets them as assets in /usr/local/bin
    (kexport.image_files); static linking needs libc6-dev's libc.a. scripts/setup.sh installs both
    (through scripts/ensure-docker.sh). Without gcc these tests skip, except under CI or
    LAB_REQUIRE_DOCKER=1 (as tests/conftest.py does for Docker), where they fail: a green CI run
    must have exported for real."""
    if shutil.which("gcc") is not None:
        return
    why = "compiling hog for the VM needs gcc and libc6-dev (bash scripts/setup.sh installs them)"
    if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_DOCKER"):
        pytest.fail(f"gcc is required here (CI / LAB_REQUIRE_DOCKER) but missing: {why}")
    pytest.skip(why)


def _fake_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("labcoat-0.1.0-py3-none-any.whl", "pip-99.0-py3-none-any.whl", "click-8.1.0-py3-none-any.whl"):
        with zipfile.ZipFile(dest / name, "w") as zf:
            zf.writestr("README", name)
        out.append(dest / name)
    return out


def _fake_images(image_id: str, dest: Path) -> kexport.ImageArchive:
    """A stand-in `docker save` stream, packed as the real one is, in 64 KiB parts."""
    data = os.urandom(200 << 10)
    (dest.parent.parent / f"{image_id}.saved").write_bytes(data)  # beside the export, for the load test
    return kexport.pack_archive([data[i:i + 4096] for i in range(0, len(data), 4096)], image_id,
                                f"labcoat/{image_id}:fake", dest, part_bytes=64 << 10)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, kexport.ExportResult]:
    require_gcc()
    out = tmp_path_factory.mktemp("export") / "lab-5.3"
    result = kexport.export_lab(Catalog.load(ROOT), "5.3", out, wheels=_fake_wheels, images=_fake_images)
    return out, result


# ----------------------------------------------------------------------------- export


def test_export_is_valid_json_with_every_referenced_file(exported: tuple[Path, kexport.ExportResult]) -> None:
    out, result = exported
    index = json.loads((out / "index.json").read_text())
    assert validate_scenario(out) == []
    assert index["backend"] == {"imageid": "ubuntu"}
    details = index["details"]
    assert details["intro"] == {"text": "intro.md", "background": "setup.sh", "foreground": "wait.sh"}
    assert details["finish"] == {"text": "finish.md"}
    lab = Catalog.load(ROOT).lab("5.3")
    assert [s["title"] for s in details["steps"]] == [f"{p.id}: {p.title}" for p in lab.parts]
    for n, step in enumerate(details["steps"], start=1):
        assert step == {"title": step["title"], "text": f"step{n}/text.md", "verify": f"step{n}/verify.sh"}
        for key in ("text", "verify"):
            assert (out / step[key]).is_file()
        assert (out / f"step{n}" / "solution.sh").is_file()
    files = referenced_files(out)
    assert all(f.is_file() for f in files)
    names = {f.name for f in files}
    assert {"answer", "hog", "labcoat-content.tar.gz", "labcoat-0.1.0-py3-none-any.whl",
            "pip-99.0-py3-none-any.whl"} <= names
    assert result.steps == ["part1", "part2", "part3", "part4", "part5", "part6"]
    assert result.total == sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def test_export_assets_go_where_the_setup_expects_them(exported: tuple[Path, kexport.ExportResult]) -> None:
    out, _ = exported
    index = load_index(out)
    targets = {(src.name, dest, chmod) for src, dest, chmod in resolve_assets(out, read_scenario(out).assets)}
    assert ("answer", "/usr/local/bin/answer", "+x") in targets
    assert ("hog", "/usr/local/bin/hog", "+x") in targets
    assert ("labcoat-0.1.0-py3-none-any.whl", "/opt/labcoat/dist/labcoat-0.1.0-py3-none-any.whl", None) in targets
    assert ("labcoat-content.tar.gz", "/opt/labcoat/dist/labcoat-content.tar.gz", None) in targets
    script = asset_install_script(out, index, "/tmp/scenario")
    assert "cp /tmp/scenario/assets/hog /usr/local/bin/hog\nchmod +x /usr/local/bin/hog" in script
    # the hog is a static x86-64 ELF, the answer tool the image's own script
    assert (out / "assets" / "hog").read_bytes()[:4] == b"\x7fELF"
    assert (out / "assets" / "answer").read_text() == (ROOT / "images" / "sandbox" / "answer").read_text()


def test_export_scripts(exported: tuple[Path, kexport.ExportResult]) -> None:
    out, _ = exported
    setup = (out / "setup.sh").read_text()
    assert "python3 -m venv --without-pip /opt/labcoat/venv" in setup
    assert "--no-index" in setup and "--find-links /opt/labcoat/dist labcoat" in setup
    assert "lab --backend local start 5.3 --quiet" in setup
    assert setup.index("--no-index") < setup.index("lab --backend local start")
    assert "touch /var/lib/labcoat/setup.done" in setup
    verify = (out / "step2" / "verify.sh").read_text()
    assert verify.rstrip().endswith("exec /usr/local/bin/lab --backend local check part2")
    assert "export LABCOAT_BACKEND=local" in verify
    assert "setup.done" in verify
    text = (out / "step1" / "text.md").read_text()
    assert text.startswith((ROOT / "labs" / "5.3" / "part1.md").read_text().rstrip())
    assert "<details><summary>Solution</summary>" in text and "step1/solution.sh" in text
    assert "lab check part1" in text
    # parts that need what a VM may lack still export, with a note
    assert "Pressure Stall Information" in (out / "step4" / "text.md").read_text()
    assert "uses this VM's Docker: the setup loaded labcoat's image" in (out / "step5" / "text.md").read_text()
    solution = (out / "step1" / "solution.sh").read_text()
    assert (ROOT / "labs" / "5.3" / "solutions" / "part1.sh").read_text() in solution
    for script in [out / "setup.sh", out / "wait.sh", *out.glob("step*/*.sh")]:
        assert script.read_text().startswith("#!/bin/bash\n"), script
        assert script.stat().st_mode & 0o111, script


def test_export_ships_the_content(exported: tuple[Path, kexport.ExportResult]) -> None:
    import tarfile

    out, _ = exported
    with tarfile.open(out / "assets" / "labcoat-content.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"labs/5.3.yaml", "checks/lab_5_3/test_part1.py", "scenarios/lab53-part1.yaml",
            "images/sandbox/image.yaml"} <= names
    assert not any("__pycache__" in n for n in names)


def test_export_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(UsageProblem):
        kexport.export_lab(Catalog.load(ROOT), "5.3", out, wheels=_fake_wheels, images=_fake_images)
    with pytest.raises(UsageProblem):  # not an earlier export: never removed, even with force
        kexport.export_lab(Catalog.load(ROOT), "5.3", out, wheels=_fake_wheels, images=_fake_images, force=True)
    assert (out / "mine.txt").read_text() == "keep me"


def test_a_failed_export_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def no_labcoat(dest: Path) -> list[Path]:
        return []

    with pytest.raises(Exception, match="no labcoat wheel"):
        kexport.export_lab(Catalog.load(ROOT), "5.3", out, wheels=no_labcoat, images=_fake_images)
    assert not out.exists()


def test_sizes_are_grouped() -> None:
    assert kexport.human(512) == "512 B"
    assert kexport.human(16 * 1024 * 1024 + 100_000) == "16.1 MiB"


# ----------------------------------------------------------------------------- the validator


def _scenario(tmp_path: Path, index: dict, files: dict[str, str]) -> Path:
    root = tmp_path / "sc"
    root.mkdir()
    (root / "index.json").write_text(json.dumps(index))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_validator_names_every_problem(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {
        "title": "T",
        "difficulty": "easy",
        "details": {
            "intro": {"text": "intro.md", "background": "/etc/passwd"},
            "steps": [{"title": "one", "text": "step1.md", "verify": "../verify.sh"}, {"text": "s2.md"}],
            "assets": {"host01": [{"file": "nothing-*.sh", "target": "/root"}, {"file": "a.txt", "target": "rel"}]},
        },
    }, {"intro.md": "hi", "step1.md": "x", "assets/a.txt": "a"})
    problems = validate_scenario(root)
    expected = [
        "`backend.imageid` is missing",
        "unknown key `difficulty`",
        "details.intro.background: '/etc/passwd' must be a relative path",
        "details.steps[0].verify: '../verify.sh' must be a relative path",
        "details.steps[1] has no `title`",
        "details.steps[1].text: s2.md does not exist",
        "no file under assets/ matches 'nothing-*.sh'",
        "target 'rel' must be an absolute folder",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected)
    # lenient: what an importer tolerates
    lenient = validate_scenario(root, strict=False)
    assert not any("difficulty" in p or "imageid" in p for p in lenient)


def test_validator_on_broken_json(tmp_path: Path) -> None:
    root = tmp_path / "sc"
    root.mkdir()
    assert "does not exist" in validate_scenario(root)[0]
    (root / "index.json").write_text("{not json")
    assert "is not valid JSON" in validate_scenario(root)[0]
    (root / "index.json").write_text("[]")
    assert "must hold a JSON object" in validate_scenario(root)[0]


@pytest.mark.parametrize("name", ["linux-files-katacoda", "runaway-process", "app-config", "log-cleanup",
                                  "memory-tour"])
def test_fixtures_are_valid_killercoda_scenarios(name: str) -> None:
    assert validate_scenario(FIXTURES / name, strict=False) == []


def test_asset_globs(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"title": "T"}, {"assets/a.sh": "", "assets/b.sh": "", "assets/app/c.json": "",
                                                "assets/app/d/e.json": ""})
    from labcoat.killercoda.format import match_assets

    rel = lambda ps: sorted(p.relative_to(root / "assets").as_posix() for p in ps)  # noqa: E731
    assert rel(match_assets(root, "*.sh")) == ["a.sh", "b.sh"]
    assert rel(match_assets(root, "**/*.json")) == ["app/c.json", "app/d/e.json"]
    assert rel(match_assets(root, "app/*.json")) == ["app/c.json"]
    assert len(match_assets(root, "**")) == 4
    assert match_assets(root, "../index.json") == []


# ----------------------------------------------------------------------------- import


def _import(name: str, tmp_path: Path, **kwargs):
    out = tmp_path / name
    return out, import_scenario(FIXTURES / name, out, **kwargs)


def test_import_katacoda_era_scenario(tmp_path: Path) -> None:
    out, report = _import("linux-files-katacoda", tmp_path)
    assert report.lab_id == "kc-linux-files-katacoda"
    assert report.ignored == ["difficulty", "time", "environment", "details.intro.credits"]
    assert any("courseData: Katacoda's name for `background`" in n for n in report.notes)
    intro = yaml.safe_load((out / "scenarios" / "kc-linux-files-katacoda-intro.yaml").read_text())
    runs = [s["run"]["cmd"] for s in intro["steps"] if "run" in s]
    # the background hidden, then the foreground in the learner's shell context
    assert [c.split()[2:5] for c in runs] == [["intro-background", "'intro", "background"],
                                              ["intro-foreground", "'intro", "foreground"]]
    assert runs[1].split()[-2:] == ["terminal", "0"]
    assert [(p.part, p.title, p.solution_from) for p in report.parts] == [
        ("step1", "Create a file", "step1/solution.sh"),
        ("step2", "Make it read-only", "step2/solution.sh"),
        ("step3", "Archive the reports", "step3/solution.sh"),
    ]
    assert validate_import(out) == []
    lab = yaml.safe_load((out / "labs" / "kc-linux-files-katacoda.yaml").read_text())
    assert lab["sandbox"] == {"image": "sandbox", "memory": "512m"}
    assert [p["prepare"] for p in lab["parts"]] == [["kc-linux-files-katacoda-intro"], [], []]
    assert all(p["decoys"][0]["name"] == DECOY_NAME for p in lab["parts"])
    decoy = (out / "labs" / lab["parts"][0]["decoys"][0]["script"]).read_text()
    assert [line for line in decoy.splitlines() if not line.startswith("#")] == []  # does nothing
    # the annotation is gone from the instructions, the text is there
    step1 = (out / "labs" / "kc-linux-files-katacoda" / "step1.md").read_text()
    assert "{{execute}}" not in step1 and "`echo hello > ~/notes.txt`" in step1
    # the image is copied whole, so its recipe (and tag) is the same
    from labcoat.backends import images

    assert images.recipe_hash(out / "images" / "sandbox") == images.recipe_hash(ROOT / "images" / "sandbox")


def test_import_solution_key_file_and_inline(tmp_path: Path) -> None:
    out, report = _import("runaway-process", tmp_path)
    assert [p.solution_from for p in report.parts] == [
        "the step's \"solution\" key (step1/fix.sh)", "the step's \"solution\" key (an inline script)"]
    assert report.ignored == ["interface (terminal layout: labcoat has `lab shell`)"]
    assert (out / "labs" / "kc-runaway-process" / "solutions" / "step2.sh").read_text() == (
        "#!/bin/bash\n# the number of online CPUs\nnproc > /root/cpus.txt\n")
    lab = yaml.safe_load((out / "labs" / "kc-runaway-process.yaml").read_text())
    assert lab["parts"][0]["prepare"] == ["kc-runaway-process-step1"]  # the step's own background
    scenario = yaml.safe_load((out / "scenarios" / "kc-runaway-process-step1.yaml").read_text())
    assert [next(iter(s)) for s in scenario["steps"]] == ["write_file", "write_file", "write_file", "run"]
    helper = scenario["steps"][0]["write_file"]
    assert helper["path"] == "/run/labcoat/kc/run-once.sh"
    assert 'if [ -e "$f.done" ]' in helper["content"]  # once per sandbox
    assert validate_import(out) == []


def test_import_assets_foreground_and_follow_along_steps(tmp_path: Path) -> None:
    out, report = _import("app-config", tmp_path)
    assert [(p.part, p.follow_along) for p in report.parts] == [("step1", False), ("step2", True), ("step3", False)]
    assert report.parts[0].solution_from == "the step text's Solution block"
    assert report.parts[0].foreground
    assert any("follow-along parts" in n and "step2" in n for n in report.notes)
    lab = Catalog.load(out).lab("kc-app-config")
    assert [(p.id, p.points, p.follow_along) for p in lab.parts] == [("step1", 10, False), ("step2", 0, True),
                                                                    ("step3", 10, False)]
    assert (out / "labs" / "kc-app-config" / "step2.md").read_text().startswith("# About the control script")
    scenario = yaml.safe_load((out / "scenarios" / "kc-app-config-intro.yaml").read_text())
    steps = scenario["steps"]
    assert steps[0] == {"write_file": {"path": "/root/app/app.conf", "content": "# app configuration\nport=8080\n"
                                       "mode=debug\n", "mode": 0o644}}
    # appctl.sh holds ${APP_CONF...}, which a scenario would take for a variable: it goes base64-encoded
    assert steps[1]["write_file"]["path"].endswith(".b64")
    assert "> /usr/local/bin/appctl.sh && chmod 755 /usr/local/bin/appctl.sh" in steps[2]["run"]["cmd"]
    assert (out / "labs" / "kc-app-config" / "solutions" / "step1.sh").read_text() == (
        "sed -i 's/^mode=.*/mode=production/' ~/app/app.conf\n")
    assert validate_import(out) == []


def test_generated_check_keeps_the_verify_script_on_the_host(tmp_path: Path) -> None:
    out, _ = _import("linux-files-katacoda", tmp_path)
    check = out / "checks" / "kc_linux_files_katacoda" / "test_kc_linux_files_katacoda_step2.py"
    namespace: dict = {}
    exec(compile(check.read_text(), str(check), "exec"), namespace)  # noqa: S102
    script = (FIXTURES / "linux-files-katacoda" / "step2" / "verify.sh").read_text()
    assert namespace["VERIFY"] == script
    command = namespace["command"](script)
    assert "stat -c" not in command  # the script travels encoded, decoded only in a root-only temp folder
    assert command.startswith("umask 077; d=$(mktemp -d")
    assert 'rm -rf "$d"; exit $rc' in command


class _Result:
    def __init__(self, rc: int, stdout: str) -> None:
        self.rc, self.stdout, self.stderr = rc, stdout, ""


class _Host:
    def __init__(self, rc: int, stdout: str) -> None:
        self.result = _Result(rc, stdout)
        self.commands: list[str] = []

    def run(self, command: str) -> _Result:
        self.commands.append(command)
        return self.result


def _check_namespace(tmp_path: Path) -> dict:
    out, _ = _import("linux-files-katacoda", tmp_path)
    check = out / "checks" / "kc_linux_files_katacoda" / "test_kc_linux_files_katacoda_step1.py"
    namespace: dict = {}
    exec(compile(check.read_text(), str(check), "exec"), namespace)  # noqa: S102
    return namespace


def test_generated_check_passes_on_exit_0_and_shows_the_output_on_failure(tmp_path: Path) -> None:
    from labcoat.testing import CheckFailed

    ns = _check_namespace(tmp_path)
    ns["test_verify_script"](_Host(0, "fine\n"))
    with pytest.raises(CheckFailed) as info:
        ns["test_verify_script"](_Host(1, "notes.txt does not say hello\n"))
    assert info.value.found == "exit 1; it printed:\nnotes.txt does not say hello"
    assert info.value.hint == "read the step again: `lab show step1`"
    with pytest.raises(RuntimeError):  # the script could not even be put in place: not the learner's fault
        ns["test_verify_script"](_Host(97, "base64: invalid input"))


def test_import_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"title": "No steps", "details": {"steps": []}}, {})
    with pytest.raises(UsageProblem, match="no steps"):
        import_scenario(root, tmp_path / "out")
    with pytest.raises(UsageProblem, match="index.json"):
        import_scenario(tmp_path, tmp_path / "out2")
    out, _ = _import("runaway-process", tmp_path)
    with pytest.raises(UsageProblem, match="not empty"):
        import_scenario(FIXTURES / "runaway-process", out)
    import_scenario(FIXTURES / "runaway-process", out, force=True)


def test_import_without_a_solution_writes_a_failing_placeholder(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"title": "T", "details": {"steps": [
        {"title": "a", "text": "a.md", "verify": "v.sh"}]}, "backend": {"imageid": "kubernetes-kubeadm-1node"}},
        {"a.md": "do it", "v.sh": "test -f /root/x\n"})
    out = tmp_path / "out"
    report = import_scenario(root, out, lab_id="demo")
    assert report.lab_id == "demo"
    assert report.parts[0].solution_from == "nowhere (placeholder)"
    assert any("no solution" in w for w in report.warnings)
    assert any("Kubernetes" in w for w in report.warnings)
    assert "exit 1" in (out / "labs" / "demo" / "solutions" / "step1.sh").read_text()
    assert validate_import(out) == []


def test_solution_from_text() -> None:
    text = "Do it.\n<details>\n<summary>Solution</summary>\n\n```bash\nls\n```\n\n```\npwd\n```\n</details>\n"
    assert solution_from_text(text) == "ls\npwd\n"
    assert solution_from_text("<details><summary>Hint</summary>\n```\nls\n```\n</details>") is None


def test_selftest_summary_flags_a_verify_that_passes_untouched() -> None:
    def rows(part: str, fresh: str, decoy: str, sol: str, again: str) -> list[dict]:
        stages = [("fresh sandbox", "fail", fresh), (f"decoy {DECOY_NAME}", "fail", decoy),
                  ("solution", "pass", sol), ("solution again", "pass", again)]
        return [{"part": part, "stage": s, "expected": e, "got": g, "ok": e == g} for s, e, g in stages]

    lines = selftest_summary(rows("step1", "fail", "fail", "pass", "pass") + rows("step2", "pass", "pass", "pass", "pass")
                             + rows("step3", "fail", "fail", "fail", "fail"))
    assert lines[0] == "✓ step1: verify fails before the solution, passes after it"
    assert lines[1].startswith("✗ step2: verify PASSES ON AN UNTOUCHED SANDBOX, passes after it")
    assert "does not check the step's task" in lines[1]
    assert lines[2] == "✗ step3: verify fails before the solution, does NOT pass after it (fail)"


# ----------------------------------------------------------------------------- the CLI


def test_cli_import_reports_and_validates(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("import", "killercoda", str(FIXTURES / "linux-files-katacoda"), str(out))
    assert result.exit_code == 0, result
    assert "ignored keys: difficulty, time, environment, details.intro.credits" in result.stdout
    assert "valid; try: lab --content" in result.stdout
    validated = cli("--content", str(out), "validate")
    assert validated.exit_code == 0, validated
    listed = cli("--content", str(out), "list", "--json")
    assert listed.exit_code == 0, listed
    assert [p["id"] for p in json.loads(listed.stdout)["labs"][0]["parts"]] == ["step1", "step2", "step3"]


def test_cli_import_json(cli, tmp_path: Path) -> None:
    result = cli("import", "killercoda", str(FIXTURES / "app-config"), str(tmp_path / "o"), "--json")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["valid"] and data["lab"] == "kc-app-config"
    assert [(p["part"], p["follow_along"]) for p in data["parts"]] == [("step1", False), ("step2", True),
                                                                     ("step3", False)]


def test_cli_unknown_format(cli, tmp_path: Path) -> None:
    result = cli("export", "instruqt", "5.3", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "killercoda" in result.stderr


def test_cli_export_with_stand_in_wheels(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_gcc()
    monkeypatch.setattr(kexport, "build_labcoat_wheel", lambda dest: _fake_wheels(dest)[0])
    monkeypatch.setattr(kexport, "dependency_wheels", lambda dest, pythons, say: _fake_wheels(dest)[1:])
    monkeypatch.setattr(kexport, "save_image", lambda backend, catalog, image_id, dest, say: _fake_images(image_id, dest))
    result = cli("export", "killercoda", "5.3", str(tmp_path / "kc"), "--json")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["steps"] == ["part1", "part2", "part3", "part4", "part5", "part6"]
    assert set(data["sizes"]) == {"labcoat wheel", "dependency wheels", "content tarball", "image files",
                                  "docker image", "scenario text"}
    [image] = data["images"]
    assert image["image"] == "sandbox" and image["parts"][0] == "labcoat-image-sandbox.tar.gz.00"
    assert validate_scenario(tmp_path / "kc") == []
    result = cli("export", "killercoda", "5.3", str(tmp_path / "kc2"), "--json", "--no-image")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout)["images"] == []


# ----------------------------------------------------------------------------- the local backend's fallback
# (the stand-in VM of the integration tests is a container, whose cgroup filesystem is read-only)

MiB = 1 << 20
LABELS = {"labcoat.owner": "pytest", "labcoat.lab": "1.1", "labcoat.kind": "lab"}


def _mountinfo(mount_point: Path, root: str, fstype: str, options: str) -> str:
    return (f"35 30 0:31 {root} {mount_point} ro,nosuid,nodev,noexec,relatime shared:1 - {fstype} cgroup "
            f"ro,{options}\n")


@pytest.fixture
def readonly_cgroupfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake v1 cgroup root where creating a cgroup fails with `errno`, like a container's read-only one."""
    import errno

    from labcoat.backends import local

    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    monkeypatch.setattr(local, "CGROUP_ROOT", root)
    monkeypatch.setattr(local.os, "geteuid", lambda: 0)
    state = {"errno": errno.EROFS}
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs) -> None:
        if self.parent == root / "memory" and self.name.startswith("labcoat."):
            raise OSError(state["errno"], os.strerror(state["errno"]), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    # this process's own cgroup, as a container sees it: its cgroup mounted at the top
    own = tmp_path / "own-memory"
    own.mkdir()
    proc_self = tmp_path / "proc-self"
    proc_self.mkdir()
    (proc_self / "cgroup").write_text("12:pids:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n")
    (proc_self / "mountinfo").write_text(_mountinfo(own, "/docker/abc", "cgroup", "memory"))
    monkeypatch.setattr(local, "PROC_SELF", proc_self)
    return {"own": own, "state": state, "proc_self": proc_self}



def test_fallback_runs_in_the_own_cgroup_when_it_has_a_limit(readonly_cgroupfs) -> None:
    from labcoat.backends.base import MachineSpec
    from labcoat.backends.local import LocalBackend

    own = readonly_cgroupfs["own"]
    (own / "memory.limit_in_bytes").write_text(f"{2048 * MiB}\n")
    backend = LocalBackend()
    machine = backend.start(MachineSpec(image="", memory=512 * MiB, name="lab-1"), LABELS)
    assert machine.handle["shared"] is True
    assert machine.handle["cgroup"] == str(own)
    assert (machine.handle["limit"], machine.handle["wanted_limit"]) == (2048 * MiB, 512 * MiB)
    assert "Read-only file system" in machine.handle["fallback_reason"]
    assert machine.is_running
    assert [m.name for m in backend.find(LABELS)] == ["lab-1"]
    # commands run as they are (no cgroup to join), marked with the machine's name
    result = backend.run(machine, ["sh", "-c", 'echo "$LABCOAT_MACHINE ${LABCOAT_CGROUP_PROCS:-none}"'])
    assert (result.exit_status, result.stdout) == (0, "lab-1 none\n")
    assert not (own / "cgroup.procs").exists()


def test_fallback_remove_kills_only_its_own_processes(readonly_cgroupfs) -> None:
    import time

    from labcoat.backends import local
    from labcoat.backends.base import MachineSpec

    (readonly_cgroupfs["own"] / "memory.limit_in_bytes").write_text(f"{1024 * MiB}\n")
    backend = local.LocalBackend()
    name = f"fallback-{os.getpid()}"
    mine = backend.start(MachineSpec(image="", memory=64 * MiB, name=name), LABELS)
    other = backend.start(MachineSpec(image="", memory=64 * MiB, name=name + "-other"), LABELS)
    backend.spawn(mine, ["sleep", "60"])
    backend.spawn(other, ["sleep", "61"])
    for _ in range(100):
        if local.marked_pids(name) and local.marked_pids(name + "-other"):
            break
        time.sleep(0.02)
    [pid] = local.marked_pids(name)
    [other_pid] = local.marked_pids(name + "-other")
    backend.remove(mine)
    assert local.marked_pids(name) == []
    assert local.marked_pids(name + "-other") == [other_pid]
    assert readonly_cgroupfs["own"].is_dir()  # the shared cgroup is never removed
    assert [m.name for m in backend.find(LABELS)] == [name + "-other"]
    backend.remove(other)
    assert local.marked_pids(name + "-other") == []
    assert pid != other_pid


def test_fallback_refuses_a_cgroup_without_a_limit(readonly_cgroupfs) -> None:
    from labcoat.backends.base import MachineSpec
    from labcoat.backends.local import LocalBackend
    from labcoat.errors import EnvironmentProblem

    (readonly_cgroupfs["own"] / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    backend = LocalBackend()
    with pytest.raises(EnvironmentProblem) as info:
        backend.start(MachineSpec(image="", memory=64 * MiB, name="lab-1"), LABELS)
    assert "has no limit" in info.value.message and "refusing" in info.value.message
    assert "--memory" in (info.value.hint or "")
    assert backend.find(LABELS) == []


def test_fallback_only_for_a_read_only_or_forbidden_cgroupfs(readonly_cgroupfs) -> None:
    import errno

    from labcoat.backends.base import MachineSpec
    from labcoat.backends.local import LocalBackend
    from labcoat.errors import EnvironmentProblem

    (readonly_cgroupfs["own"] / "memory.limit_in_bytes").write_text(f"{1024 * MiB}\n")
    readonly_cgroupfs["state"]["errno"] = errno.EACCES
    assert LocalBackend().start(MachineSpec(image="", memory=64 * MiB, name="a"), LABELS).handle["shared"]
    readonly_cgroupfs["state"]["errno"] = errno.EIO
    with pytest.raises(EnvironmentProblem, match="could not set up the cgroup"):
        LocalBackend().start(MachineSpec(image="", memory=64 * MiB, name="b"), LABELS)


def test_own_memory_cgroup_v2_takes_the_smallest_limit_up_the_tree(tmp_path: Path) -> None:
    from labcoat.backends.local import own_memory_cgroup

    mount = tmp_path / "unified"
    leaf = mount / "user.slice" / "session-1.scope"
    leaf.mkdir(parents=True)
    (mount / "memory.max").write_text("max\n")
    (mount / "user.slice" / "memory.max").write_text(f"{768 * MiB}\n")
    (leaf / "memory.max").write_text("max\n")
    proc_self = tmp_path / "self"
    proc_self.mkdir()
    (proc_self / "cgroup").write_text("0::/user.slice/session-1.scope\n")
    (proc_self / "mountinfo").write_text(_mountinfo(mount, "/", "cgroup2", "nsdelegate"))
    assert own_memory_cgroup(proc_self) == (leaf, 2, 768 * MiB)
    (mount / "user.slice" / "memory.max").write_text("max\n")
    assert own_memory_cgroup(proc_self) == (leaf, 2, None)
    (proc_self / "cgroup").write_text("")
    assert own_memory_cgroup(proc_self) is None


def test_own_memory_cgroup_v1_hierarchical_limit(tmp_path: Path) -> None:
    from labcoat.backends.local import own_memory_cgroup

    mount = tmp_path / "memory"
    mount.mkdir()
    (mount / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mount / "memory.stat").write_text(f"cache 0\nhierarchical_memory_limit {300 * MiB}\n")
    proc_self = tmp_path / "self"
    proc_self.mkdir()
    (proc_self / "cgroup").write_text("4:memory:/\n")
    (proc_self / "mountinfo").write_text(_mountinfo(mount, "/", "cgroup", "memory"))
    assert own_memory_cgroup(proc_self) == (mount, 1, 300 * MiB)


# ----------------------------------------------------------------------------- round trip, real-world shapes, hostile input


def test_export_then_import_restores_the_lab(exported: tuple[Path, kexport.ExportResult], tmp_path: Path) -> None:
    """`lab export killercoda` then `lab import killercoda` gives back the lab as it was: the loaded
    models (lab, quiz, scenarios, images) are equal, and no wheel comes along."""
    out, _ = exported
    marker = json.loads((out / "assets" / "labcoat-export.json").read_text())
    assert marker["lab"] == "5.3" and marker["content"] == "labcoat-content.tar.gz"
    restored = tmp_path / "restored"
    report = import_scenario(out, restored)
    assert report.lab_id == "5.3"
    assert validate_import(restored) == []
    original, again = Catalog.load(ROOT), Catalog.load(restored)
    lab, lab2 = original.lab("5.3"), again.lab("5.3")
    assert lab2 == lab  # parts, points, decoys, provocations, own sandboxes, requirements, quiz id
    assert again.quiz(lab.quiz) == original.quiz(lab.quiz)
    used = {s for p in lab.parts for s in (*p.prepare, *([p.provoke] if p.provoke else []))}
    assert {s: again.scenario(s) for s in used} == {s: original.scenario(s) for s in used}
    assert again.image("sandbox") == original.image("sandbox")
    for part in lab.parts:
        assert again.checks_file(part).read_text() == original.checks_file(part).read_text()
        assert again.lab_file("5.3", part.solution).read_text() == original.lab_file("5.3", part.solution).read_text()
    assert not any(p.suffix == ".whl" for p in restored.rglob("*"))
    assert sum(p.stat().st_size for p in restored.rglob("*") if p.is_file()) < 2 << 20
    with pytest.raises(UsageProblem, match="restored as that lab"):
        import_scenario(out, tmp_path / "other", lab_id="renamed")


def test_import_reads_the_export_marker_bounded(exported: tuple[Path, kexport.ExportResult], tmp_path: Path) -> None:
    """The marker is read with a bound: a huge marker (or one that is a FIFO, or a symlink out of the
    folder) is a clear usage error, never a whole read, a hang or a traceback."""
    from labcoat.killercoda.importer import MAX_MARKER_BYTES

    out, _ = exported
    src = tmp_path / "scenario"
    shutil.copytree(out, src)
    marker = src / "assets" / "labcoat-export.json"
    good = marker.read_text()
    # valid JSON that stays valid however far it is read: only a bounded read refuses it
    marker.write_text(good.rstrip()[:-1] + ', "pad": "' + "x" * (MAX_MARKER_BYTES + 10) + '"}')
    with pytest.raises(UsageProblem, match="is not a labcoat export marker"):
        import_scenario(src, tmp_path / "big")
    assert not (tmp_path / "big" / "labs").exists()
    outside = tmp_path / "outside.json"
    outside.write_text(good)
    marker.unlink()
    marker.symlink_to(outside)
    with pytest.raises(UsageProblem, match="is not a labcoat export marker"):
        import_scenario(src, tmp_path / "link")
    marker.unlink()
    os.mkfifo(marker)
    with pytest.raises(UsageProblem, match="is not a labcoat export marker"):
        import_scenario(src, tmp_path / "fifo")
    marker.unlink()
    marker.write_text(good)
    assert import_scenario(src, tmp_path / "ok").lab_id == "5.3"


def _load_image_function(out: Path, dist: Path, state: Path) -> str:
    """setup.sh's load_image function and its calls, pointed at test folders instead of /opt and /var."""
    setup = (out / "setup.sh").read_text()
    start, end = setup.index("load_image() {"), setup.index("touch /var/lib/labcoat/setup.done")
    return setup[start:end].replace(kexport.DIST, str(dist)).replace(kexport.STATE, str(state))


def test_export_ships_the_learner_image_in_parts_and_setup_loads_it(
        exported: tuple[Path, kexport.ExportResult], tmp_path: Path) -> None:
    """Part 5 uses the VM's Docker: the export ships labcoat's image (docker save | gzip) in parts no
    larger than Katacoda's documented 9 MB per asset, names them in the assets, and the setup
    reassembles, checks (sha256) and `docker load`s them, then tags the image :latest. Played here with
    a `docker` stand-in on PATH that records what it is given."""
    out, result = exported
    [archive] = result.images
    assert archive.image_id == "sandbox" and len(archive.parts) >= 2
    assert all(p.stat().st_size <= kexport.IMAGE_PART_BYTES for p in archive.parts)
    assert all(p.parent == out / "assets" for p in archive.parts)
    index = json.loads((out / "index.json").read_text())
    assert {"file": "labcoat-image-sandbox.tar.gz.*", "target": kexport.DIST} in index["details"]["assets"]["host01"]
    assert result.sizes["docker image"] == archive.size
    dist, state, bin_ = tmp_path / "dist", tmp_path / "state", tmp_path / "bin"
    dist.mkdir(), state.mkdir(), bin_.mkdir()
    for part in archive.parts:
        shutil.copy2(part, dist / part.name)
    log = tmp_path / "docker.log"
    fake = bin_ / "docker"
    fake.write_text(f"""#!/bin/bash
echo "$*" >> {log}
case $1 in
  info) exit 0 ;;
  image) exit 1 ;;  # not there yet
  load) cat > {tmp_path}/loaded ;;
esac
""")
    fake.chmod(0o755)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path)}
    import subprocess

    script = _load_image_function(out, dist, state)
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "loaded").read_bytes() == (out.parent / "sandbox.saved").read_bytes()
    assert not (state / "images.failed").exists()
    assert f"tag {archive.tag} labcoat/sandbox:latest" in log.read_text()
    # a damaged part: nothing is loaded, the reason is recorded, and the setup goes on
    (tmp_path / "loaded").unlink()
    damaged = dist / archive.parts[-1].name
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"?")
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert not (tmp_path / "loaded").exists()
    assert "the archive is damaged" in (state / "images.failed").read_text()


def test_export_solution_of_a_host_part_records_answers_on_the_vm(exported: tuple[Path, kexport.ExportResult],
                                                                  tmp_path: Path) -> None:
    """Part 5's reference solution records answers with `docker exec "$LAB_SANDBOX" answer ...`; on the VM
    the lab's sandbox is the VM itself: that exec runs `answer` right there, every other docker command
    reaches the real docker."""
    import subprocess

    out, _ = exported
    solution = (out / "step5" / "solution.sh").read_text()
    head = solution[:solution.index("set -eu")]
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, body in (("answer", f'echo "answer $*" >> {tmp_path}/log'), ("docker", f'echo "docker $*" >> {tmp_path}/log')):
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    script = head + 'docker exec "$LAB_SANDBOX" answer part5 limit_bytes 1\ndocker ps -a\n'
    proc = subprocess.run(["bash", "-c", script], env={"PATH": f"{bin_}:/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "log").read_text().splitlines() == ["answer part5 limit_bytes 1", "docker ps -a"]


def test_export_without_the_image_builds_it_on_the_vm(tmp_path: Path) -> None:
    require_gcc()
    out = tmp_path / "lab-5.3"
    result = kexport.export_lab(Catalog.load(ROOT), "5.3", out, wheels=_fake_wheels, ship_images=False)
    assert result.images == [] and not list((out / "assets").glob("labcoat-image-*"))
    assert any("builds it" in n for n in result.notes)
    setup = (out / "setup.sh").read_text()
    assert "load_image sandbox - -" in setup and "ensure_image" in setup
    assert validate_scenario(out) == []


def test_export_solutions_carry_the_provocation(exported: tuple[Path, kexport.ExportResult]) -> None:
    out, _ = exported
    part3 = (out / "step3" / "solution.sh").read_text()  # provoke_when: after
    assert part3.rstrip().endswith("lab provoke part3")
    part4 = (out / "step4" / "solution.sh").read_text()  # provoke_when: during
    assert part4.index("lab provoke part4") < part4.index("wait $provoking")
    assert "lab provoke" not in (out / "step1" / "solution.sh").read_text()


def test_import_a_six_step_scenario_without_verify_in_some_steps(tmp_path: Path) -> None:
    out, report = _import("log-cleanup", tmp_path)
    assert [(p.part, p.follow_along) for p in report.parts] == [
        ("step1", True), ("step2", False), ("step3", False), ("step4", True), ("step5", False), ("step6", False)]
    assert [p.solution_from for p in report.parts if not p.follow_along] == [
        "step2/solution.sh", "the step text's Solution block", "the step's \"solution\" key (an inline script)",
        "step6/solution.sh"]
    assert any("Kubernetes" in w for w in report.warnings)
    assert validate_import(out) == []
    # the description is kept although intro.md starts with its own heading
    intro = (out / "labs" / "kc-log-cleanup" / "intro.md").read_text()
    assert intro.startswith("# Tame a noisy log writer\n\nFind the process that fills the disk")
    assert intro.count("# Tame a noisy log writer") == 1
    # `**` keeps the folders: two config.ini files, two destinations
    scenario = yaml.safe_load((out / "scenarios" / "kc-log-cleanup-intro.yaml").read_text())
    paths = [s["write_file"]["path"] for s in scenario["steps"] if "write_file" in s]
    assert "/etc/demo/web/config.ini" in paths and "/etc/demo/worker/config.ini" in paths
    lab = Catalog.load(out).lab("kc-log-cleanup")
    assert [p.points for p in lab.parts] == [0, 10, 10, 0, 10, 10]


def test_a_follow_along_part_is_skipped_by_the_checks_with_a_word(tmp_path: Path) -> None:
    from labcoat.checking.run import run_checks

    out, _ = _import("log-cleanup", tmp_path)
    catalog = Catalog.load(out)
    lab = catalog.lab("kc-log-cleanup")
    [result] = run_checks(catalog, None, lab, [lab.part("step1")])  # type: ignore[arg-type]  # nothing runs
    assert result.status == "skipped"
    assert "follow-along" in result.skipped_reason and "nothing to verify" in result.skipped_reason


def test_cli_import_of_a_scenario_without_any_verify(cli, tmp_path: Path) -> None:
    """Most public scenarios (460 of 633) have no verify script at all: the import takes them as a
    lab of follow-along parts (exit 0, 0 points each), which validates, with its description kept."""
    out = tmp_path / "out"
    src = FIXTURES / "memory-tour"
    index = json.loads((src / "index.json").read_text())
    assert not any("verify" in step for step in index["details"]["steps"])  # the fixture's point
    result = cli("import", "killercoda", str(src), str(out), "--json")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["valid"] and data["lab"] == "kc-memory-tour"
    assert [(p["part"], p["follow_along"]) for p in data["parts"]] == [("step1", True), ("step2", True),
                                                                     ("step3", True)]
    assert any("follow-along parts" in n and "step1, step2, step3" in n for n in data["notes"])
    validated = cli("--content", str(out), "validate")
    assert validated.exit_code == 0, validated
    lab = Catalog.load(out).lab("kc-memory-tour")
    assert [(p.id, p.points, p.follow_along) for p in lab.parts] == [("step1", 0, True), ("step2", 0, True),
                                                                    ("step3", 0, True)]
    assert lab.parts[0].prepare == ("kc-memory-tour-intro",)  # the background still prepares the sandbox
    intro = (out / "labs" / "kc-memory-tour" / "intro.md").read_text()
    assert intro.startswith(f"# A short tour of Linux memory\n\n{index['description']}\n\nThree short looks")
    assert not list((out / "checks" / "kc_memory_tour").glob("test_*.py"))  # nothing to verify anywhere


def test_grade_counts_a_follow_along_part_0_of_0(tmp_path: Path) -> None:
    """`lab grade` of follow-along parts: 0 of 0 points each, and no sandbox is started for a part
    without a script (the backend given here fails if it is touched at all)."""
    from labcoat.grading.grade import grade_submission

    out = tmp_path / "out"
    import_scenario(FIXTURES / "memory-tour", out)
    catalog = Catalog.load(out)
    lab = catalog.lab("kc-memory-tour")

    class NoBackend:
        def __getattr__(self, name: str):
            raise AssertionError(f"grading a follow-along part used the backend ({name})")

    submission = tmp_path / "submission"
    submission.mkdir()
    grade = grade_submission(catalog, lab, submission, quiz=False, backend=NoBackend(), student="s")  # type: ignore[arg-type]
    assert grade.gradable, grade.error
    assert [(p.part, p.points, p.max_points) for p in grade.parts] == [("step1", 0, 0), ("step2", 0, 0),
                                                                      ("step3", 0, 0)]
    assert (grade.points, grade.max_points) == (0, 0)
    # skipped with the reason, not "failed: no stepN.sh"; nothing to verify is not a failing grade
    assert {p.status for p in grade.parts} == {"skipped"}
    assert all("follow-along" in (p.reason or "") for p in grade.parts)
    assert grade.passed
    # beside graded parts they change nothing: a lab's total is its verified parts' points
    mixed = tmp_path / "mixed"
    import_scenario(FIXTURES / "log-cleanup", mixed)
    mixed_lab = Catalog.load(mixed).lab("kc-log-cleanup")
    grade = grade_submission(Catalog.load(mixed), mixed_lab, submission, quiz=False, backend=NoBackend(),
                             student="s")  # type: ignore[arg-type]
    assert {p.part: p.max_points for p in grade.parts} == {"step1": 0, "step2": 10, "step3": 10, "step4": 0,
                                                           "step5": 10, "step6": 10}
    assert grade.max_points == 40


def test_import_with_network_gives_the_sandbox_a_network(cli, tmp_path: Path) -> None:
    """`--network` writes `sandbox.network: true`; the Docker backend then creates the container on
    the default network instead of `none` (its `containers.run` arguments, recorded by a stand-in
    client: no Docker needed)."""
    from typing import Any

    from labcoat.backends.docker import DockerBackend
    from labcoat.runner.session import machine_spec

    src = _scenario(tmp_path, {"title": "Sysstat", "details": {
        "intro": {"text": "intro.md", "background": "setup.sh"},
        "steps": [{"title": "Watch", "text": "s.md"}]}, "backend": {"imageid": "ubuntu"}},
        {"intro.md": "# Sysstat\n", "setup.sh": "apt-get update && apt-get install -y sysstat\n",
         "s.md": "Run `sar 1 3`.\n"})
    offline, online = tmp_path / "offline", tmp_path / "online"
    result = cli("import", "killercoda", str(src), str(offline))
    assert result.exit_code == 0, result
    assert "the sandbox has no network unless --network" in result.stdout + result.stderr
    result = cli("import", "killercoda", str(src), str(online), "--network")
    assert result.exit_code == 0, result
    assert "network on" in result.stdout
    assert "no network unless --network" not in result.stdout + result.stderr
    written = yaml.safe_load((online / "labs" / "kc-sc.yaml").read_text())
    assert written["sandbox"] == {"image": "sandbox", "memory": "512m", "network": True}
    assert "network" not in yaml.safe_load((offline / "labs" / "kc-sc.yaml").read_text())["sandbox"]
    assert cli("--content", str(online), "validate").exit_code == 0

    calls: list[dict[str, Any]] = []

    class Containers:
        def run(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            raise RuntimeError("recorded; nothing is started")

    class Client:
        containers = Containers()

    backend = DockerBackend()
    backend.__dict__["client"] = Client()
    backend.__dict__["supports"] = {}
    for folder in (offline, online):
        lab = Catalog.load(folder).lab("kc-sc")
        with pytest.raises(RuntimeError, match="recorded"):
            backend.start(machine_spec(lab.sandbox, "labcoat/sandbox:x", None, "1"), {})
    assert [c["network_mode"] for c in calls] == ["none", None]  # None: Docker's default bridge


def test_follow_along_points_are_zero_and_only_zero() -> None:
    from pydantic import ValidationError

    from labcoat.content.models import Part

    base = {"id": "s", "title": "t", "instructions": "a.md", "checks": "c.py", "solution": "s.sh",
            "decoys": ({"name": "d", "script": "d.sh", "why": "w"},)}
    assert Part.model_validate({**base, "points": 0, "follow_along": True}).follow_along
    with pytest.raises(ValidationError):
        Part.model_validate({**base, "points": 0})
    with pytest.raises(ValidationError):
        Part.model_validate({**base, "points": 5, "follow_along": True})


def test_selftest_summary_words_for_a_follow_along_part() -> None:
    rows = [{"part": "step1", "stage": "follow-along", "expected": "skip", "got": "skipped", "ok": True}]
    assert selftest_summary(rows) == ["- step1: follow-along (no verify script): nothing to verify, skipped"]


def test_asset_patterns_keep_folders_and_collisions_name_both(tmp_path: Path) -> None:
    from labcoat.killercoda.format import Asset, AssetCollision

    root = _scenario(tmp_path, {"title": "T"}, {"assets/a/x.conf": "1", "assets/b/x.conf": "2",
                                                "assets/a/deep/y.conf": "3"})
    got = {dest for _, dest, _ in resolve_assets(root, [Asset("host01", "**/*.conf", "/etc/app")])}
    assert got == {"/etc/app/a/x.conf", "/etc/app/b/x.conf", "/etc/app/a/deep/y.conf"}
    got = {dest for _, dest, _ in resolve_assets(root, [Asset("host01", "a/**", "~/cfg")])}
    assert got == {"/root/cfg/x.conf", "/root/cfg/deep/y.conf"}
    with pytest.raises(AssetCollision) as info:  # without ** both land on /etc/app/x.conf
        resolve_assets(root, [Asset("host01", "a/*.conf", "/etc/app"), Asset("host01", "b/*.conf", "/etc/app")])
    assert "assets/a/x.conf" in str(info.value) and "assets/b/x.conf" in str(info.value)
    index = {"title": "T", "details": {"steps": [{"title": "s", "text": "s.md"}], "assets": {"host01": [
        {"file": "a/*.conf", "target": "/etc/app"}, {"file": "b/*.conf", "target": "/etc/app"}]}}}
    (root / "index.json").write_text(json.dumps(index))
    (root / "s.md").write_text("x")
    with pytest.raises(UsageProblem, match="assets/a/x.conf and assets/b/x.conf both go to /etc/app/x.conf"):
        import_scenario(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_import_says_why_a_step_text_was_left_out(tmp_path: Path) -> None:
    root = _scenario(tmp_path, {"title": "T", "details": {"steps": [
        {"title": s, "text": f"{s}.md", "verify": "v.sh"} for s in ("fifo", "dangling", "folder", "absent")]}},
        {"v.sh": "true\n"})
    os.mkfifo(root / "fifo.md")  # a plain read would block for ever
    (root / "dangling.md").symlink_to(root / "nowhere")
    (root / "folder.md").mkdir()
    report = import_scenario(root, tmp_path / "out")
    said = "\n".join(report.warnings)
    assert "fifo.md is a named pipe (FIFO), not a regular file; left out" in said
    assert "dangling.md is a symlink to nothing (or a loop); left out" in said
    assert "folder.md is a folder, not a regular file; left out" in said
    assert "absent.md does not exist in the scenario; left out" in said


def test_import_never_reads_outside_the_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    root = _scenario(tmp_path, {"title": "T", "details": {
        "intro": {"text": "intro.md"},
        "steps": [{"title": "s", "text": "s.md", "verify": "v.sh"}, {"title": "t", "text": "t.md"}],
        "assets": {"host01": [{"file": "*", "target": "/root"}]}}}, {"s.md": "x", "v.sh": "true\n"})
    (root / "intro.md").symlink_to(secret)
    (root / "t.md").symlink_to(secret)
    (root / "assets").mkdir()
    (root / "assets" / "leak").symlink_to(secret)
    (root / "assets" / "up").symlink_to(tmp_path, target_is_directory=True)
    out = tmp_path / "out"
    report = import_scenario(root, out)
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    assert "TOP SECRET" not in written
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert any("points outside the scenario" in w for w in report.warnings)
    (root / "v.sh").unlink()
    (root / "v.sh").symlink_to(secret)
    with pytest.raises(UsageProblem, match="missing"):
        import_scenario(root, tmp_path / "out2")


def test_import_bounds_sizes_and_survives_garbage(tmp_path: Path) -> None:
    from labcoat.killercoda.format import MAX_TEXT_BYTES

    root = _scenario(tmp_path, {"title": "T", "details": {"steps": [{"title": "s", "text": "s.md",
                                                                      "verify": "v.sh"}]}},
                     {"s.md": "x" * (MAX_TEXT_BYTES + 1), "v.sh": "true\n"})
    with pytest.raises(UsageProblem, match="larger than"):
        import_scenario(root, tmp_path / "o1")
    for index, why in (("[" * 100_000, "nested too deeply"), ('{"title": "T", "details": {"steps": "nope"}}', "no steps"),
                       ("\udcff", "not valid JSON")):
        (root / "index.json").write_text(index, errors="surrogateescape")
        with pytest.raises(UsageProblem, match=why):
            import_scenario(root, tmp_path / "o2", force=True)
    # wrong types are read leniently: the odd step is ignored and said so, the other one imports
    (root / "index.json").write_text('{"title": 5, "details": {"steps": [7, {"title": null}]}}')
    report = import_scenario(root, tmp_path / "o3")
    assert [(p.part, p.follow_along) for p in report.parts] == [("step1", True)]
    assert "details.steps[0] (not an object)" in report.ignored
    assert validate_import(tmp_path / "o3") == []


def test_safe_text_removes_escape_codes() -> None:
    from labcoat.killercoda.importer import safe_text

    assert safe_text("\x1b[31mred\x1b[0m \x1b]0;title\x07ok\tdone\n\x00") == "red ok\tdone\n"


def test_failing_background_is_named_with_its_exit_and_tail(tmp_path: Path) -> None:
    """The run-once helper, run here with bash: a failing script's name, exit status and last lines."""
    import subprocess

    from labcoat.killercoda import importer

    if shutil.which("bash") is None or shutil.which("base64") is None:
        pytest.skip("needs bash and base64")
    run_dir = tmp_path / "kc"
    run_dir.mkdir()
    helper = importer.RUN_ONCE.replace(importer.RUN_DIR, str(run_dir))
    (run_dir / "run-once.sh").write_text(helper)
    script = "echo fetching sysstat\necho 'E: Unable to locate package sysstat' >&2\nexit 100\n"
    import base64

    (run_dir / "setup.b64").write_text(base64.b64encode(script.encode()).decode())
    proc = subprocess.run(["bash", str(run_dir / "run-once.sh"), "setup", "intro background setup.sh",
                           "background", "0"], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 100
    assert "intro background setup.sh exited 100; its last lines:" in proc.stderr
    assert "E: Unable to locate package sysstat" in proc.stderr
    assert "import with --network" in proc.stderr
    assert not (run_dir / "setup.done").exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("bash") is None, reason="plays the scenario as root")
def test_simulator_on_this_machine(tmp_path: Path) -> None:
    """`--on-this-machine` (the v2-local lane's mode): the same play, with no container. The scenario
    here only writes under tmp_path (and the simulator under /tmp/scenario and /run/kcsim)."""
    from labcoat.killercoda.simulator import ThisMachine, Timeouts, simulate

    work = tmp_path / "work"
    root = _scenario(tmp_path, {"title": "Here", "details": {
        "intro": {"text": "intro.md", "background": "bg.sh", "foreground": "fg.sh"},
        "steps": [{"title": "one", "text": "s1.md", "verify": "v1.sh",
                   "solution": f"echo \"$WORD\" > {work}/word\n"},
                  {"title": "two", "text": "s2.md"},
                  {"title": "three", "text": "s3.md", "verify": "v3.sh", "solution": "true\n"}]}},
        {"intro.md": "# Here\n", "bg.sh": f"mkdir -p {work}; (sleep 3 &) ; touch {work}/ready\n",
         "fg.sh": f"while [ ! -f {work}/ready ]; do sleep 0.2; done; export WORD=hello\n",
         "s1.md": "a", "s2.md": "b", "s3.md": "c",
         "v1.sh": f"grep -qx hello {work}/word\n", "v3.sh": "echo 'not yet'; exit 2\n"})
    report = simulate(root, solutions=True, backend=ThisMachine(), timeouts=Timeouts(verify_wait=2))
    assert [(s.n, s.status) for s in report.steps] == [(1, "passed"), (2, "follow-along"), (3, "stuck")]
    assert [(r.script, r.exit) for r in report.setup] == [("bg.sh", 0), ("fg.sh", 0)]
    assert report.steps[2].after == 2 and "not yet" in report.steps[2].detail
    assert not report.ok


def test_import_refuses_assets_too_big_for_the_scenario_files(tmp_path: Path) -> None:
    from labcoat.killercoda.importer import MAX_ASSET_BYTES

    root = _scenario(tmp_path, {"title": "T", "details": {
        "steps": [{"title": "s", "text": "s.md"}], "assets": {"host01": [{"file": "*.bin", "target": "/root"}]}}},
        {"s.md": "x"})
    (root / "assets").mkdir()
    for name in ("a.bin", "b.bin"):
        (root / "assets" / name).write_bytes(b"\0" * (MAX_ASSET_BYTES // 2 + 1))
    with pytest.raises(UsageProblem, match="assets add up to"):
        import_scenario(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_simulator_refuses_a_bad_scenario_before_any_vm(tmp_path: Path) -> None:
    from labcoat.killercoda.simulator import simulate

    class NoVM:
        def start(self, *a, **k):  # pragma: no cover - must never be reached
            raise AssertionError("a VM was started for a scenario that cannot be played")

    root = _scenario(tmp_path, {"title": "T", "details": {"steps": [{"title": "s", "text": "s.md"}], "assets": {
        "host01": [{"file": "a/*.conf", "target": "/etc"}, {"file": "b/*.conf", "target": "/etc"}]}}},
        {"s.md": "x", "assets/a/x.conf": "1", "assets/b/x.conf": "2"})
    with pytest.raises(UsageProblem, match="both go to /etc/x.conf"):
        simulate(root, backend=NoVM())
    (root / "index.json").write_text('{"title": "T", "details": {"steps": [{"title": "s", "text": "gone.md"}]}}')
    with pytest.raises(UsageProblem, match="gone.md does not exist"):
        simulate(root, backend=NoVM())


# ----------------------------------------------------------------------------- issue 15: a hostile index.json


def _hostile_index(tmp_path: Path, text: str | bytes) -> Path:
    root = tmp_path / "hostile"
    shutil.copytree(FIXTURES / "runaway-process", root)
    index = root / "index.json"
    index.write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


@pytest.mark.parametrize(("text", "words"), [
    ('{"title": "T", "x": ' + "9" * 5000 + "}", "a number of 5000 digits"),  # was exit 70: Python's 4300-digit limit
    ('{"title": "T", "x": -' + "1" * 4301 + "}", "a number of 4302 digits"),
    ('{"title": "T", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"title": "T", "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}", "nested too deeply"),
    ('{"title": "T", "x": 1e999999999, "y": NaN}', None),  # inf and NaN: JSON Python reads; not an error by itself
    ('{"title": "' + "x" * (2 << 20) + '"}', "larger than 1 MiB"),
    (b'{"title": "caf\xe9"}', "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_a_hostile_index_is_a_clean_error_naming_the_file(cli, tmp_path: Path, text: str | bytes,
                                                          words: str | None) -> None:
    root = _hostile_index(tmp_path, text)
    result = cli("import", "killercoda", str(root), str(tmp_path / "out"))
    assert "Traceback" not in result.stdout + result.stderr and result.exit_code in (0, 1, 2, 3), result
    if words is not None:
        assert result.exit_code == 2, result
        assert str(root / "index.json") in result.stderr and words in result.stderr, result.stderr


@pytest.mark.parametrize("special", ["fifo", "dev-zero", "loop"])
def test_an_index_that_is_not_a_regular_file_is_a_clean_error(cli, tmp_path: Path, special: str) -> None:
    root = _hostile_index(tmp_path, "{}")
    index = root / "index.json"
    index.unlink()
    if special == "fifo":
        os.mkfifo(index)
    elif special == "dev-zero":
        index.symlink_to("/dev/zero")
    else:
        index.symlink_to("index.json")
    result = cli("import", "killercoda", str(root), str(tmp_path / "out"))  # a FIFO must not block this
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result
    words = {"fifo": "is a named pipe (FIFO), not a regular file", "dev-zero": "is a symlink out of the scenario",
             "loop": "symlink loop"}[special]
    assert str(index) in result.stderr and words in result.stderr, result.stderr


def test_a_step_text_that_is_a_fifo_or_too_large_is_a_clean_error(tmp_path: Path) -> None:
    from labcoat.killercoda.format import ScenarioError, read_text

    root = _scenario(tmp_path, {"title": "T", "details": {"steps": [{"title": "s", "text": "s.md"}]}}, {})
    os.mkfifo(root / "s.md")
    assert read_text(root, "s.md") is None  # not a regular file: absent for the importer, never opened
    (root / "s.md").unlink()
    (root / "s.md").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(ScenarioError, match="s.md is larger than 1024 KiB"):
        read_text(root, "s.md")
