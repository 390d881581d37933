"""Build work folders under the cache (one build at a time, under a lock), removed even after a crash."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from labcoat.backends.images.recipe import _Reporter
from labcoat.errors import EnvironmentProblem
from labcoat.paths import cache_dir

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
