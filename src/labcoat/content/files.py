"""Reading files that come from outside: regular files only, a size cap, inside a root.

Content folders, answers files, submissions and imports are untrusted. A FIFO named
`labs/x.yaml` would block a plain `open()` forever, a symlink to /dev/zero would be read
until memory runs out, a dangling or looping symlink raises where nobody expects it, and
`intro: ../../etc/passwd` would print a file from outside the content folder. Every
read of such a file goes through `read_bounded` (and, for a path written in a content
file, `confine` first), so each of those is one clean ContentError.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from labcoat.errors import ContentError

KiB = 1024
MiB = 1024 * KiB
MAX_YAML = 1 * MiB  # a content YAML or an answers file (the course's largest, the quiz, is 55 KB)
MAX_MARKDOWN = 64 * KiB  # rendering is linear but slow (~20 s/MiB for hostile Markdown): keep `lab show` ~1 s
MAX_FILE = 1 * MiB  # scripts, check files, C sources, Dockerfiles


class FileProblem(Exception):
    """Why a file cannot be read, in words; the caller adds where it was named."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _oserror(exc: OSError) -> FileProblem:
    if exc.errno == errno.ENOENT:
        return FileProblem("does not exist (or is a symlink to nothing)", hint="create it, or correct the path")
    if exc.errno == errno.ELOOP:
        return FileProblem("is a symlink loop", hint="point the symlink at a real file")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileProblem("cannot be read: permission denied", hint="make it readable (chmod a+r)")
    if exc.errno == errno.EISDIR:
        return FileProblem("is a folder, not a file")
    return FileProblem(f"cannot be read: {exc.strerror or exc}")


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes_bounded(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; FileProblem otherwise.

    Opened non-blocking (a FIFO cannot block us) and checked with fstat on the open file,
    so what is checked is what is read; read with a cap, so a file growing meanwhile (or
    lying about its size, as /proc files do) still cannot exhaust memory.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _oserror(exc) from None
    except ValueError:  # an embedded NUL byte
        raise FileProblem("is not a valid path (it holds a NUL character)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(f"is {file_kind(st.st_mode)}, not a regular file", hint="content files are plain files")
        if st.st_size > limit:
            raise FileProblem(f"is too large ({st.st_size} bytes; at most {limit} are read)",
                              hint="split it or make it smaller")
        chunks, total = [], 0
        while total <= limit:
            try:
                chunk = os.read(fd, min(limit + 1 - total, 1 << 20))
            except OSError as exc:
                raise _oserror(exc) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise FileProblem(f"is too large (more than {limit} bytes)", hint="split it or make it smaller")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text_bounded(path: Path | str, limit: int) -> str:
    """A regular UTF-8 text file of at most `limit` bytes; FileProblem otherwise (with line:col)."""
    data = read_bytes_bounded(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileProblem(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}, column {col})",
                          hint="save the file as UTF-8") from None


def inside(path: Path | str, root: Path) -> bool:
    """Whether `path`, every symlink followed, lies inside `root` (itself already resolved)."""
    real = os.path.realpath(path)
    base = str(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def confine(root: Path, base: Path, rel: str) -> Path:
    """`base / rel` when it is a regular file inside `root` once symlinks are followed.

    `root` must be resolved. Raises FileProblem saying what is wrong (outside the content
    folder, a symlink loop, missing, not a regular file); the caller names the key.
    """
    if "\0" in rel:
        raise FileProblem("is not a valid path (it holds a NUL character)")
    if os.path.isabs(rel):
        raise FileProblem("is an absolute path; content may only name files inside its own folder",
                          hint="write the path relative to the file that names it")
    path = base / rel
    if not inside(path, root):
        raise FileProblem("points outside the content folder", hint="content may only name files inside "
                          f"{root}; copy the file in and name it with a relative path without '..'")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _oserror(exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"is {file_kind(st.st_mode)}, not a regular file")
    return path


def problem_error(problem: FileProblem, what: str, *, path: str | None = None, line: int | None = None,
                  col: int | None = None) -> ContentError:
    """A ContentError for `what` (e.g. "parts[0].instructions: 1.1/part1.md") at file:line:col."""
    return ContentError(f"{what} {problem.message}", path=path, line=line, col=col, hint=problem.hint)
