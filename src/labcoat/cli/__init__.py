"""The `lab` command: a click group whose subcommands are imported only when run.

Each subcommand lives in its own module under `labcoat.cli` and is listed in COMMANDS
with its one-line help, so `lab --help` imports none of them (and so neither Docker,
pytest nor the content catalog).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from labcoat import __version__
from labcoat.app import App
from labcoat.backends import BACKENDS, DEFAULT_BACKEND, describe
from labcoat.errors import INTERNAL, LabError

# name -> (module, attribute, short help shown by `lab --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("labcoat.cli.info", "list_cmd", "List the labs, their parts and whether a sandbox runs."),
    "start": ("labcoat.cli.sandbox", "start", "Start a lab's sandbox, prepare it and show the intro."),
    "status": ("labcoat.cli.info", "status", "Show the running sandbox, its limits and your progress."),
    "show": ("labcoat.cli.info", "show", "Show a part's instructions (or the intro)."),
    "shell": ("labcoat.cli.sandbox", "shell", "Open an interactive shell inside the sandbox."),
    "check": ("labcoat.cli.check", "check", "Check your work on one part or the whole lab."),
    "reset": ("labcoat.cli.sandbox", "reset", "Start over: the whole sandbox, or one part's state."),
    "stop": ("labcoat.cli.sandbox", "stop", "Remove the sandbox and everything it started."),
    "reclaim": ("labcoat.cli.sandbox", "reclaim", "Drop the sandbox's page cache from the host side."),
    "scenarios": ("labcoat.cli.scenario", "scenarios", "List the scenarios that provoke the kernel."),
    "run": ("labcoat.cli.scenario", "run", "Run a scenario and watch the kernel live."),
    "provoke": ("labcoat.cli.scenario", "provoke", "Run a part's scenario in its sandbox (e.g. the OOM kill)."),
    "quiz": ("labcoat.cli.quiz", "quiz", "Take a lab's quiz, or score an answers file."),
    "grade": ("labcoat.cli.grade", "grade", "Grade a submission (or a class) in fresh sandboxes; JUnit/JSON reports."),
    "export": ("labcoat.cli.killercoda", "export", "Export a lab as a Killercoda scenario."),
    "import": ("labcoat.cli.killercoda", "import_cmd", "Turn a Killercoda scenario into a lab."),
    "killercoda": ("labcoat.cli.killercoda", "killercoda", "Play a Killercoda scenario in a stand-in VM (simulator)."),
    "selftest": ("labcoat.cli.check", "selftest", "Prove a lab's checks: fail fresh, fail decoys, pass solution."),
    "doctor": ("labcoat.cli.doctor", "doctor", "Check this machine: Docker, cgroups, PSI, swap, capabilities."),
    "validate": ("labcoat.cli.validate", "validate", "Validate content; every error with file:line:col."),
    "schema": ("labcoat.cli.validate", "schema", "Write the content JSON Schemas (for editors)."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            if os.environ.get("LAB_DEBUG"):
                raise
            return _missing_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing_command(name: str) -> click.Command:
    @click.command(name=name)
    def missing() -> None:
        raise LabError(f"`lab {name}` is not available in this build of labcoat")

    return missing


EPILOG = """\b
A typical session:
  lab start 5.3        start the Memory Management lab
  lab show part1       read part 1
  lab shell            work inside the sandbox
  lab check part1      see what passed, what failed and why
  lab stop             remove the sandbox (progress is kept)

\b
Exit codes: 0 ok, 1 checks failed, 2 usage error, 3 content invalid,
4 environment problem (e.g. Docker not running), 5 ungradable (infrastructure).
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labcoat")
@click.option(
    "--content",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LABCOAT_CONTENT",
    help="Content folder (labs/, checks/, quizzes/, scenarios/, images/). Env: LABCOAT_CONTENT.",
)
@click.option(
    "--backend",
    type=click.Choice(list(BACKENDS)),
    default=DEFAULT_BACKEND,
    envvar="LABCOAT_BACKEND",
    show_default=True,
    help=f"Where sandboxes run: {describe()}. Env: LABCOAT_BACKEND.",
)
@click.option("--debug", is_flag=True, envvar="LAB_DEBUG", help="Show tracebacks. Env: LAB_DEBUG=1.")
@click.pass_context
def cli(ctx: click.Context, content: Path | None, backend: str, debug: bool) -> None:
    """labcoat: hands-on Linux labs in disposable sandboxes.

    Each lab runs in a container with a real memory limit; `lab check` verifies your
    work against the live kernel, with a hint when something is off.
    """
    ctx.obj = App(content=content, backend_name=backend, debug=debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run `lab`, turning every LabError into message + exit code."""
    debug = bool(os.environ.get("LAB_DEBUG")) or "--debug" in (argv or sys.argv[1:])
    _terminate_like_ctrl_c()
    try:
        rv = cli.main(args=argv, prog_name="lab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LabError as exc:
        _report(exc, debug)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception:
        if debug:
            raise
        click.echo("internal error: this is a bug in labcoat; rerun with --debug for the traceback", err=True)
        sys.exit(INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (e.g. a CI job cancelled) unwinds like Ctrl-C, so every cleanup handler runs."""
    import signal
    import threading

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _report(exc: LabError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc)
    from labcoat.report.terminal import clean  # messages may quote content: no control characters

    click.echo(f"error: {clean(exc)}", err=True)
    if exc.hint:
        click.echo(f"hint: {clean(exc.hint)}", err=True)


__all__ = ["cli", "main"]
