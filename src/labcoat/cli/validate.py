"""`lab validate` and `lab schema`: content authors' tools."""

from __future__ import annotations

from pathlib import Path

import click

from labcoat.app import App
from labcoat.errors import CONTENT_INVALID

KINDS = {"labs": "Lab", "scenarios": "Scenario", "quizzes": "Quiz", "images": "Image"}


def _validate_file(path: Path) -> list:
    """Errors of one YAML file, its kind told by its folder (labs/, scenarios/, ...)."""
    from labcoat.content import models, quiz
    from labcoat.content.loader import load_model_collecting
    from labcoat.errors import UsageProblem

    folder = path.parent.name if path.parent.name in KINDS else path.parent.parent.name
    if folder not in KINDS:
        raise UsageProblem(f"cannot tell what {path} is", hint="pass a content folder, or a file under labs/, "
                           "scenarios/, quizzes/ or images/<id>/")
    model = getattr(quiz if folder == "quizzes" else models, KINDS[folder])
    errors: list = []
    load_model_collecting(model, path, errors, str(path))
    return errors


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def validate(ctx: click.Context, path: Path | None, as_json: bool) -> None:
    """Validate content: a content folder (default: the one in use) or one YAML file.

    Every error is listed with file:line:col and how to fix it; exit code 3 when any.
    Checks the schema of every file and every cross reference (images, scenarios,
    check files, instruction files, solutions and decoys exist).
    """
    from labcoat.content.catalog import Catalog

    app: App = ctx.obj
    if path is not None and not path.is_file() and not path.is_dir():
        from labcoat.errors import UsageProblem

        raise UsageProblem(f"{path} is neither a file nor a folder", hint="pass a content folder or one YAML file")
    if path is not None and path.is_file():
        errors = _validate_file(path)
        root = path
        counts = "1 file"
    else:
        catalog = Catalog.load(path or app.content, strict=False)
        errors = catalog.errors
        root = catalog.root
        counts = (f"{len(catalog.labs)} lab(s), {len(catalog.scenarios)} scenario(s), "
                  f"{len(catalog.quizzes)} quiz(zes), {len(catalog.images)} image(s)")
    if as_json:
        app.print_json({"valid": not errors, "root": str(root), "errors": [
            {"file": e.path, "line": e.line, "col": e.col, "message": e.message, "fix": e.hint} for e in errors]})
    elif errors:
        from labcoat.report.terminal import clean

        for e in errors:  # messages quote content: shown with its control characters made visible
            click.echo(clean(e), err=True)
            if e.hint:
                click.echo(f"    fix: {clean(e.hint)}", err=True)
        click.echo(clean(f"{len(errors)} error(s) in {root}"), err=True)
    else:
        from labcoat.report.terminal import plain

        app.err_console.print(f"[green]✓[/] {plain(root)}: {counts}, all valid")
    if errors:
        ctx.exit(CONTENT_INVALID)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas"),
              show_default=True, help="Folder to write the *.schema.json files into.")
@click.pass_obj
def schema(app: App, out: Path) -> None:
    """Write the JSON Schemas of labs, scenarios, quizzes and images (for editor completion)."""
    from labcoat.content.schema import export

    for p in export(out):
        click.echo(p)
