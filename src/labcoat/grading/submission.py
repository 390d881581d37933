"""A submission: the files it holds (one script per part, the quiz answers), reading them, and the template to fill in.

Nothing in a submission is run on the host. Nothing here names a lab: a part's script is its id plus `.sh`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labcoat.content.files import FileProblem, confine, inside, read_bytes_bounded
from labcoat.errors import UsageProblem
from labcoat.grading.limits import Limits

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part

QUIZ_FILE = "quiz.yaml"
MAX_SCRIPT_BYTES = 256 * 1024
HOST_ONLY = "not graded automatically: needs the host's Docker, which a submission never gets"


def script_name(part: Part) -> str:
    """The file a submission holds for `part`: its id plus `.sh` (nothing here names a lab)."""
    return f"{part.id}.sh"


def layout(lab: Lab) -> list[str]:
    """The files of a complete submission for `lab`, in order."""
    files = [script_name(p) for p in lab.parts]
    return [*files, QUIZ_FILE] if lab.quiz else files


@dataclass
class Submission:
    """A submission folder as read from disk (nothing in it is run on the host)."""

    path: Path
    student: str
    scripts: dict[str, str | None]  # part id -> script text, None when the file is missing
    problems: dict[str, str]  # part id -> why the file could not be used (too large, ...)
    quiz_file: Path | None

    @classmethod
    def read(cls, path: Path, lab: Lab, student: str | None = None) -> Submission:
        """Read the folder's scripts (bounded, confined to the folder); note why a file could not be used.

        A submission is untrusted: a file that is a symlink out of the folder (to /etc/passwd,
        /dev/zero), a symlink loop, a FIFO, a device, a folder or too large is not read; the
        part then scores nothing and its reason names the file (docs/grading.md).
        """
        path = Path(path)
        if not path.is_dir():
            raise UsageProblem(f"{path} is not a folder", hint="a submission is a folder: `lab grade --template "
                               f"{lab.id} DIR` writes one to fill in")
        root = path.resolve()
        scripts: dict[str, str | None] = {}
        problems: dict[str, str] = {}
        for part in lab.parts:
            name = script_name(part)
            try:
                data = read_confined(root, name, MAX_SCRIPT_BYTES)
            except FileProblem as exc:
                scripts[part.id] = None
                problems[part.id] = f"{name} {exc.message}: not read"
                continue
            scripts[part.id] = None if data is None else data.decode("utf-8", errors="replace")
        quiz: Path | None = None
        try:
            quiz = confined(root, QUIZ_FILE)
        except FileProblem as exc:
            problems[QUIZ_FILE] = f"{QUIZ_FILE} {exc.message}: not read"
        return cls(path, student or safe_name(root.name), scripts, problems, quiz)

    @property
    def quiz_problem(self) -> str | None:
        """Why quiz.yaml was not read (a symlink out of the folder, a FIFO...), or None."""
        return self.problems.get(QUIZ_FILE)


def confined(root: Path, name: str) -> Path | None:
    """The real path of the regular file `name` in the submission folder `root` (resolved), or None when absent.

    Symlinks are followed only while they stay inside the folder; anything else raises
    FileProblem in words: a symlink out of the submission, a loop, a FIFO, a device, a folder.
    """
    file = root / name
    if not os.path.lexists(file):
        return None
    if not inside(file, root):
        raise FileProblem("is a symlink out of the submission")
    confine(root, root, name)  # a loop, missing, a FIFO, a device, a folder: FileProblem in words
    return Path(os.path.realpath(file))


def read_confined(root: Path, name: str, limit: int) -> bytes | None:
    """The bytes of the regular file `name` in the submission folder (see `confined`), at most `limit` of them."""
    real = confined(root, name)
    return None if real is None else read_bytes_bounded(real, limit)


def safe_name(text: str) -> str:
    """A student name usable in labels, file names and CSV cells."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "-", text).strip("-.")
    return cleaned[:64] or "student"


def has_work(script: str | None) -> bool:
    """A script with at least one line that is not blank or a comment (a template left as it is has none)."""
    return bool(script) and any(line.strip() and not line.strip().startswith("#")
                                for line in script.splitlines())  # type: ignore[union-attr]


def template_files(catalog: Catalog, lab: Lab, limits: Limits | None = None) -> dict[str, str]:
    """File name -> text of a submission to fill in: a commented script per part and the quiz answers."""
    limits = limits or Limits()
    files: dict[str, str] = {}
    for part in lab.parts:
        files[script_name(part)] = _script_template(catalog, lab, part, limits)
    if lab.quiz:
        from labcoat.quiz.answers import template

        files[QUIZ_FILE] = template(catalog.quiz(lab.quiz), 0)
    return files


_ANSWER = re.compile(r"answer\s+([a-z][a-z0-9-]*)\s+([A-Za-z_][A-Za-z0-9_]*)\s*([^`\n]*)")


def _script_template(catalog: Catalog, lab: Lab, part: Part, limits: Limits) -> str:
    instructions = catalog.lab_file(lab.id, part.instructions).read_text(encoding="utf-8")
    keys: dict[str, str] = {}
    for m in _ANSWER.finditer(instructions):
        if m.group(1) == part.id:
            keys.setdefault(m.group(2), m.group(3).strip() or "VALUE")
    where = (f"its own sandbox ({part.sandbox.memory} memory limit)" if part.sandbox
             else f"the lab's main sandbox ({lab.sandbox.memory} memory limit)")
    head = [
        "#!/bin/bash",
        f"# {lab.id} {part.id}: {part.title} ({part.points} points)",
        "#",
    ]
    if part.runs_on == "host":
        from labcoat.grading.host_parts import template_lines

        head += template_lines(part, limits)
    else:
        head += [
            "# `lab grade` runs this file with bash, as root, from /root, inside " + where + ",",
            "# after the part was prepared as `lab start` prepares it. There: no network, no",
            f"# capabilities, at most {limits.script_timeout:g} s and {limits.max_output // 1024} KiB of output;"
            " processes it leaves",
            "# running are stopped when it ends. Then the part's checks run, as `lab check " + part.id + "` does.",
        ]
        if part.provoke:
            when = "after this script ends" if part.provoke_when == "after" else "while this script runs"
            head.append(f"# The part's provocation (`lab provoke {part.id}`) runs {when}.")
        head += [
            "#",
            "# Record your answers inside the sandbox with the `answer` command:",
            f"#   answer {part.id} KEY VALUE",
        ]
        if keys:
            head.append("# The keys this part asks for:")
            head += [f"#   answer {part.id} {k} {v}" for k, v in keys.items()]
        head.append("#")
    head.append("# The task, as `lab show " + part.id + "` shows it:")
    head.append("#")
    head += [("# " + line).rstrip() for line in instructions.strip().splitlines()]
    head += ["", "# set -eu   # uncomment to stop at the first failing command", "", "# Your commands here.", ""]
    return "\n".join(head)


def write_template(catalog: Catalog, lab: Lab, folder: Path, *, force: bool = False) -> list[Path]:
    """Write the template into `folder`; refuse to overwrite a file unless `force`."""
    files = template_files(catalog, lab)
    folder = Path(folder)
    existing = [name for name in files if (folder / name).exists()]
    if existing and not force:
        raise UsageProblem(f"{folder} already has {', '.join(existing)}; not overwriting your work",
                           hint="pass --force to overwrite, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
