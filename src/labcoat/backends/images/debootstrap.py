"""The offline build: debootstrap a root filesystem (cached as a tarball keyed by suite, packages and arch),
trim it, compile the image's C programs statically on the host, add them and `docker import` the result."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labcoat.backends.images.apt import _check_mirror, _host_arch, debian_mirror
from labcoat.backends.images.engine import _import, _publish, _remove_image_quietly, verify_image
from labcoat.backends.images.progress import _DebootstrapProgress
from labcoat.backends.images.recipe import REGISTRY_HINT, _Reporter, repository
from labcoat.backends.images.workdir import _remove_tree, _workdir
from labcoat.content.models import Image
from labcoat.errors import ContentError, EnvironmentProblem, LabError
from labcoat.paths import cache_dir

# Part of the cached rootfs key: bump it when _trim_rootfs or the debootstrap call changes.
ROOTFS_FORMAT = 1
# How many cached rootfs tarballs to keep (most recently used first).
ROOTFS_KEEP = 2


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
