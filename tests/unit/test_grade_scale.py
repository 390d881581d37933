"""Grading at scale without Docker: shards, merging, the CI templates and the Kubernetes manifests."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from labcoat.checking.run import CheckResult
from labcoat.content.catalog import Catalog
from labcoat.errors import UsageProblem
from labcoat.grading import k8s, reports
from labcoat.grading import shard as sharding
from labcoat.grading.results import Grade, GradedPart

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "docs" / "ci"
LAB = {"id": "5.3", "title": "Memory", "pass_mark": 0.7, "parts": ["part1", "part2"]}


@pytest.fixture(scope="module")
def lab():
    return Catalog.load(ROOT).lab("5.3")


# ----------------------------------------------------------------------------- shards


def test_shard_of_is_stable_when_the_class_changes():
    names = [f"student{i:03d}" for i in range(300)]
    before = {n: sharding.shard_of(n, 3) for n in names}
    after = {n: sharding.shard_of(n, 3) for n in [*names[::2], "newcomer", "late"]}
    assert all(after[n] == before[n] for n in names[::2])  # nobody moves when others come or go
    counts = [list(before.values()).count(k) for k in (1, 2, 3)]
    assert all(70 <= c <= 130 for c in counts), counts  # roughly even
    assert sharding.shard_of("alice", 1) == 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_a_usage_error(text):
    with pytest.raises(UsageProblem):
        sharding.parse_shard(text)
    assert sharding.parse_shard(" 2/3 ") == (2, 3)


def test_student_seeds_are_stable_and_distinct():
    assert sharding.student_seed("2026", "alice") == sharding.student_seed("2026", "alice")
    assert sharding.student_seed("2026", "alice") != sharding.student_seed("2026", "bob")
    assert sharding.student_seed("2026", "alice") != sharding.student_seed("2027", "alice")


def _grade(name: str, points: float, gradable: bool = True) -> dict:
    g = Grade(lab="5.3", title="Memory", student=name, submission=f"s/{name}", pass_mark=0.7, duration=3.0,
              gradable=gradable, error=None if gradable else "Docker went away")
    for pid, got in (("part1", points), ("part2", 20 - points)):
        g.parts.append(GradedPart(pid, pid, "passed" if got else "failed",
                                  [CheckResult(pid, "test_x", "x", "passed" if got else "failed", got, 20)]))
    return g.to_dict()


def _write_students(out: Path, grades: list[dict]) -> None:
    for g in grades:
        (out / g["student"]).mkdir(parents=True, exist_ok=True)
        (out / g["student"] / "results.json").write_text(json.dumps(g))


def test_merged_shards_write_exactly_what_an_unsharded_run_writes(tmp_path, monkeypatch):
    grades = [_grade(f"s{i:02d}", float(i % 21)) for i in range(12)] + [_grade("broken", 0, gradable=False)]
    whole = tmp_path / "whole"
    _write_students(whole, grades)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "whole.md"))
    sharding.write_class(whole, LAB, grades)
    shards = []
    for k in (1, 2, 3):
        mine = [g for g in grades if sharding.shard_of(g["student"], 3) == k]
        out = tmp_path / f"shard-{k}"
        _write_students(out, mine)
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / f"shard-{k}.md"))
        summary = sharding.write_class(out, LAB, mine, shard=(k, 3))
        assert summary["shard"] == {"k": k, "n": 3}
        shards.append(out)
    merged = tmp_path / "class"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "merged.md"))
    sharding.merge(shards, merged)
    for name in ("summary.json", "summary.csv", "summary.md", "junit.xml"):
        assert (merged / name).read_bytes() == (whole / name).read_bytes(), name
    assert (tmp_path / "merged.md").read_text() == (tmp_path / "whole.md").read_text()
    assert (merged / "histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in merged.iterdir() if p.is_dir()) == sorted(g["student"] for g in grades)


def test_the_class_junit_has_a_suite_per_student_with_their_checks(tmp_path):
    import xml.etree.ElementTree as ET

    grades = [_grade("bob", 5), _grade("alice", 20), _grade("broken", 0, gradable=False)]
    _write_students(tmp_path, grades)
    sharding.write_class(tmp_path, LAB, grades)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["alice", "bob", "broken"]  # name order, as the CSV
    alice, bob, broken = suites
    assert [c.get("classname") for c in alice.findall("testcase")] == ["alice.5.3.part1", "alice.5.3.part2"]
    assert alice.get("failures") == "1" and alice.find("testcase/failure") is not None  # part2 earned 0 of 20
    assert bob.get("tests") == "2" and bob.get("failures") == "2"  # 5/20 and 15/20: short of full points fails
    assert broken.get("errors") == "1" and "Docker went away" in broken.find("testcase/error").get("message")
    props = {p.get("name"): p.get("value") for p in alice.iter("property")}
    assert props["points"] == "20" and props["gradable"] == "true"
    for key in ("tests", "failures", "errors", "skipped"):
        assert root.get(key) == str(sum(int(s.get(key)) for s in suites)), key
    assert root.get("tests") == "7" and root.get("errors") == "1"
    # Each student's cases are exactly those of the student's own report.
    own = ET.fromstring(reports.junit_xml(grades[1]).split("\n", 1)[1])
    assert [c.get("name") for c in own.iter("testcase")] == [c.get("name") for c in alice.findall("testcase")]


def test_merge_refuses_missing_duplicate_or_foreign_shards(tmp_path):
    outs = []
    for k in (1, 2):
        out = tmp_path / f"o{k}"
        mine = [_grade(f"x{k}", 5)]
        _write_students(out, mine)
        sharding.write_class(out, LAB, mine, shard=(k, 3))
        outs.append(out)
    with pytest.raises(UsageProblem, match=r"shard\(s\) 3/3 missing"):
        sharding.merge(outs, tmp_path / "m")
    assert sharding.merge(outs, tmp_path / "m", allow_partial=True)["count"] == 2
    with pytest.raises(UsageProblem, match="given twice"):
        sharding.merge([outs[0], outs[0]], tmp_path / "m2")
    other = tmp_path / "other"
    _write_students(other, [_grade("y", 1)])
    sharding.write_class(other, {**LAB, "parts": ["part1"]}, [_grade("y", 1)], shard=(3, 3))
    with pytest.raises(UsageProblem, match="the first shard lab"):
        sharding.merge([*outs, other], tmp_path / "m3")


def test_merge_reads_shard_reports_as_untrusted_files(tmp_path, monkeypatch):
    out = tmp_path / "o1"
    mine = [_grade("x", 5)]
    _write_students(out, mine)
    sharding.write_class(out, LAB, mine, shard=(1, 1))
    summary = out / "summary.json"
    summary.unlink()
    os.mkfifo(summary)  # a FIFO would block a plain read forever
    with pytest.raises(UsageProblem, match="named pipe"):
        sharding.merge([out], tmp_path / "m")
    summary.unlink()
    sharding.write_class(out, LAB, mine, shard=(1, 1))
    monkeypatch.setattr(sharding, "MAX_REPORT", 100)
    with pytest.raises(UsageProblem, match="too large"):
        sharding.merge([out], tmp_path / "m2")


def test_merge_on_the_command_line(cli, tmp_path):
    out = tmp_path / "o1"
    _write_students(out, [_grade("a", 20)])
    sharding.write_class(out, LAB, [_grade("a", 20)], shard=(1, 1))
    result = cli("grade", "merge", str(out), "--out", str(tmp_path / "class"))
    assert result.exit_code == 0, result
    assert json.loads((tmp_path / "class" / "summary.json").read_text())["count"] == 1
    assert cli("grade", "merge", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")).exit_code == 2
    assert cli("grade", "5.3", "--submission", str(out), "--shard", "1/2").exit_code == 2


# ----------------------------------------------------------------------------- the CI templates


def _lab_commands(text: str) -> list[list[str]]:
    """Every `lab ...` command line in a shell script (continuations joined, sudo dropped)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for piece in re.split(r"&&|;|\|\|", line):
            try:
                words = shlex.split(piece, comments=True)
            except ValueError:
                continue
            while words and words[0] in ("sudo", "-E"):
                words = words[1:]
            if words and (words[0] == "lab" or words[0].endswith("/lab")):
                found.append(words[1:])
    return found


def _check_against_the_cli(argv: list[str]) -> None:
    """The command exists and takes every option given (the click command tree, no Docker)."""
    import click

    from labcoat.cli import cli
    from labcoat.cli.grade import GradeCommand

    ctx = click.Context(cli)
    command = cli.get_command(ctx, argv[0])
    assert command is not None and command.name != "missing", argv
    rest = argv[1:]
    if isinstance(command, GradeCommand) and rest and rest[0] in GradeCommand.subcommands:
        command, rest = GradeCommand.subcommands[rest[0]], rest[1:]
    known = {opt for p in command.params for opt in p.opts + p.secondary_opts}
    for word in rest:
        if word.startswith("-") and word != "-":
            assert word.split("=")[0] in known, f"{argv[0]}: no option {word} (has {sorted(known)})"
    sub = command.make_context(argv[0], list(rest), resilient_parsing=True)
    assert sub.params is not None


def test_the_github_workflow_runs_real_commands_over_consistent_shards():
    flow = yaml.safe_load((CI / "github-grade-class.yml").read_text())
    shards = flow["jobs"]["grade"]["strategy"]["matrix"]["shard"]
    n = len(shards)
    assert shards == list(range(1, n + 1))
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    commands = [c for s in steps if "run" in s for c in _lab_commands(s["run"])]
    assert {c[0] for c in commands} >= {"grade", "doctor"}
    for argv in commands:
        argv = [w.replace("${{ matrix.shard }}", "1").replace("${{ inputs.lab }}", "5.3") for w in argv]
        _check_against_the_cli(argv)
    grade = next(c for c in commands if c[0] == "grade" and "--shard" in c)
    assert grade[grade.index("--shard") + 1] == "${{ matrix.shard }}/" + str(n)
    merge = next(c for c in commands if c[:2] == ["grade", "merge"])
    assert merge[2:2 + n] == [f"grades-{k}" for k in range(1, n + 1)]
    uploads = [s for s in flow["jobs"]["grade"]["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    assert uploads and uploads[0]["with"]["path"].startswith("grades-${{ matrix.shard }}")
    assert flow["jobs"]["merge"]["needs"] == "grade"


def test_the_gitlab_job_runs_real_commands_with_parallel():
    flow = yaml.safe_load((CI / "gitlab-grade-class.yml").read_text())
    assert isinstance(flow["grade"]["parallel"], int) and flow["grade"]["parallel"] >= 2
    commands = [c for job in ("grade", "merge") for line in flow[job]["script"] for c in _lab_commands(line)]
    for argv in commands:
        _check_against_the_cli([w.replace("$LAB", "5.3") for w in argv])
    grade = next(c for c in commands if c[0] == "grade" and "--shard" in c)
    assert grade[grade.index("--shard") + 1] == "$CI_NODE_INDEX/$CI_NODE_TOTAL"
    assert next(c for c in commands if c[:2] == ["grade", "merge"])[:2] == ["grade", "merge"]
    assert flow["merge"]["needs"] == ["grade"]


# ----------------------------------------------------------------------------- Kubernetes


def _strict(obj, klass: str, where: str = "") -> None:
    """Every key is a field of the official client's model (deserialize alone ignores unknown ones)."""
    import kubernetes.client.models as models

    if klass.startswith("list["):
        for i, item in enumerate(obj):
            _strict(item, klass[5:-1], f"{where}[{i}]")
        return
    if klass.startswith("dict(") or not hasattr(models, klass):
        return
    model = getattr(models, klass)
    by_json = {v: k for k, v in model.attribute_map.items()}
    assert isinstance(obj, dict), where
    for key, value in obj.items():
        assert key in by_json, f"{where}.{key} is not a field of {klass}"
        _strict(value, model.openapi_types[by_json[key]], f"{where}.{key}")


def _deserialize(obj: dict, kind: str):
    from kubernetes.client import ApiClient

    _strict(obj, kind, kind)
    return ApiClient().deserialize(json.dumps(obj), kind, "application/json")


def _emit(cli, tmp_path, *extra: str):
    result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(tmp_path), "--shard", "1/8",
                 "--jobs", "2", "--seed", "7", "--emit", "k8s", str(tmp_path / "k8s"), *extra)
    assert result.exit_code == 0, result
    job = _deserialize(yaml.safe_load((tmp_path / "k8s" / "job.yaml").read_text()), "V1Job")
    policy = _deserialize(yaml.safe_load((tmp_path / "k8s" / "networkpolicy.yaml").read_text()), "V1NetworkPolicy")
    pod = job.spec.template.spec
    return result, job, policy, pod, {c.name: c for c in pod.containers}


def test_k8s_manifests_are_valid_and_locked_down(cli, tmp_path):
    _, job, policy, pod, containers = _emit(cli, tmp_path)
    assert job.kind == "Job" and job.spec.completion_mode == "Indexed" and job.spec.completions == 8
    assert pod.automount_service_account_token is False and pod.restart_policy == "Never"
    for c in pod.containers:
        sc = c.security_context
        assert sc.allow_privilege_escalation is False and sc.privileged is False, c.name
        assert sc.capabilities.drop == ["ALL"], c.name
        assert c.resources.limits["memory"], c.name
    grader, engine = containers["grader"], containers["engine"]
    assert grader.security_context.capabilities.add is None  # the grader has no capability at all
    assert grader.security_context.read_only_root_filesystem is True
    assert set(engine.security_context.capabilities.add) == set(k8s.ENGINE_CAPS)  # docs/scale.md explains each
    assert pod.runtime_class_name == "sysbox-runc"  # the engine's capabilities live in the pod's user namespace
    for c in pod.containers:  # else Sysbox gives root every capability and ignores `capabilities` altogether
        assert {"name": "SYSBOX_HONOR_CAPS", "value": "TRUE"} in [{"name": e.name, "value": e.value} for e in c.env]
    script = grader.command[-1]
    assert '--shard "$((JOB_COMPLETION_INDEX + 1))/8"' in script and "--jobs 2" in script and "--seed 7" in script
    # Two submissions at a time, each: the sandboxes (lab 512 MiB, parts 3, 4, 6: 256, 128, 384) and part 5's
    # runner (the lab's 512) with its 2 learner containers (128 each), plus the engine's own 512 MiB floor.
    assert engine.resources.limits["memory"] == f"{2 * (512 + 256 + 128 + 384 + 512 + 2 * 128) + 512}Mi"
    # One CPU per submission at a time, shared by its 7 containers (the grader sees the node's CPUs, not the
    # pod's): 1/7 rounded down.
    assert engine.resources.requests["cpu"] == "2" and "--cpus 0.14" in script
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    assert policy.spec.ingress == [] and policy.spec.egress == []
    assert all(k in job.spec.template.metadata.labels for k in policy.spec.pod_selector.match_labels)


def _mounts(container) -> dict[str, str]:
    return {m.mount_path: m.name for m in container.volume_mounts}


def test_k8s_pod_loads_the_sandbox_images_before_grading(cli, tmp_path, lab):
    result, _, _, _, containers = _emit(cli, tmp_path)
    script = containers["grader"].command[-1]
    tags = k8s.lab_images(Catalog.load(ROOT), lab)
    assert set(tags) == {"sandbox"} and re.fullmatch(r"labcoat/sandbox:[0-9a-f]{12}", tags["sandbox"])
    lines = script.splitlines()
    at = {what: next(i for i, line in enumerate(lines) if what in line)
          for what in ("until docker version", "docker load", "docker image inspect", "lab grade 5.3")}
    assert at["until docker version"] < at["docker load"] < at["docker image inspect"] < at["lab grade 5.3"]
    assert f"-lt {k8s.ENGINE_WAIT} ]" in script  # an engine that never answers ends the pod (exit 5), not a hang
    assert f"for archive in {k8s.IMAGES_DIR}/*.tar" in script
    assert f"for tag in {tags['sandbox']}; do" in script  # every tag the lab needs, checked before grading
    assert "exit 5" in script  # a missing image is an infrastructure problem, not a zero for the class
    assert "trap 'touch /run/engine/done' EXIT" in lines[1]  # the engine ends with the grader, whatever happens
    said = result.stderr
    assert k8s.IMAGES_DIR in said and tags["sandbox"] in said and "--k8s-save-images" in said
    assert "images/grader/Dockerfile" in said and "--k8s-image" in said


def run_startup(script: str, where: Path, env: dict[str, str]):
    """Run the grader's startup script here, its pod paths moved under `where`, `lab` a stub that logs its args."""
    import os
    import subprocess

    for path, local in ((k8s.IMAGES_DIR, "images"), (k8s.SHARED, "shared"), ("/run/engine", "engine")):
        (where / local).mkdir(parents=True, exist_ok=True)
        script = script.replace(path, str(where / local))
    stubs = where / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "lab").write_text(f'#!/bin/sh\necho "$@" >> {where}/lab.log\n')
    (stubs / "lab").chmod(0o755)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "PATH": f"{stubs}:{os.environ['PATH']}", "JOB_COMPLETION_INDEX": "2"})


@pytest.mark.parametrize("has_image", [True, False])
def test_k8s_startup_script_loads_checks_then_grades(cli, tmp_path, has_image):
    _, _, _, _, containers = _emit(cli, tmp_path)
    where = tmp_path / "pod"
    (where / "images").mkdir(parents=True)
    (where / "images" / "sandbox.tar").write_bytes(b"an archive")
    stubs = where / "stubs"
    stubs.mkdir()
    # A stand-in docker: logs each call; `image inspect` finds the image only when it was loaded.
    (stubs / "docker").write_text(f"""#!/bin/sh
echo "$@" >> {where}/docker.log
case "$1 $2" in
  "image inspect") [ "{'yes' if has_image else 'no'}" = yes ] && grep -q '^load' {where}/docker.log ;;
esac
""")
    (stubs / "docker").chmod(0o755)
    run = run_startup(containers["grader"].command[-1], where, {"PATH": str(stubs)})
    calls = (where / "docker.log").read_text().splitlines()
    assert calls[0] == "version" and calls[1] == f"load -q -i {where}/images/sandbox.tar"
    assert calls[2].startswith("image inspect labcoat/sandbox:")
    assert (where / "engine" / "done").exists()  # the engine is told to stop either way
    assert (where / "shared" / "bin" / "docker").read_bytes() == (stubs / "docker").read_bytes()
    if has_image:
        assert run.returncode == 0, run.stderr
        assert '--shard 3/8 --out /results/shard-3' in (where / "lab.log").read_text()
    else:
        assert run.returncode == 5 and not (where / "lab.log").exists()
        assert "the engine has no labcoat/sandbox:" in run.stderr and "--k8s-save-images" in run.stderr


def test_k8s_startup_gives_up_on_an_engine_that_never_answers(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(k8s, "ENGINE_WAIT", 2)
    _, _, _, _, containers = _emit(cli, tmp_path)
    where = tmp_path / "pod"
    (where / "stubs").mkdir(parents=True)
    (where / "stubs" / "docker").write_text("#!/bin/sh\nexit 1\n")
    (where / "stubs" / "docker").chmod(0o755)
    run = run_startup(containers["grader"].command[-1], where, {})
    assert run.returncode == 5 and "the engine did not answer within 2 s" in run.stderr
    assert not (where / "lab.log").exists() and (where / "engine" / "done").exists()


def test_k8s_proxy_socket_and_cli_are_at_paths_the_engine_sees(cli, tmp_path, monkeypatch):
    _, _, _, pod, containers = _emit(cli, tmp_path)
    grader, engine = containers["grader"], containers["engine"]
    shared = next(v for v in pod.volumes if v.name == "shared")
    assert shared.empty_dir is not None
    assert _mounts(grader)[k8s.SHARED] == _mounts(engine)[k8s.SHARED] == "shared"  # the same path in both
    assert _mounts(grader)["/run/engine"] == _mounts(engine)["/run/engine"] == "engine-socket"
    env = {e.name: e.value for e in grader.env}
    assert env["TMPDIR"].startswith(k8s.SHARED + "/") and env["LABCOAT_DOCKER_CLI"].startswith(k8s.SHARED + "/")
    assert f'cp "$(command -v docker)" {env["LABCOAT_DOCKER_CLI"]}' in grader.command[-1]
    assert f"mkdir -p {env['TMPDIR']}" in grader.command[-1]
    # What the wiring relies on: the part-5 proxy's socket (bind-mounted into the runner by dockerd) is made
    # under the grader's TMPDIR, and the runner's CLI is $LABCOAT_DOCKER_CLI.
    import shutil
    import tempfile

    from labcoat.dockerproxy import DockerProxy, Policy
    from labcoat.grading.host_parts import docker_cli

    short = Path(tempfile.mkdtemp(prefix="k8s-", dir="/tmp"))  # a Unix socket's path has at most 107 bytes
    try:
        where = short / "labcoat-shared" / "tmp"
        where.mkdir(parents=True)
        monkeypatch.setenv("TMPDIR", str(where))
        monkeypatch.setattr(tempfile, "tempdir", None)
        with DockerProxy(Policy("labcoat/sandbox:x", frozenset({"labcoat/sandbox:x"}), 256 << 20), {}, "t",
                         upstream=("unix", str(short / "none.sock"))) as proxy:
            assert Path(proxy.socket_path).parent.parent == where and Path(proxy.socket_path).exists()
    finally:
        shutil.rmtree(short, ignore_errors=True)
    cli_copy = tmp_path / "labcoat-shared" / "bin" / "docker"
    cli_copy.parent.mkdir(parents=True)
    cli_copy.write_text("#!/bin/sh\n")
    monkeypatch.setenv("LABCOAT_DOCKER_CLI", str(cli_copy))
    assert docker_cli() == cli_copy


def test_k8s_images_and_engine_options(cli, tmp_path):
    _, _, _, pod, containers = _emit(cli, tmp_path, "--k8s-image", "reg.example/grader:1",
                                     "--k8s-engine-image", "reg.example/dind:27", "--k8s-images-claim", "sandbox-images")
    assert containers["grader"].image == "reg.example/grader:1" and containers["engine"].image == "reg.example/dind:27"
    assert _mounts(containers["grader"])[k8s.IMAGES_DIR] == "sandbox-images"
    claim = next(v for v in pod.volumes if v.name == "sandbox-images")
    assert claim.persistent_volume_claim.claim_name == "sandbox-images" and claim.persistent_volume_claim.read_only
    for option in (["--k8s-image", "x"], ["--k8s-save-images"]):
        result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(tmp_path), *option)
        assert result.exit_code == 2 and "only go(es) with --emit k8s" in result.stderr


def test_the_grader_image_recipe_matches_the_manifests():
    """images/grader/Dockerfile: its COPY sources exist and are not ignored, it puts the CLI and images where the pod looks."""
    recipe = ROOT / "images" / "grader" / "Dockerfile"
    ignored = [line.strip() for line in (recipe.parent / "Dockerfile.dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [line.split()[1:] for line in recipe.read_text().splitlines() if line.startswith("COPY ")]
    sources = [s for c in copies if not c[0].startswith("--from") for s in c[:-1]]
    assert {"pyproject.toml", "README.md", "src/", "labs/", "checks/", "quizzes/", "scenarios/", "images/"} <= set(sources)
    for src in sources:
        if src.startswith("${"):
            continue
        assert (ROOT / src).exists(), src
        assert not any(src.rstrip("/") == pattern.rstrip("/") for pattern in ignored), src
    assert ["${IMAGES}/", k8s.IMAGES_DIR + "/"] in copies  # where the pod's startup loads them from
    assert ["--from=cli", "/usr/local/bin/docker", "/usr/local/bin/docker"] in copies  # on PATH: `command -v docker`
    assert re.search(r"^FROM docker:\d+-cli AS cli$", recipe.read_text(), re.M)  # a static CLI (runs in Debian)


def test_emit_needs_a_batch_and_a_shard_count(cli, tmp_path):
    result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(tmp_path), "--emit", "k8s", str(tmp_path))
    assert result.exit_code == 2 and "--shard 1/N" in result.stderr
