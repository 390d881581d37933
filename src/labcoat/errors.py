"""One error hierarchy for everything a user can get wrong or an environment can lack.

The CLI catches `LabError` in one place, prints `message` and `hint` and exits with
`exit_code`. Nothing here prints or logs when it is constructed.
"""

from __future__ import annotations

# Exit codes, documented in README.md ("Exit codes").
OK = 0
CHECKS_FAILED = 1
USAGE = 2
CONTENT_INVALID = 3
ENVIRONMENT = 4
UNGRADABLE = 5
INTERNAL = 70


class LabError(Exception):
    """A problem the user can act on; never shown with a traceback."""

    exit_code = CHECKS_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageProblem(LabError):
    """The command line asked for something that does not exist or does not fit."""

    exit_code = USAGE


class ContentError(LabError):
    """A content file (lab, scenario, quiz, image) is invalid; carries file:line:col."""

    exit_code = CONTENT_INVALID

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        col: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.path = path
        self.line = line
        self.col = col

    @property
    def location(self) -> str:
        """`file:line:col` as far as it is known."""
        parts = [p for p in (self.path, self.line, self.col) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        loc = self.location
        return f"{loc}: {self.message}" if loc else self.message


class ContentErrors(LabError):
    """Several content errors, collected before exiting (`lab validate`)."""

    exit_code = CONTENT_INVALID

    def __init__(self, errors: list[ContentError]) -> None:
        super().__init__(f"{len(errors)} content error(s)")
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) + (f"\n    fix: {e.hint}" if e.hint else "") for e in self.errors)


class EnvironmentProblem(LabError):
    """The machine lacks something the tool needs (Docker, a cgroup file, a capability)."""

    exit_code = ENVIRONMENT


class NotStarted(LabError):
    """A command needs a running sandbox and there is none."""

    exit_code = ENVIRONMENT


class InfrastructureFailure(LabError):
    """Grading could not be carried out; never a student's failure."""

    exit_code = UNGRADABLE
