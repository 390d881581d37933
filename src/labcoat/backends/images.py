"""Sandbox images: tagged by a hash of their recipe folder, built offline when missing.

An image folder (`images/<id>/`) holds `image.yaml`, the C sources it compiles and a
Dockerfile. Its tag is `labcoat/<id>:<recipe_hash>`, so an edited recipe gets a new
tag and an unchanged one is found with a single API call (`ensure_image`, the hot path
of `lab start`).

Two ways to build:

* ``debootstrap`` (what "auto" picks when it can; needs root, debootstrap and gcc, and
  no registry, only the Debian mirror): debootstrap the suite with the image's packages,
  trim it, and cache that root filesystem as a tarball keyed by (suite, packages, arch).
  Then compile the C programs statically on the host, add them to a copy of the tarball
  and `docker import` it with CMD/ENV/WORKDIR/LABEL changes. A change to hog.c only
  recompiles and re-imports (seconds); a change to the package list re-runs debootstrap.
* ``dockerfile``: `docker build` of the folder's Dockerfile with SUITE and PACKAGES from
  image.yaml as build args (needs a registry for `debian:<suite>`).

`LABCOAT_IMAGE_METHOD` (auto | debootstrap | dockerfile) overrides method="auto";
`LABCOAT_DEBIAN_MIRROR` overrides the mirror read from the host's apt sources.
Every new image is first checked: each `requires_commands` entry must exist in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from labcoat.content.models import Image
from labcoat.errors import ContentError, EnvironmentProblem, LabError, UsageProblem
from labcoat.paths import cache_dir

Progress = Callable[[str, float | None], None]

METHODS = ("auto", "debootstrap", "dockerfile")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_RECIPE = "labcoat.recipe"
LABEL_IMAGE = "labcoat.image"
# Part of the cached rootfs key: bump it when _trim_rootfs or the debootstrap call changes.
ROOTFS_FORMAT = 1
# How many cached rootfs tarballs to keep (most recently used first).
ROOTFS_KEEP = 2

DOCKER_HINT = "start the Docker engine: scripts/ensure-docker.sh (installs and starts it when missing)"
REGISTRY_HINT = (
    "or, where a registry is reachable, build from the Dockerfile: LABCOAT_IMAGE_METHOD=dockerfile"
)


# ----------------------------------------------------------------------------- naming


def recipe_hash(image_dir: Path) -> str:
    """First 12 hex digits of a sha256 over every file in the folder: relative path and bytes, sorted."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ContentError("image folder does not exist", path=str(image_dir))
    files = sorted(
        (p for p in image_dir.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(image_dir).as_posix(),
    )
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(image_dir).as_posix().encode()
        data = path.read_bytes()
        # Length-prefixed, so no two different folders can feed the same byte stream.
        digest.update(b"%d:%s\0%d:" % (len(rel), rel, len(data)))
        digest.update(data)
    return digest.hexdigest()[:12]


def repository(image_id: str) -> str:
    """`labcoat/<id>`: Docker repository names must be lower case."""
    return f"labcoat/{image_id.lower()}"


def image_tag(image: Image, image_dir: Path) -> str:
    """`labcoat/<id>:<recipe hash>`, the tag `ensure_image` returns."""
    return f"{repository(image.id)}:{recipe_hash(image_dir)}"


# ----------------------------------------------------------------------------- public API


def ensure_image(
    client: Any,
    image: Image,
    image_dir: Path,
    *,
    progress: Progress | None = None,
    method: str = "auto",
    force: bool = False,
    fresh_rootfs: bool = False,
    prune: bool = True,
) -> str:
    """The tag of `image`, built first when Docker does not have it (one API call when it does).

    method: "auto" (LABCOAT_IMAGE_METHOD, else debootstrap when usable, else the Dockerfile),
    "debootstrap" or "dockerfile". force: rebuild even when the tag exists. fresh_rootfs: with
    a debootstrap build, ignore the cached root filesystem (new package versions from the mirror).
    prune: after a build, remove older `labcoat/<id>:*` tags that no container uses.
    """
    image_dir = Path(image_dir)
    tag = image_tag(image, image_dir)
    if not force and _image_exists(client, tag):
        return tag

    say = _Reporter(progress)
    chosen, why_not_debootstrap = _choose_method(method, image, fresh_rootfs=fresh_rootfs)
    with _build_lock(say):
        # Someone else may have built it while we waited for the lock.
        if not force and _image_exists(client, tag):
            return tag
        previous = _image_id(client, tag) if force else None
        _remove_stale_workdirs()
        if chosen == "debootstrap":
            _build_debootstrap(client, image, image_dir, tag, say, fresh_rootfs=fresh_rootfs)
        else:
            _build_dockerfile(client, image, image_dir, tag, say, why_not_debootstrap)
    if previous and previous != _image_id(client, tag):
        # A forced rebuild leaves the old image untagged; drop it unless a container uses it.
        with contextlib.suppress(Exception):
            client.api.remove_image(previous)
    if prune:
        with contextlib.suppress(Exception):
            prune_old(client, image.id, keep=tag)
    say("image ready: " + tag, 1.0)
    return tag


def prune_old(client: Any, image_id: str, keep: str | None = None) -> list[str]:
    """Remove `labcoat/<id>:*` tags other than `keep`; tags still used by a container are kept."""
    from docker.errors import APIError, NotFound

    repo = repository(image_id)
    removed = []
    for img in _call(lambda: client.images.list(name=repo)):
        for tag in img.tags:
            if not tag.startswith(repo + ":") or tag == keep:
                continue
            try:
                client.api.remove_image(tag)
                removed.append(tag)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409:  # 409: a container still uses it
                    raise
    return removed


def debian_mirror(suite: str = "bookworm", sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror to debootstrap from: $LABCOAT_DEBIAN_MIRROR, else the host's apt
    source that carries `suite` (deb822 *.sources or one-line *.list), else deb.debian.org."""
    env = os.environ.get("LABCOAT_DEBIAN_MIRROR", "").strip()
    if env:
        return env.rstrip("/")
    for uri, suites in _apt_sources(sources_dir):
        if suite in suites and re.match(r"^(https?|file):/", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def rootfs_cache_key(image: Image) -> str:
    """Key of the cached debootstrapped rootfs: only what debootstrap and the trim depend on."""
    data = {
        "format": ROOTFS_FORMAT,
        "suite": image.suite,
        "packages": sorted(set(image.packages)),
        "arch": _host_arch(),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_cache_path(image: Image) -> Path:
    return cache_dir() / "rootfs" / f"{image.suite}-{rootfs_cache_key(image)}.tar"


# ----------------------------------------------------------------------------- progress


class _Reporter:
    """Maps a stage's own 0..1 onto the overall fraction; never goes backwards."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.lo, self.hi = 0.0, 1.0
        self.last = 0.0

    def stage(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, message: str, fraction: float | None = None) -> None:
        if self.progress is None:
            return
        overall = None
        if fraction is not None:
            overall = self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0)
            overall = max(overall, self.last)
            self.last = overall
        self.progress(message, overall)


# ----------------------------------------------------------------------------- Docker helpers


def _call(fn: Callable[[], Any]) -> Any:
    """Run one Docker API call; an engine that does not answer becomes EnvironmentProblem."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    try:
        return fn()
    except RequestsConnectionError as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"cannot reach the Docker engine ({reason})", hint=DOCKER_HINT) from None


def _image_exists(client: Any, tag: str) -> bool:
    return _image_id(client, tag) is not None


def _image_id(client: Any, ref: str) -> str | None:
    """The image id `ref` names, or None when Docker has no such image (one API call)."""
    from docker.errors import ImageNotFound

    try:
        attrs = _call(lambda: client.api.inspect_image(ref))
    except ImageNotFound:
        return None
    return str(attrs.get("Id", "")) or ref


def _remove_image_quietly(client: Any, ref: str) -> None:
    with contextlib.suppress(Exception):
        client.api.remove_image(ref, force=True)


def _publish(client: Any, temp_tag: str, tag: str) -> None:
    """Give the verified image its real tag and drop the temporary one (the tag appears atomically)."""
    repo, _, name = tag.rpartition(":")
    _call(lambda: client.api.tag(temp_tag, repo, name, force=True))
    with contextlib.suppress(Exception):
        client.api.remove_image(temp_tag, noprune=True)


def verify_image(client: Any, ref: str, image: Image) -> None:
    """Run a throwaway container (no network) and check every required command is in it."""
    from docker.errors import APIError, ContainerError

    commands = list(dict.fromkeys(image.requires_commands))
    dests = [spec.dest for spec in (*image.compile, *image.install)]
    script = (
        'missing=""; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done; '
        + "".join(f'[ -x {shlex.quote(d)} ] || missing="$missing {shlex.quote(d)}"; ' for d in dests)
        + 'echo "labcoat-missing:$missing"'
    )
    try:
        out = _call(
            lambda: client.containers.run(
                ref,
                ["/bin/sh", "-c", script, "sh", *commands],
                remove=True,
                network_mode="none",
                stdout=True,
                stderr=True,
                mem_limit="64m",
                memswap_limit="64m",
            )
        )
    except (ContainerError, APIError) as exc:
        raise EnvironmentProblem(
            f"the new image {ref} does not run a shell: {exc}",
            hint="the image needs /bin/sh; check the build log above",
        ) from None
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    match = re.search(r"labcoat-missing:(.*)", text)
    if match is None:
        raise EnvironmentProblem(
            f"could not check the commands in {ref}; its output was: {text.strip()[:300]}"
        )
    missing = match.group(1).split()
    if missing:
        raise ContentError(
            f"the built image lacks required command(s): {', '.join(missing)}",
            path=f"images/{image.id}/image.yaml",
            hint="add the Debian package that provides each one to 'packages:' (or a 'compile:' entry)",
        )


# ----------------------------------------------------------------------------- method choice


def _choose_method(method: str, image: Image, *, fresh_rootfs: bool = False) -> tuple[str, str | None]:
    """(method to use, why debootstrap was not usable when "auto" fell back to the Dockerfile)."""
    chosen = method
    if chosen == "auto":
        chosen = os.environ.get("LABCOAT_IMAGE_METHOD", "").strip().lower() or "auto"
    if chosen not in METHODS:
        raise UsageProblem(f"unknown image build method {chosen!r}. Valid methods: {', '.join(METHODS)}.")
    if chosen == "dockerfile" and not image.dockerfile:
        raise ContentError(
            "this image has no Dockerfile",
            path=f"images/{image.id}/image.yaml",
            hint="add 'dockerfile: Dockerfile'",
        )
    if chosen != "auto":
        return chosen, None
    problem = _debootstrap_problem(image, fresh_rootfs=fresh_rootfs)
    if problem is None:
        return "debootstrap", None
    if not image.dockerfile:
        raise problem
    return "dockerfile", f"{problem.message} ({problem.hint})" if problem.hint else problem.message


def _debootstrap_problem(image: Image, *, fresh_rootfs: bool = False) -> EnvironmentProblem | None:
    """Why the offline build cannot run here, or None. With a cached rootfs only gcc and tar are needed."""
    if fresh_rootfs or not rootfs_cache_path(image).is_file():
        if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
            return EnvironmentProblem(
                "debootstrap is not installed",
                hint="apt-get install debootstrap (or run scripts/ensure-docker.sh)",
            )
        if os.geteuid() != 0:
            return EnvironmentProblem(
                "building the image offline (debootstrap) needs root",
                hint="build it once as root (sudo), " + REGISTRY_HINT.removeprefix("or, "),
            )
    if image.compile and shutil.which("gcc") is None:
        return EnvironmentProblem(
            "gcc is not installed (needed to compile the image's C programs)",
            hint="apt-get install gcc libc6-dev",
        )
    if shutil.which("tar") is None:
        return EnvironmentProblem("tar is not installed", hint="apt-get install tar")
    return None


# ----------------------------------------------------------------------------- locking and temp dirs


def _work_root() -> Path:
    path = cache_dir() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _build_lock(say: _Reporter) -> Iterator[None]:
    """One image build at a time on this machine (builds are rare; a waiting `lab start` says so)."""
    lock_path = cache_dir() / "image-build.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another image build on this machine to finish", None)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (debootstrap mounts /proc and /sys in its target)."""
    root = os.path.realpath(path)
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that first detaches mounts inside (never deletes through a mounted /proc or /sys)."""
    if not path.exists():
        return
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = _mounts_under(path)
    if left:
        raise EnvironmentProblem(
            f"cannot clean up {path}: still mounted: {', '.join(left)}",
            hint=f"umount -l {' '.join(left)} && rm -rf {path}",
        )
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale_workdirs() -> None:
    """Work dirs of builds that were SIGKILLed (we hold the build lock, so none is in use)."""
    for stale in _work_root().glob("build-*"):
        with contextlib.suppress(EnvironmentProblem, OSError):
            _remove_tree(stale)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="build-", dir=_work_root()))
    try:
        yield path
    finally:
        _remove_tree(path)


# ----------------------------------------------------------------------------- debootstrap path


def _build_debootstrap(
    client: Any, image: Image, image_dir: Path, tag: str, say: _Reporter, *, fresh_rootfs: bool = False
) -> None:
    recipe = tag.rpartition(":")[2]
    base = rootfs_cache_path(image)
    cached = base.is_file() and not fresh_rootfs
    # Fractions of the whole build per stage; without debootstrap the rest is quick.
    plan = (
        {"rootfs": (0.0, 0.0), "compile": (0.0, 0.15), "tar": (0.15, 0.35), "import": (0.35, 0.85)}
        if cached
        else {"rootfs": (0.0, 0.85), "compile": (0.85, 0.87), "tar": (0.87, 0.90), "import": (0.90, 0.96)}
    )
    verify = (plan["import"][1], 1.0)
    say(f"building {tag} offline from the Debian mirror (debootstrap)", 0.0)
    with _workdir() as work:
        if cached:
            os.utime(base)  # most recently used: kept by _prune_rootfs_cache
            say(f"using the cached root filesystem {base.name}", None)
        else:
            say.stage(*plan["rootfs"])
            _make_rootfs(image, base, work, say)

        say.stage(*plan["compile"])
        compiled = _compile_all(image, image_dir, work, say)
        compiled += [(image_dir / spec.src, spec.dest) for spec in image.install]

        say.stage(*plan["tar"])
        say("adding the compiled programs to the root filesystem", 0.0)
        final_tar = work / "image.tar"
        shutil.copyfile(base, final_tar)
        _append_files(final_tar, compiled)
        say("root filesystem ready", 1.0)

        say.stage(*plan["import"])
        temp_tag = f"{repository(image.id)}:building-{recipe}"
        say(f"importing into Docker ({final_tar.stat().st_size // (1 << 20)} MiB)", 0.0)
        try:
            _import(client, final_tar, temp_tag, image, recipe)
            say("imported", 1.0)
            say.stage(*verify)
            say("checking the required commands in a throwaway container", 0.0)
            verify_image(client, temp_tag, image)
            _publish(client, temp_tag, tag)
        except BaseException:
            _remove_image_quietly(client, temp_tag)
            raise


def _make_rootfs(image: Image, dest: Path, work: Path, say: _Reporter) -> None:
    """debootstrap + trim + tar into `dest` (atomically: a half-written tarball is never cached)."""
    mirror = debian_mirror(image.suite)
    _check_mirror(mirror, image.suite)
    rootfs = work / "rootfs"
    _run_debootstrap(image, mirror, rootfs, say)
    say("trimming the root filesystem (apt lists, caches, docs, man pages, locales)", 0.97)
    _trim_rootfs(rootfs)
    say("packing the root filesystem", 0.98)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    try:
        _tar_rootfs(rootfs, tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    _remove_tree(rootfs)  # free the space now, not at the end
    _prune_rootfs_cache(dest)
    say(f"cached the root filesystem as {dest}", 1.0)


def _check_mirror(mirror: str, suite: str) -> None:
    """Fail early, with a hint, when the mirror does not answer (debootstrap's own error is vague)."""
    if not mirror.startswith(("http://", "https://")):
        return
    url = f"{mirror}/dists/{suite}/InRelease"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise EnvironmentProblem(
                f"the Debian mirror {mirror} has no suite {suite!r} ({url}: 404)",
                hint="check 'suite:' in image.yaml, or set LABCOAT_DEBIAN_MIRROR to a mirror that carries it",
            ) from None
        raise _mirror_problem(mirror, f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _mirror_problem(mirror, str(reason)) from None


def _mirror_problem(mirror: str, reason: str) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"cannot reach the Debian mirror {mirror} ({reason})",
        hint="check the network or proxy (http_proxy is used), set LABCOAT_DEBIAN_MIRROR to a reachable mirror, "
        + REGISTRY_HINT,
    )


# debootstrap's "I:" lines and the share of its run each phase takes. Measured here on bookworm
# minbase + 11 packages (94 packages, 28-49 s in all): package index ~2 s; resolving dependencies
# 5-16 s without any output (shell code parsing the Packages file); downloads ~5 s; extracting ~8 s;
# unpacking ~9 s; configuring ~3 s; then a short second round that unpacks and configures the
# --include packages outside the required set ("the base system").
_INDEX_LINES = (
    ("I: Retrieving InRelease", "reading the release file", 0.01),
    ("I: Retrieving Packages", "downloading the package index", 0.02),
    ("I: Validating Packages", "checking the package index", 0.04),
    ("I: Resolving dependencies", "resolving dependencies", 0.05),
)
_RESOLVE = (0.05, 0.38, 8.0)  # silent phase: creeps from lo towards hi with this time constant (s)
_DEBOOTSTRAP_PHASES = (
    ("retrieve", re.compile(r"^I: (?:Retrieving|Validating) (\S+) \S+$"), 0.40, 0.50),
    ("extract", re.compile(r"^I: Extracting (\S+)\.\.\.$"), 0.50, 0.67),
    ("unpack", re.compile(r"^I: Unpacking (\S+)\.\.\.$"), 0.67, 0.88),
    ("configure", re.compile(r"^I: Configuring (\S+)\.\.\.$"), 0.88, 0.94),
)
_BASE_ROUND = (0.94, 0.97)
_VERBS = {"extract": "extracting", "unpack": "unpacking", "configure": "configuring"}


class _DebootstrapProgress:
    """Turns debootstrap's output (and, while it is silent, the clock) into (message, fraction)."""

    def __init__(self, extra_packages: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.expected = 85 + extra_packages  # bookworm minbase alone is ~85 packages
        self.retrieved: set[str] = set()
        self.counts: dict[str, int] = {}
        self.base_round = False
        self.base_done = 0
        self.clock = clock
        self.resolving_since: float | None = None

    def feed(self, line: str) -> tuple[str, float] | None:
        if line.startswith("I: Unpacking the base system"):
            self.base_round = True
            return "debootstrap: installing the extra packages", _BASE_ROUND[0]
        for name, pattern, lo, hi in _DEBOOTSTRAP_PHASES:
            m = pattern.match(line)
            if m:
                self.resolving_since = None
                return self._step(name, m.group(1), line, lo, hi)
        for prefix, what, frac in _INDEX_LINES:
            if line.startswith(prefix):
                if prefix == "I: Resolving dependencies" and self.resolving_since is None:
                    self.resolving_since = self.clock()
                return f"debootstrap: {what}", frac
        if line.startswith("I: Base system installed successfully"):
            return "debootstrap: done", _BASE_ROUND[1]
        return None

    def tick(self) -> tuple[str, float] | None:
        """An estimate while debootstrap prints nothing (it resolves dependencies silently)."""
        if self.resolving_since is None:
            return None
        lo, hi, tau = _RESOLVE
        elapsed = self.clock() - self.resolving_since
        return "debootstrap: resolving dependencies", lo + (hi - lo) * (1 - math.exp(-elapsed / tau))

    def _step(self, name: str, pkg: str, line: str, lo: float, hi: float) -> tuple[str, float]:
        if name == "retrieve":
            self.retrieved.add(pkg)
            total = max(self.expected, int(len(self.retrieved) * 1.05) + 1)
            done = len(self.retrieved) - (0.5 if line.startswith("I: Retrieving") else 0)
            return f"debootstrap: downloading {pkg} ({len(self.retrieved)})", lo + (hi - lo) * done / total
        if self.base_round:
            # Each extra package is unpacked once and configured once.
            self.base_done += 1
            extra = max(len(self.retrieved) - self.counts.get("extract", 0), 1)
            lo, hi = _BASE_ROUND
            return f"debootstrap: {_VERBS[name]} {pkg}", lo + (hi - lo) * min(
                self.base_done / (2 * extra), 1.0
            )
        self.counts[name] = count = self.counts.get(name, 0) + 1
        # The first round handles the required packages: the ones that were extracted.
        total = (
            len(self.retrieved) if name == "extract" else self.counts.get("extract") or len(self.retrieved)
        )
        total = max(total, count, 1)
        return f"debootstrap: {_VERBS[name]} {pkg} ({count}/{total})", lo + (hi - lo) * count / total


def _run_debootstrap(image: Image, mirror: str, rootfs: Path, say: _Reporter) -> None:
    packages = sorted(set(image.packages))
    cmd = [shutil.which("debootstrap") or "/usr/sbin/debootstrap", "--variant=minbase"]
    if packages:
        cmd.append("--include=" + ",".join(packages))
    cmd += [image.suite, str(rootfs), mirror]
    log_dir = cache_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"debootstrap-{image.id}.log"
    env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
    tracker = _DebootstrapProgress(len(packages))
    tail: deque[str] = deque(maxlen=25)
    say(f"debootstrap {image.suite} from {mirror} (about a minute)", 0.0)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        # Its own session: a Ctrl-C reaches only us, and we stop it in order (its trap unmounts /proc).
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            env=env,
            start_new_session=True,
            preexec_fn=_terminate_with_parent(),
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw.rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=pump, name="debootstrap-output", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    update = tracker.tick()
                    if update:
                        say(*update)
                    continue
                if line is None:
                    break
                log.write(line + "\n")
                tail.append(line)
                update = tracker.feed(line)
                if update:
                    say(*update)
            rc = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            reader.join(timeout=5)
    if rc != 0:
        raise _debootstrap_failure(rc, list(tail), mirror, log_path)


def _terminate_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when we die (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_pdeathsig


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop debootstrap and whatever it runs (its own process group): TERM, then KILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _debootstrap_failure(rc: int, tail: list[str], mirror: str, log_path: Path) -> LabError:
    text = "\n".join(tail)
    errors = [line for line in tail if line.startswith("E:")]
    summary = errors[-1][3:].strip() if errors else (tail[-1] if tail else "no output")
    log_hint = f"full log: {log_path}"
    if "Couldn't find these debs" in text or "Couldn't find package" in text:
        return ContentError(
            f"debootstrap: {summary}",
            hint=f"check the package names under 'packages:' in image.yaml; {log_hint}",
        )
    if re.search(
        r"Failed getting release|Couldn't download|Failed to download|Temporary failure|Could not resolve",
        text,
    ):
        return EnvironmentProblem(
            f"debootstrap could not download from {mirror}: {summary}",
            hint=f"check the network or set LABCOAT_DEBIAN_MIRROR; {REGISTRY_HINT}; {log_hint}",
        )
    if "signed by unknown key" in text or "NO_PUBKEY" in text or ("Release signature" in text and errors):
        return EnvironmentProblem(
            f"debootstrap could not verify the Debian archive: {summary}",
            hint=f"apt-get install debian-archive-keyring; {log_hint}",
        )
    return EnvironmentProblem(f"debootstrap failed (exit {rc}): {summary}", hint=log_hint)


_DPKG_NODOC = """\
# Written by labcoat: keep documentation out of the sandbox image, like debian:*-slim.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""

_APT_CLEAN = """\
// Written by labcoat: no package cache in the sandbox image, like the Debian images on Docker Hub.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
"""


def _empty_dir(path: Path, keep: Callable[[Path], bool] = lambda p: False) -> None:
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        if keep(child):
            continue
        if child.is_dir() and not child.is_symlink():
            _empty_dir(child, keep)
            with contextlib.suppress(OSError):
                child.rmdir()
        else:
            child.unlink(missing_ok=True)


def _trim_rootfs(rootfs: Path) -> None:
    """Remove what a sandbox never needs: apt lists and debs, docs (not copyrights), man, locales, logs."""
    usr_share = rootfs / "usr/share"
    _empty_dir(rootfs / "var/lib/apt/lists", keep=lambda p: p.name in ("partial", "lock"))
    archives = rootfs / "var/cache/apt/archives"
    _empty_dir(archives, keep=lambda p: p.name in ("partial", "lock"))
    _empty_dir(archives / "partial")
    for path in (rootfs / "var/cache/apt").glob("*.bin"):
        path.unlink()
    doc = usr_share / "doc"
    if doc.is_dir():
        for pkg in doc.iterdir():
            if pkg.is_dir() and not pkg.is_symlink():
                _empty_dir(pkg, keep=lambda p, top=pkg: p.name == "copyright" and p.parent == top)
            elif not pkg.is_symlink():
                pkg.unlink()
    for name in ("man", "info", "locale", "groff", "lintian", "linda"):
        _empty_dir(usr_share / name)
    for pattern in ("var/cache/debconf/*-old", "var/lib/dpkg/*-old"):
        for path in rootfs.glob(pattern):
            path.unlink(missing_ok=True)
    for log in (rootfs / "var/log").rglob("*"):
        if log.is_file():
            log.unlink()
    # Docker bind-mounts its own; keep no trace of the build host in the image.
    (rootfs / "etc/hostname").write_text("sandbox\n")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    (rootfs / "etc/resolv.conf").write_text("")
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/labcoat-nodoc").write_text(_DPKG_NODOC)
    (rootfs / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)


def _tar_rootfs(rootfs: Path, dest: Path) -> None:
    cmd = ["tar", "--numeric-owner", "--sort=name", "-C", str(rootfs), "-cf", str(dest)]
    # Docker gives every container its own /dev, /proc, /sys and /run.
    cmd += [f"--exclude=./{d}/*" for d in ("dev", "proc", "sys", "run", "tmp", "var/tmp")]
    cmd.append(".")
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    if result.returncode != 0:
        raise EnvironmentProblem(f"tar of the root filesystem failed: {result.stderr.strip()[-500:]}")


def _prune_rootfs_cache(current: Path) -> None:
    tars = sorted(current.parent.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in tars if p != current][ROOTFS_KEEP - 1 :]:
        old.unlink(missing_ok=True)


def _compile_all(image: Image, image_dir: Path, work: Path, say: _Reporter) -> list[tuple[Path, str]]:
    """gcc -static -O2 each `compile` entry; returns (binary, dest in the image)."""
    out_dir = work / "bin"
    out_dir.mkdir()
    results = []
    gcc = shutil.which("gcc")
    for i, spec in enumerate(image.compile):
        src = image_dir / spec.src
        if gcc is None:
            raise EnvironmentProblem("gcc is not installed", hint="apt-get install gcc libc6-dev")
        out = out_dir / f"{i}-{Path(spec.dest).name}"
        say(f"compiling {spec.src} (gcc -static -O2)", i / max(len(image.compile), 1))
        result = subprocess.run(
            [gcc, "-static", "-O2", "-Wall", "-o", str(out), str(src)],
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        if result.returncode != 0:
            err = result.stderr.strip()
            hint = (
                "apt-get install libc6-dev (static glibc)"
                if "cannot find -lc" in err
                else f"fix {src} (compile it by hand: gcc -static -O2 -Wall {src})"
            )
            raise EnvironmentProblem(f"compiling {spec.src} failed:\n{err[-1500:]}", hint=hint)
        results.append((out, spec.dest))
    say("compiled", 1.0)
    return results


def _append_files(tar_path: Path, files: list[tuple[Path, str]]) -> None:
    """Add binaries (root-owned, 0755) to the rootfs tarball, creating missing parent directories."""
    with tarfile.open(tar_path, "a") as tf:
        names = {n.removeprefix("./").rstrip("/") for n in tf.getnames()}
        now = int(time.time())
        for src, dest in files:
            rel = dest.strip("/")
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent not in names:
                    info = tarfile.TarInfo("./" + parent)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = now
                    tf.addfile(info)
                    names.add(parent)
            info = tarfile.TarInfo("./" + rel)
            info.size = src.stat().st_size
            info.mode = 0o755
            info.mtime = now
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(src, "rb") as fh:
                tf.addfile(info, fh)
            names.add(rel)


def _import(client: Any, tar_path: Path, temp_tag: str, image: Image, recipe: str) -> None:
    """`docker import` through the API, with the image config the sandboxes expect."""
    from docker.errors import APIError

    repo, _, name = temp_tag.rpartition(":")
    changes = [
        'CMD ["sleep", "infinity"]',
        f"ENV PATH={CONTAINER_PATH}",
        "WORKDIR /root",
        f"LABEL {LABEL_RECIPE}={recipe} {LABEL_IMAGE}={image.id}",
    ]
    try:
        out = _call(
            lambda: client.api.import_image(src=str(tar_path), repository=repo, tag=name, changes=changes)
        )
    except APIError as exc:
        raise EnvironmentProblem(f"docker import failed: {exc.explanation or exc}") from None
    for line in str(out).splitlines():
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("error"):
                raise EnvironmentProblem(f"docker import failed: {msg['error']}")


# ----------------------------------------------------------------------------- Dockerfile path


def _build_dockerfile(
    client: Any, image: Image, image_dir: Path, tag: str, say: _Reporter, why_not_debootstrap: str | None
) -> None:
    from docker.errors import APIError, BuildError

    recipe = tag.rpartition(":")[2]
    temp_tag = f"{repository(image.id)}:building-{recipe}"
    say(f"building {tag} from {image.dockerfile} (needs a registry for debian:{image.suite})", 0.0)
    say.stage(0.0, 0.9)
    buildargs = {"SUITE": image.suite, "PACKAGES": " ".join(image.packages)}
    labels = {LABEL_RECIPE: recipe, LABEL_IMAGE: image.id}
    error: str | None = None
    log: deque[str] = deque(maxlen=20)
    try:
        stream = _call(
            lambda: client.api.build(
                path=str(image_dir),
                dockerfile=image.dockerfile,
                tag=temp_tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
            )
        )
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk.get("error")).strip()
                break
            text = str(chunk.get("stream", "")).strip()
            if not text:
                continue
            log.append(text)
            m = re.match(r"^Step (\d+)/(\d+) : (.*)", text)
            if m:
                step, total = int(m.group(1)), int(m.group(2))
                say(f"docker build step {step}/{total}: {m.group(3)[:60]}", (step - 1) / total)
    except (APIError, BuildError) as exc:
        error = str(exc)
    except BaseException:
        _remove_image_quietly(client, temp_tag)
        raise
    if error is not None:
        _remove_image_quietly(client, temp_tag)
        hint = (
            "pulling debian:" + image.suite + " needs a reachable registry (docker pull); "
            "offline, build with debootstrap as root: LABCOAT_IMAGE_METHOD=debootstrap"
        )
        if why_not_debootstrap:
            hint += f"; debootstrap was not used because: {why_not_debootstrap}"
        raise EnvironmentProblem(f"docker build of {image.dockerfile} failed: {error}", hint=hint)
    say.stage(0.9, 1.0)
    say("checking the required commands in a throwaway container", 0.0)
    try:
        verify_image(client, temp_tag, image)
        _publish(client, temp_tag, tag)
    except BaseException:
        _remove_image_quietly(client, temp_tag)
        raise


# ----------------------------------------------------------------------------- host facts


def _host_arch() -> str:
    dpkg = shutil.which("dpkg")
    if dpkg:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([dpkg, "--print-architecture"], capture_output=True, text=True, check=True)
            return out.stdout.strip()
    return os.uname().machine


def _apt_sources(apt_dir: Path) -> list[tuple[str, list[str]]]:
    """(uri, suites) of every enabled `deb` source in sources.list, sources.list.d/*.list and *.sources."""
    entries: list[tuple[str, list[str]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                line = line.split("#", 1)[0].strip()
                line = re.sub(r"\[[^\]]*\]", " ", line)  # options like [arch=amd64 signed-by=...]
                fields = line.split()
                if len(fields) >= 3 and fields[0] == "deb":
                    entries.append((fields[1], [fields[2]]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace")
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                key = None
                for line in stanza.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0] in " \t" and key:
                        fields[key] += " " + line.strip()
                        continue
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
                if (
                    fields.get("enabled", "yes").lower() == "no"
                    or "deb" not in fields.get("types", "").split()
                ):
                    continue
                suites = fields.get("suites", "").split()
                entries.extend((uri, suites) for uri in fields.get("uris", "").split())
    return entries
