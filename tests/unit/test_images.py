"""The sandbox image recipe, without Docker: recipe hash, Dockerfile/image.yaml agreement,
the static hog (arguments, cgroup-limit guard, allocation), the build helpers and
scripts/ensure-docker.sh (with stub commands)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from labcoat.backends import images
from labcoat.backends.images import apt as images_apt
from labcoat.backends.images import build as images_build
from labcoat.backends.images import debootstrap as images_debootstrap
from labcoat.backends.images import progress as images_progress
from labcoat.backends.images import workdir as images_workdir
from labcoat.content.loader import load_model
from labcoat.content.models import Image
from labcoat.errors import ContentError, EnvironmentProblem, UsageProblem

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "images" / "sandbox"
ENSURE_DOCKER = ROOT / "scripts" / "ensure-docker.sh"


@pytest.fixture(scope="module")
def image() -> Image:
    return load_model(Image, IMAGE_DIR / "image.yaml")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "labcoat"


# ----------------------------------------------------------------------------- image.yaml


def test_image_yaml_is_valid_and_complete(image: Image) -> None:
    assert image.id == "sandbox"
    assert image.suite == "bookworm"
    for pkg in ("procps", "util-linux", "psmisc", "mawk", "time"):
        assert pkg in image.packages
    assert [(c.src, c.dest) for c in image.compile] == [("hog.c", "/usr/local/bin/hog")]
    assert image.dockerfile == "Dockerfile"
    for cmd in ("sh", "bash", "ps", "free", "fincore", "dd", "awk", "hog", "killall"):
        assert cmd in image.requires_commands
    assert len(set(image.packages)) == len(image.packages)


# ----------------------------------------------------------------------------- recipe hash


def test_recipe_hash_is_stable_and_depends_only_on_content(tmp_path: Path) -> None:
    copy = tmp_path / "sandbox"
    shutil.copytree(IMAGE_DIR, copy)
    original = images.recipe_hash(IMAGE_DIR)
    assert re.fullmatch(r"[0-9a-f]{12}", original)
    assert images.recipe_hash(copy) == original  # the folder's location does not count
    old = time.time() - 3600
    for path in copy.iterdir():
        os.utime(path, (old, old))  # neither do timestamps
    assert images.recipe_hash(copy) == original

    hog = copy / "hog.c"
    hog.write_text(hog.read_text() + "\n/* changed */\n")
    changed = images.recipe_hash(copy)
    assert changed != original
    hog.write_text((IMAGE_DIR / "hog.c").read_text())
    assert images.recipe_hash(copy) == original  # back to the same bytes: same hash

    (copy / "extra.txt").write_text("")
    assert images.recipe_hash(copy) != original  # an added (even empty) file counts
    (copy / "extra.txt").rename(copy / "other.txt")
    with_other = images.recipe_hash(copy)
    assert with_other != original
    (copy / "other.txt").unlink()
    (copy / "sub").mkdir()
    (copy / "sub" / "other.txt").write_text("")
    assert images.recipe_hash(copy) not in (original, with_other)  # the path counts, too


def test_recipe_hash_of_missing_folder_is_a_content_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError):
        images.recipe_hash(tmp_path / "nope")


def test_tag_is_lower_case_repo_and_hash(image: Image) -> None:
    tag = images.image_tag(image, IMAGE_DIR)
    assert tag == f"labcoat/sandbox:{images.recipe_hash(IMAGE_DIR)}"
    assert images.repository("Sandbox") == "labcoat/sandbox"


# ----------------------------------------------------------------------------- Dockerfile


def _dockerfile_arg(text: str, name: str) -> str:
    m = re.search(rf'^ARG {name}=(?:"([^"]*)"|(\S+))\s*$', text, re.M)
    assert m, f"ARG {name}=... not found in the Dockerfile"
    return m.group(1) if m.group(1) is not None else m.group(2)


def test_dockerfile_packages_and_suite_match_image_yaml(image: Image) -> None:
    text = (IMAGE_DIR / "Dockerfile").read_text()
    assert sorted(_dockerfile_arg(text, "PACKAGES").split()) == sorted(image.packages)
    assert _dockerfile_arg(text, "SUITE") == image.suite
    assert "${PACKAGES}" in text
    assert "FROM debian:${SUITE}-slim" in text


def test_dockerfile_builds_every_compile_entry(image: Image) -> None:
    text = (IMAGE_DIR / "Dockerfile").read_text()
    for spec in image.compile:
        name = Path(spec.dest).name
        assert re.search(rf"^COPY {re.escape(spec.src)} ", text, re.M), f"{spec.src} is not copied in"
        assert re.search(rf"gcc -static -O2 .*-o /out/{name} .*{re.escape(spec.src)}", text)
        assert re.search(rf"^COPY --from=build /out/{name} {re.escape(spec.dest)}$", text, re.M)
    assert 'CMD ["sleep", "infinity"]' in text
    assert "WORKDIR /root" in text


# ----------------------------------------------------------------------------- hog


@pytest.fixture(scope="module")
def hog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("hog") / "hog"
    result = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(IMAGE_DIR / "hog.c")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def run_hog(hog: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30):
    return subprocess.run(
        [str(hog), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_hog_is_static(hog: Path) -> None:
    out = subprocess.run(["file", str(hog)], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout:
        assert "statically linked" in out.stdout or "static-pie" in out.stdout
    ldd = subprocess.run(["ldd", str(hog)], capture_output=True, text=True)
    assert ldd.returncode != 0 or "not a dynamic executable" in ldd.stdout + ldd.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "missing MIB"),
        (("abc",), "not a whole number"),
        (("0",), "not a whole number"),
        (("-5",), "unknown option"),
        (("4", "5"), "only one MIB"),
        (("--name", "sixteen-chars-xx", "4"), "1 to 15 characters"),
        (("--name",), "needs a value"),
        (("--adj", "1001", "4"), "between -1000 and 1000"),
        (("--step-mib", "0", "4"), "--step-mib"),
        (("--step-ms", "-1", "4"), "--step-ms"),
        (("--bogus", "4"), "unknown option --bogus"),
        (("--exit=yes", "4"), "does not take a value"),
    ],
)
def test_hog_rejects_bad_arguments(hog: Path, args: tuple[str, ...], message: str) -> None:
    result = run_hog(hog, *args)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "usage: hog" in result.stderr


def test_hog_help_and_version(hog: Path) -> None:
    result = run_hog(hog, "--help")
    assert result.returncode == 0 and "usage: hog" in result.stdout
    assert run_hog(hog, "--version").stdout.startswith("hog ")


def _host_memory_limited() -> bool:
    """Whether this process's own memory cgroup has a limit (the same question hog asks)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and Path("/sys/fs/cgroup/memory").is_dir():
            d = Path("/sys/fs/cgroup/memory" + path)
            d = d if d.is_dir() else Path("/sys/fs/cgroup/memory")
            stat = (d / "memory.stat").read_text()
            m = re.search(r"^hierarchical_memory_limit (\d+)$", stat, re.M)
            value = int(m.group(1)) if m else int((d / "memory.limit_in_bytes").read_text())
            return value < 2**62
    for line in lines:
        if line.startswith("0::"):
            d = Path("/sys/fs/cgroup" + line[3:].rstrip("/"))
            while d != Path("/sys/fs/cgroup").parent:
                f = d / "memory.max"
                if f.exists() and f.read_text().strip() != "max":
                    return True
                if d == Path("/sys/fs/cgroup"):
                    break
                d = d.parent
    return False


def test_hog_guard_on_this_host(hog: Path) -> None:
    result = run_hog(hog, "--exit", "--step-ms", "0", "2")
    if _host_memory_limited():
        assert result.returncode == 0, result
        assert re.search(r"limit_mib=\d+", result.stdout)
    else:
        assert result.returncode == 3, result
        assert "refusing to run" in result.stderr
        assert "--i-know-there-is-no-limit" in result.stderr
        assert result.stdout == ""  # it allocated nothing


def test_hog_allocates_and_reports(hog: Path) -> None:
    result = run_hog(
        hog,
        "--name",
        "piggy",
        "--step-mib",
        "3",
        "--step-ms",
        "1",
        "--exit",
        "--i-know-there-is-no-limit",
        "10",
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    pid = re.match(r"hog piggy pid=(\d+) start target_mib=10 limit_mib=\S+ cgroup=\S+ adj=0$", lines[0])
    assert pid, lines[0]
    steps = [
        int(m.group(1)) for line in lines if (m := re.fullmatch(r"hog piggy pid=\d+ rss_mib=(\d+)", line))
    ]
    assert steps == [3, 6, 9, 10]
    assert lines[-1] == "hog piggy reached 10 MiB; exiting"
    assert result.stderr == ""


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 20) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r}; saw {seen}")


def test_hog_holds_sets_comm_and_adj_and_dies_by_sigkill(hog: Path) -> None:
    proc = subprocess.Popen(
        [str(hog), "--name", "victim", "--adj", "500", "--step-ms", "0", "--i-know-there-is-no-limit", "16"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_until(proc, r"holding")  # line-buffered: arrives while it runs
        assert lines[-1] == "hog victim holding 16 MiB"
        assert "adj=500" in lines[0]
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "victim"
        assert Path(f"/proc/{proc.pid}/oom_score_adj").read_text().strip() == "500"
        rss_kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
        assert 16 * 1024 <= rss_kib < 20 * 1024
        time.sleep(0.2)
        assert proc.poll() is None  # it holds
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout and proc.stderr
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _can_lower_oom_adj() -> bool:
    caps = re.search(r"^CapEff:\s+([0-9a-f]+)", Path("/proc/self/status").read_text(), re.M)
    return bool(caps and int(caps.group(1), 16) & (1 << 24))  # CAP_SYS_RESOURCE


def test_hog_negative_adj_warns_or_fails_strictly(hog: Path) -> None:
    common = ("--name", "neg", "--exit", "--step-ms", "0", "--i-know-there-is-no-limit")
    lenient = run_hog(hog, "--adj", "-5", *common, "1")
    strict = run_hog(hog, "--adj", "-5", "--adj-strict", *common, "1")
    if _can_lower_oom_adj():
        assert lenient.returncode == strict.returncode == 0
        assert "adj=-5" in lenient.stdout
    else:
        assert lenient.returncode == 0, lenient
        assert "cannot set oom_score_adj to -5" in lenient.stderr
        assert "CAP_SYS_RESOURCE" in lenient.stderr
        assert "reached 1 MiB" in lenient.stdout
        assert strict.returncode == 4, strict
        assert "cannot set oom_score_adj" in strict.stderr
        assert strict.stdout == ""


def _fake_cgroup(tmp_path: Path, proc_cgroup: str, files: dict[str, str]) -> dict[str, str]:
    root = tmp_path / "cg"
    root.mkdir()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(proc_cgroup)
    return {"HOG_CGROUP_ROOT": str(root), "HOG_PROC_CGROUP": str(proc)}


V1_PROC = "9:pids:/x\n4:memory:/docker/abc\n0::/\n"
V2_PROC = "0::/lab/sandbox\n"


@pytest.mark.parametrize(
    "proc_cgroup, files, limit_mib, version",
    [
        # v1 inside a container: own cgroup mounted at the root of the hierarchy
        (V1_PROC, {"memory/memory.stat": "cache 0\nhierarchical_memory_limit 67108864\n"}, 64, "v1"),
        (V1_PROC, {"memory/memory.limit_in_bytes": "134217728\n"}, 128, "v1"),
        # v1 on a host: the cgroup path below the mount
        (V1_PROC, {"memory/docker/abc/memory.stat": "hierarchical_memory_limit 33554432\n",
                   "memory/memory.stat": "hierarchical_memory_limit 9223372036854771712\n"}, 32, "v1"),
        # v2: the leaf's limit, or an ancestor's when the leaf has none
        (V2_PROC, {"cgroup.controllers": "memory\n", "lab/sandbox/memory.max": "67108864\n"}, 64, "v2"),
        (V2_PROC, {"cgroup.controllers": "memory\n", "lab/sandbox/memory.max": "max\n",
                   "lab/memory.max": "268435456\n"}, 256, "v2"),
        # v2 in a container with its own cgroup namespace
        ("0::/\n", {"cgroup.controllers": "memory\n", "memory.max": "52428800\n"}, 50, "v2"),
    ],
)  # fmt: skip
def test_hog_finds_the_memory_limit(
    hog: Path, tmp_path: Path, proc_cgroup: str, files: dict[str, str], limit_mib: int, version: str
) -> None:
    result = run_hog(hog, "--exit", "--step-ms", "0", "1", env=_fake_cgroup(tmp_path, proc_cgroup, files))
    assert result.returncode == 0, result
    assert f"limit_mib={limit_mib} cgroup={version}" in result.stdout


@pytest.mark.parametrize(
    "proc_cgroup, files, reason",
    [
        (V1_PROC, {"memory/memory.stat": "hierarchical_memory_limit 9223372036854771712\n"}, "has no limit"),
        (V1_PROC, {"memory/memory.limit_in_bytes": "9223372036854771712\n"}, "has no limit"),
        (V2_PROC, {"cgroup.controllers": "memory\n", "lab/sandbox/memory.max": "max\n", "lab/memory.max": "max\n"},
         "has no limit"),
        ("0::/\n", {"cgroup.controllers": "memory\n"}, "has no limit"),
        ("", {}, "no memory cgroup found"),
    ],
)  # fmt: skip
def test_hog_refuses_without_a_limit(
    hog: Path, tmp_path: Path, proc_cgroup: str, files: dict[str, str], reason: str
) -> None:
    env = _fake_cgroup(tmp_path, proc_cgroup, files)
    refused = run_hog(hog, "--exit", "1", env=env)
    assert refused.returncode == 3, refused
    assert reason in refused.stderr
    assert refused.stdout == ""
    allowed = run_hog(hog, "--exit", "--i-know-there-is-no-limit", "1", env=env)
    assert allowed.returncode == 0, allowed
    assert "limit_mib=none" in allowed.stdout


# ----------------------------------------------------------------------------- ensure_image without Docker


class _NotFound(Exception):
    pass


class FakeAPI:
    def __init__(self, exists: bool) -> None:
        self.exists = exists
        self.calls: list[str] = []

    def inspect_image(self, ref: str) -> dict:
        from docker.errors import ImageNotFound

        self.calls.append(f"inspect_image {ref}")
        if not self.exists:
            raise ImageNotFound("no such image")
        return {"Id": "sha256:0"}


class FakeClient:
    def __init__(self, exists: bool) -> None:
        self.api = FakeAPI(exists)


def test_ensure_image_hot_path_is_one_api_call(image: Image, cache: Path) -> None:
    client = FakeClient(exists=True)
    said: list[tuple[str, float | None]] = []
    tag = images.ensure_image(client, image, IMAGE_DIR, progress=lambda m, f: said.append((m, f)))
    assert tag == images.image_tag(image, IMAGE_DIR)
    assert client.api.calls == [f"inspect_image {tag}"]
    assert said == []


def test_ensure_image_unknown_method_is_a_usage_problem(image: Image, cache: Path) -> None:
    with pytest.raises(UsageProblem, match="unknown image build method"):
        images.ensure_image(FakeClient(exists=False), image, IMAGE_DIR, method="podman")


def test_method_choice(image: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCOAT_IMAGE_METHOD", raising=False)
    monkeypatch.setattr(images_build, "_debootstrap_problem", lambda image, **kw: None)
    assert images_build._choose_method("auto", image) == ("debootstrap", None)
    monkeypatch.setenv("LABCOAT_IMAGE_METHOD", "dockerfile")
    assert images_build._choose_method("auto", image) == ("dockerfile", None)
    assert images_build._choose_method("debootstrap", image) == ("debootstrap", None)  # explicit beats the env
    monkeypatch.delenv("LABCOAT_IMAGE_METHOD")
    problem = EnvironmentProblem("debootstrap is not installed", hint="apt-get install debootstrap")
    monkeypatch.setattr(images_build, "_debootstrap_problem", lambda image, **kw: problem)
    method, why = images_build._choose_method("auto", image)
    assert method == "dockerfile" and why and "apt-get install debootstrap" in why
    no_dockerfile = image.model_copy(update={"dockerfile": None})
    with pytest.raises(EnvironmentProblem, match="debootstrap is not installed"):
        images_build._choose_method("auto", no_dockerfile)


def test_debootstrap_problem_names_the_fix(
    image: Image, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "debootstrap" else "/usr/bin/" + name
    )
    monkeypatch.setattr(Path, "exists", lambda self: False)
    problem = images_debootstrap._debootstrap_problem(image)
    assert problem is not None
    assert "debootstrap is not installed" in problem.message
    assert "apt-get install debootstrap" in (problem.hint or "")
    # With the root filesystem cached, debootstrap is not needed (gcc and tar are)...
    rootfs = images.rootfs_cache_path(image)
    rootfs.parent.mkdir(parents=True)
    rootfs.write_bytes(b"")
    assert images_debootstrap._debootstrap_problem(image) is None
    # ...unless a fresh one is asked for.
    assert images_debootstrap._debootstrap_problem(image, fresh_rootfs=True) is not None


def test_rootfs_cache_key_ignores_the_c_sources(image: Image, cache: Path) -> None:
    key = images.rootfs_cache_key(image)
    reordered = image.model_copy(update={"packages": tuple(reversed(image.packages)), "compile": ()})
    assert images.rootfs_cache_key(reordered) == key
    more = image.model_copy(update={"packages": (*image.packages, "strace")})
    assert images.rootfs_cache_key(more) != key
    other_suite = image.model_copy(update={"suite": "trixie"})
    assert images.rootfs_cache_key(other_suite) != key
    assert images.rootfs_cache_path(image).parent == cache / "rootfs"


# ----------------------------------------------------------------------------- mirror


def test_debian_mirror_from_deb822_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCOAT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert images.debian_mirror("bookworm", tmp_path) == "http://mirror.example/debian"
    assert images.debian_mirror("trixie", tmp_path) == images.DEFAULT_MIRROR
    monkeypatch.setenv("LABCOAT_DEBIAN_MIRROR", "http://local.example/debian/")
    assert images.debian_mirror("bookworm", tmp_path) == "http://local.example/debian"


def test_debian_mirror_from_one_line_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABCOAT_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib\n"
    )
    assert images.debian_mirror("bookworm", tmp_path) == "http://one.example/debian"
    assert images.debian_mirror("bookworm", tmp_path / "missing") == images.DEFAULT_MIRROR


def test_unreachable_mirror_hint_names_the_dockerfile_route() -> None:
    with pytest.raises(EnvironmentProblem) as info:
        images_apt._check_mirror("http://127.0.0.1:9/debian", "bookworm")
    assert "cannot reach the Debian mirror http://127.0.0.1:9/debian" in info.value.message
    assert "LABCOAT_IMAGE_METHOD=dockerfile" in (info.value.hint or "")


# ----------------------------------------------------------------------------- debootstrap helpers

DEBOOTSTRAP_OUTPUT = """\
I: Target architecture can be executed
I: Retrieving InRelease
I: Checking Release signature
I: Valid Release signature (key id 4D64FEC119C2029067D6E791F8D2585B8783D481)
I: Retrieving Packages
I: Validating Packages
I: Resolving dependencies of required packages...
I: Checking component main on http://deb.debian.org/debian...
{retrieve}
I: Chosen extractor for .deb packages: dpkg-deb
{extract}
I: Installing core packages...
I: Unpacking required packages...
{unpack}
I: Configuring required packages...
{configure}
I: Unpacking the base system...
I: Unpacking less...
I: Configuring less...
I: Configuring libc-bin...
I: Base system installed successfully.
"""


def test_debootstrap_progress_is_monotonic_and_ends_near_one() -> None:
    pkgs = [f"pkg{i}" for i in range(90)]
    text = DEBOOTSTRAP_OUTPUT.format(
        retrieve="\n".join(f"I: Retrieving {p} 1.0\nI: Validating {p} 1.0" for p in [*pkgs, "less"]),
        extract="\n".join(f"I: Extracting {p}..." for p in pkgs),
        unpack="\n".join(f"I: Unpacking {p}..." for p in pkgs),
        configure="\n".join(f"I: Configuring {p}..." for p in pkgs),
    )
    tracker = images_progress._DebootstrapProgress(extra_packages=11)
    fractions = [u[1] for line in text.splitlines() if (u := tracker.feed(line))]
    assert len(fractions) > 4 * 90
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False))  # never goes backwards
    assert fractions[-1] == pytest.approx(images_progress._BASE_ROUND[1])
    assert max(fractions) <= images_progress._BASE_ROUND[1] + 1e-9


def test_debootstrap_progress_creeps_while_it_resolves_silently() -> None:
    now = [100.0]
    tracker = images_progress._DebootstrapProgress(extra_packages=0, clock=lambda: now[0])
    assert tracker.tick() is None  # nothing to estimate before resolving starts
    start = tracker.feed("I: Resolving dependencies of required packages...")
    assert start is not None
    seen = [start[1]]
    for _ in range(30):
        now[0] += 1
        update = tracker.tick()
        assert update is not None and update[0] == "debootstrap: resolving dependencies"
        seen.append(update[1])
    assert seen == sorted(seen)
    first_download = tracker.feed("I: Retrieving adduser 3.134")
    assert first_download is not None
    assert seen[-1] < first_download[1]  # the estimate never overtakes the next phase
    assert tracker.tick() is None  # it stops once debootstrap talks again


@pytest.mark.parametrize(
    "tail, kind, text",
    [
        (["E: Couldn't find these debs: nosuchpkg"], ContentError, "packages:"),
        (["E: Failed getting release file http://x/dists/bookworm/Release"], EnvironmentProblem,
         "LABCOAT_IMAGE_METHOD=dockerfile"),
        (["E: Release signed by unknown key (key id 123)"], EnvironmentProblem, "debian-archive-keyring"),
        (["W: something", "E: mystery"], EnvironmentProblem, "full log"),
    ],
)  # fmt: skip
def test_debootstrap_failures_carry_a_hint(tail: list[str], kind: type, text: str, tmp_path: Path) -> None:
    error = images_debootstrap._debootstrap_failure(1, tail, "http://x", tmp_path / "log")
    assert isinstance(error, kind)
    assert text in (error.hint or "")


def test_trim_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    files = {
        "usr/share/doc/bash/copyright": "c",
        "usr/share/doc/bash/changelog.gz": "x",
        "usr/share/doc/bash/examples/a": "x",
        "usr/share/man/man1/ls.1.gz": "x",
        "usr/share/locale/de/LC_MESSAGES/x.mo": "x",
        "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease": "x",
        "var/lib/apt/lists/lock": "",
        "var/cache/apt/archives/bash_5.deb": "x",
        "var/cache/apt/pkgcache.bin": "x",
        "var/log/bootstrap.log": "x",
        "etc/hostname": "buildhost\n",
        "etc/resolv.conf": "nameserver 10.0.0.1\n",
        "usr/bin/bash": "keep",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "var/lib/apt/lists/partial").mkdir()
    (root / "var/cache/apt/archives/partial").mkdir()
    images_debootstrap._trim_rootfs(root)
    assert (root / "usr/share/doc/bash/copyright").read_text() == "c"
    assert not (root / "usr/share/doc/bash/changelog.gz").exists()
    assert not (root / "usr/share/doc/bash/examples").exists()
    assert list((root / "usr/share/man").iterdir()) == []
    assert list((root / "usr/share/locale").iterdir()) == []
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert [p.name for p in (root / "var/cache/apt/archives").iterdir()] == ["partial"]
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    assert not (root / "var/log/bootstrap.log").exists()
    assert (root / "etc/hostname").read_text() == "sandbox\n"
    assert (root / "etc/resolv.conf").read_text() == ""
    assert (root / "usr/bin/bash").read_text() == "keep"
    assert "path-exclude /usr/share/doc/*" in (root / "etc/dpkg/dpkg.cfg.d/labcoat-nodoc").read_text()


def test_append_files_adds_root_owned_executables_and_parents(tmp_path: Path) -> None:
    base = tmp_path / "rootfs"
    (base / "usr" / "bin").mkdir(parents=True)
    (base / "usr" / "bin" / "sh").write_text("#!")
    tar_path = tmp_path / "base.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(base), "-cf", str(tar_path), "."], check=True)
    binary = tmp_path / "hog"
    binary.write_bytes(b"\x7fELF fake")
    images_debootstrap._append_files(tar_path, [(binary, "/usr/local/bin/hog"), (binary, "/usr/bin/hog2")])
    with tarfile.open(tar_path) as tf:
        members = {m.name.removeprefix("./").rstrip("/"): m for m in tf.getmembers()}
        assert members["usr/local"].isdir() and members["usr/local/bin"].isdir()
        hog_member = members["usr/local/bin/hog"]
        assert hog_member.isfile() and hog_member.mode == 0o755 and hog_member.uid == 0
        assert tf.extractfile(hog_member).read() == b"\x7fELF fake"  # type: ignore[union-attr]
        assert "usr/bin/sh" in members and "usr/bin/hog2" in members
        assert [m.name for m in tf.getmembers()].count("./usr/bin") <= 1  # no duplicate parent entries


def test_remove_tree_and_stale_workdirs(cache: Path) -> None:
    stale = images_workdir._work_root() / "build-stale"
    (stale / "rootfs" / "etc").mkdir(parents=True)
    images_workdir._remove_stale_workdirs()
    assert not stale.exists()
    with images_workdir._workdir() as work:
        (work / "x").write_text("x")
        kept = work
    assert not kept.exists()
    with pytest.raises(KeyboardInterrupt), images_workdir._workdir() as work:
        interrupted = work
        raise KeyboardInterrupt
    assert not interrupted.exists()


def test_prune_rootfs_cache_keeps_the_newest(cache: Path) -> None:
    folder = cache / "rootfs"
    folder.mkdir(parents=True)
    paths = []
    for i in range(4):
        p = folder / f"bookworm-{i}.tar"
        p.write_text("x")
        os.utime(p, (1000 + i, 1000 + i))
        paths.append(p)
    images_debootstrap._prune_rootfs_cache(paths[0])  # just used, though oldest by mtime
    left = sorted(p.name for p in folder.iterdir())
    assert left == ["bookworm-0.tar", "bookworm-3.tar"]


# ----------------------------------------------------------------------------- ensure-docker.sh


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A PATH where docker, dockerd, pidof and apt-get are stubs recording their calls in $STATE."""
    folder = tmp_path / "bin"
    folder.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    _stub(folder, "docker", 'echo "docker $*" >>"$STATE/calls"; [ -e "$STATE/up" ]')
    # Like the real one it keeps running once it answers (only for a moment: nothing to clean up).
    _stub(
        folder,
        "dockerd",
        'echo "dockerd $*" >>"$STATE/calls"; touch "$STATE/up" "$STATE/running"; exec sleep 3',
    )
    _stub(folder, "pidof", '[ -e "$STATE/running" ] && echo 4242')
    _stub(folder, "apt-get", 'echo "apt-get $*" >>"$STATE/calls"')
    env = {
        "PATH": f"{folder}:/usr/sbin:/usr/bin:/sbin:/bin",
        "STATE": str(state),
        "ENSURE_DOCKER_LOG": str(tmp_path / "dockerd.log"),
        "ENSURE_DOCKER_WAIT": "10",
    }
    return state, env


def _ensure_docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENSURE_DOCKER), "--no-build-tools", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_ensure_docker_is_a_fast_no_op_when_docker_answers(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    (state / "up").touch()
    started = time.monotonic()
    result = _ensure_docker(env)
    assert result.returncode == 0, result
    assert time.monotonic() - started < 2
    assert (state / "calls").read_text().splitlines() == ["docker info"]


needs_no_systemd = pytest.mark.skipif(
    Path("/proc/1/comm").exists() and Path("/proc/1/comm").read_text().strip() == "systemd",
    reason="with systemd as PID 1 the script uses systemctl",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the script starts dockerd only as root")


@needs_no_systemd
@needs_root
def test_ensure_docker_starts_dockerd_and_waits(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _ensure_docker(env)
    assert result.returncode == 0, result
    calls = (state / "calls").read_text().splitlines()
    assert calls.count("dockerd ") == 1
    assert "starting dockerd in the background" in result.stderr
    assert "the Docker engine answers" in result.stderr


@needs_no_systemd
@needs_root
def test_ensure_docker_reports_a_dockerd_that_dies(
    stubs: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    state, env = stubs
    _stub(tmp_path / "bin", "dockerd", 'echo "failed to start daemon: no cgroups"; exit 1')
    result = _ensure_docker(env)
    assert result.returncode == 1, result
    assert "failed to start daemon: no cgroups" in result.stderr
    assert "did not start" in result.stderr
