"""`lab grade`: grade a submission (or a whole class) in fresh sandboxes; terminal, JUnit, JSON reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from labcoat.errors import CHECKS_FAILED, OK, UNGRADABLE, UsageProblem

if TYPE_CHECKING:
    from labcoat.app import App

FolderPath = click.Path(exists=True, file_okay=False, path_type=Path)
OutFile = click.Path(dir_okay=False, path_type=Path, allow_dash=True)


class GradeCommand(click.Command):
    """`lab grade LAB ...`, plus subcommands of its own (`lab grade merge ...`).

    A click Group would read LAB as a subcommand name; this dispatches only the
    names in `subcommands` and leaves everything else to `lab grade LAB`.
    """

    subcommands: dict[str, click.Command] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.subcommands:
            ctx.meta["labcoat.grade.sub"] = (args[0], args[1:])
            return []
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        sub = ctx.meta.pop("labcoat.grade.sub", None)
        if sub is None:
            return super().invoke(ctx)
        name, rest = sub
        command = self.subcommands[name]
        # Its parent is `lab`'s context (for the App and the usage line `lab grade merge ...`).
        with command.make_context(f"{ctx.info_name} {name}", rest, parent=ctx.parent) as sub_ctx:
            return command.invoke(sub_ctx)


@click.command(name="grade", cls=GradeCommand)
@click.argument("lab_id", metavar="LAB")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]")
@click.option("--submission", type=FolderPath, help="Grade this submission folder (one script per part, quiz.yaml).")
@click.option("--batch", type=FolderPath, help="Grade every sub-folder of this folder (one per student).")
@click.option("--template", is_flag=True, help="Write a submission template into DIR, then stop.")
@click.option("--force", is_flag=True, help="With --template: overwrite files that exist.")
@click.option("--part", "part_ids", multiple=True, metavar="PART", help="Grade only these parts (repeatable).")
@click.option("--no-quiz", is_flag=True, help="Leave the quiz out of the grade.")
@click.option("--student", help="The student's name in the reports (default: the folder's name).")
@click.option("--json", "json_file", type=OutFile, help="Write the result as JSON to this file ('-': stdout).")
@click.option("--format", "fmt", type=click.Choice(["labcoat", "gradescope", "prairielearn"]), default="labcoat",
              show_default=True, help="The shape of --json: labcoat's own, Gradescope's or PrairieLearn's results.json.")
@click.option("--junit", "junit_file", type=OutFile, help="Write JUnit XML (a testsuite per part) to this file.")
@click.option("--markdown", "markdown_file", type=OutFile, help="Write the Markdown summary to this file.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("grades"),
              show_default=True, help="With --batch: where the class summary and each student's reports go.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="With --batch: submissions graded at the same time.")
@click.option("--timeout", "script_timeout", type=click.FloatRange(1, 3600), default=60, show_default=True,
              help="Seconds each script may run (wall clock).")
@click.option("--max-output", type=click.IntRange(1024, 16 << 20), default=64 * 1024, show_default=True,
              help="Bytes of output kept per script; a script that writes more is stopped from writing.")
@click.option("--grade-timeout", type=click.FloatRange(10, 86400), default=900, show_default=True,
              help="Seconds for a whole submission; beyond it the submission is ungradable.")
@click.option("--pids-limit", type=click.IntRange(16, 4096), help="Processes per sandbox (default: the lab's).")
@click.option("--cpus", type=click.FloatRange(0.01, 256),
              help="CPUs per sandbox (default: the lab's, capped so that all sandboxes together get at most the "
              "host's CPUs).")
@click.option("--shard", metavar="K/N", help="With --batch: grade only shard K of N (by a hash of each "
              "submission's name); merge the shards' --out folders with `lab grade merge`.")
@click.option("--seed", help="Seed for the sandboxes' random values (the same seed, the same sandbox and score; "
              "with --batch, each student's seed is derived from it). Default: random.")
@click.option("--emit", "emit", type=click.Choice(["k8s"]), help="Instead of grading, write manifests that grade "
              "the --batch class on this platform into DIR (k8s: an indexed Job, one pod per shard, and a deny-all "
              "NetworkPolicy). Needs --shard 1/N for the number of shards. Each pod loads the lab's sandbox images "
              "before grading: see --k8s-save-images.")
@click.option("--k8s-image", "k8s_image", metavar="IMAGE", help="With --emit k8s: the grader image (labcoat, the "
              "docker CLI and the lab's sandbox images; built from images/grader/Dockerfile). Default: a placeholder "
              "to replace.")
@click.option("--k8s-engine-image", "k8s_engine_image", metavar="IMAGE", help="With --emit k8s: the Docker engine "
              "image run beside the grader. Default: docker:27-dind.")
@click.option("--k8s-images-claim", "k8s_images_claim", metavar="CLAIM", help="With --emit k8s: a "
              "PersistentVolumeClaim holding the sandbox images' archives (mounted where the grader image keeps them).")
@click.option("--k8s-save-images", is_flag=True, help="With --emit k8s: also `docker save` the lab's sandbox images "
              "into DIR/images/ (built first when missing; needs Docker here), for the grader image or the claim.")
@click.option("--verbose", "-v", is_flag=True, help="Also show each script's output and every quiz question.")
@click.option("--quiet", "-q", is_flag=True, help="No report in the terminal (files and exit code only).")
@click.pass_obj
def grade(app: App, lab_id: str, folder: Path | None, submission: Path | None, batch: Path | None, template: bool,
          force: bool, part_ids: tuple[str, ...], no_quiz: bool, student: str | None, json_file: Path | None,
          fmt: str, junit_file: Path | None, markdown_file: Path | None, out_dir: Path, jobs: int,
          script_timeout: float, max_output: int, grade_timeout: float, pids_limit: int | None, cpus: float | None,
          shard: str | None, seed: str | None, emit: str | None, k8s_image: str | None, k8s_engine_image: str | None,
          k8s_images_claim: str | None, k8s_save_images: bool, verbose: bool, quiet: bool) -> None:
    """Grade a student's submission for LAB in fresh sandboxes, or a whole class with --batch.

    \b
    Examples:
      lab grade --template 5.3 my-submission      write a submission to fill in
      lab grade 5.3 --submission my-submission    grade it (terminal report)
      lab grade 5.3 --submission DIR --junit report.xml --json results.json
      lab grade 5.3 --submission DIR --json results.json --format gradescope
      lab grade 5.3 --batch submissions/ --jobs 2 --out grades/
      lab grade 5.3 --batch submissions/ --shard 2/3 --out grades-2/   one of 3 CI runners
      lab grade merge grades-1 grades-2 grades-3 --out grades/        the class from its shards
      lab grade 5.3 --batch submissions/ --shard 1/8 --emit k8s k8s/  Kubernetes manifests (docs/scale.md)

    \b
    A submission is a folder with one script per part (part1.sh, ...; what you would
    type for that part, run inside the part's sandbox) and quiz.yaml (the answers file
    `lab quiz LAB --template` writes). Scripts never run on this host; parts that need
    the host's Docker are reported as not graded automatically. docs/grading.md has the
    layout, the limits, the JSON shapes and CI examples.

    \b
    Exit codes: 0 the submission reached the lab's pass mark, 1 it did not, 2 usage,
    5 ungradable (an infrastructure problem: never the student's zero; also when this
    machine is short of disk, memory or PIDs before grading starts). With --batch:
    0 when every submission was graded, 5 when any was ungradable.
    """
    ctx = click.get_current_context()
    lab = app.catalog.lab(lab_id)
    modes = [name for name, given in (("--submission", submission), ("--batch", batch), ("--template", template))
             if given]
    if len(modes) > 1:
        raise UsageProblem(f"{' and '.join(modes)} do not go together", hint="grade one submission, a batch, or "
                           "write a template")
    if template:
        _template(app, lab, folder or submission, force)
        return
    from labcoat.grading.shard import parse_shard

    shards = parse_shard(shard)
    if shards and batch is None and not emit:
        raise UsageProblem("--shard goes with --batch", hint="a shard is a part of a class")
    k8s_given = [opt for opt, value in (("--k8s-image", k8s_image), ("--k8s-engine-image", k8s_engine_image),
                                         ("--k8s-images-claim", k8s_images_claim),
                                         ("--k8s-save-images", k8s_save_images)) if value]
    if k8s_given and emit != "k8s":
        raise UsageProblem(f"{', '.join(k8s_given)} only go(es) with --emit k8s")
    if emit:
        if folder is None or batch is None or shards is None:
            raise UsageProblem(f"--emit {emit} needs --batch DIR, --shard 1/N and a folder to write into",
                               hint=f"lab grade {lab_id} --batch submissions --shard 1/8 --emit {emit} k8s/")
        _emit_k8s(app, lab, folder, shards[1], jobs, list(part_ids), not no_quiz, seed, script_timeout,
                  grade_timeout, k8s_image, k8s_engine_image, k8s_images_claim, k8s_save_images)
        return
    if folder is not None:
        raise UsageProblem(f"unexpected argument {folder}", hint=f"grade a folder with `lab grade {lab_id} "
                           f"--submission {folder}`; write a template with `lab grade --template {lab_id} {folder}`")
    if force:
        raise UsageProblem("--force only goes with --template")
    if not modes:
        raise UsageProblem("nothing to grade", hint=f"`lab grade {lab_id} --submission DIR`, `lab grade {lab_id} "
                           f"--batch DIR`, or `lab grade --template {lab_id} DIR` for a template")
    from labcoat.backends import DEFAULT_BACKEND, backend_class

    if not backend_class(app.backend_name).is_container:
        raise UsageProblem("`lab grade` runs submissions in container sandboxes only",
                           hint=f"the {app.backend_name} backend would run a student's scripts on this host; "
                           f"use --backend {DEFAULT_BACKEND}")
    # The grader's own sandboxes, and each `lab grade` process of a batch, use this backend too.
    os.environ["LABCOAT_BACKEND"] = app.backend_name
    known = {p.id for p in lab.parts}
    for pid in part_ids:
        if pid not in known:
            raise UsageProblem(f"lab {lab.id} has no part {pid!r}", hint=f"its parts: {', '.join(p.id for p in lab.parts)}")
    from labcoat.grading.limits import Limits

    limits = Limits(script_timeout=script_timeout, max_output=max_output, pids_limit=pids_limit, cpus=cpus,
                    grade_timeout=grade_timeout)
    if batch is not None:
        if json_file or junit_file or markdown_file or student or fmt != "labcoat":
            raise UsageProblem("--json, --junit, --markdown, --format and --student are for one submission",
                               hint="with --batch every student's reports go to --out DIR/STUDENT/")
        ctx.exit(_batch(app, lab, batch, out_dir, jobs, list(part_ids), not no_quiz, limits, quiet, shards, seed))
    if jobs != 1:
        raise UsageProblem("--jobs only goes with --batch")
    assert submission is not None
    ctx.exit(_single(app, lab, submission, list(part_ids), not no_quiz, limits, student, json_file, fmt, junit_file,
                     markdown_file, verbose, quiet, seed))


def _emit_k8s(app: App, lab: Any, folder: Path, n: int, jobs: int, part_ids: list[str], quiz: bool,
              seed: str | None, script_timeout: float, grade_timeout: float, image: str | None,
              engine_image: str | None, images_claim: str | None, save: bool) -> None:
    from labcoat.grading import k8s

    if part_ids:
        known = {p.id for p in lab.parts}
        unknown = [pid for pid in part_ids if pid not in known]
        if unknown:
            raise UsageProblem(f"lab {lab.id} has no part {unknown[0]!r}",
                               hint=f"its parts: {', '.join(p.id for p in lab.parts)}")
    images = k8s.lab_images(app.catalog, lab, part_ids)
    written = k8s.write_manifests(folder, lab, n=n, jobs=jobs, part_ids=part_ids, quiz=quiz, seed=seed,
                                  script_timeout=script_timeout, grade_timeout=grade_timeout,
                                  image=image or k8s.GRADER_IMAGE, engine_image=engine_image or k8s.ENGINE_IMAGE,
                                  images=images, images_claim=images_claim)
    if save:
        written += k8s.save_images(app.catalog, lab, folder / "images", part_ids,
                                   say=lambda m: app.err_console.print(f"[dim]{m}[/]", highlight=False))
    say = app.err_console.print
    say(f"Wrote {', '.join(str(p) for p in written)}.")
    where = (f"from the claim {images_claim} (its files: {', '.join(i + '.tar' for i in images)})" if images_claim
             else f"from {k8s.IMAGES_DIR} in the grader image")
    say(f"Each pod's engine starts empty: the grader loads the sandbox images ({', '.join(images.values())}) "
        f"{where} before grading, and stops with exit 5 when one is missing.")
    if not save:
        say(f"Save them with `lab grade {lab.id} --batch ... --emit k8s {folder} --k8s-save-images` "
            f"(writes {folder}/images/, needs Docker here).")
    if not image and not images_claim:
        say(f"Build the grader image from the repository root: docker build -f images/grader/Dockerfile "
            f"--build-arg IMAGES={folder}/images -t REGISTRY/labcoat-grader . (IMAGES is a folder inside the "
            "repository, the build context); then give it with --k8s-image.")
    say(f"Then `kubectl apply -f {folder}` (docs/scale.md, \"Kubernetes\", says what to edit first).")


def _template(app: App, lab: Any, folder: Path | None, force: bool) -> None:
    from labcoat.grading.submission import write_template

    if folder is None:
        raise UsageProblem("--template needs a folder to write into", hint=f"lab grade --template {lab.id} DIR")
    written = write_template(app.catalog, lab, folder, force=force)
    app.err_console.print(f"Wrote {len(written)} files into {folder}: {', '.join(p.name for p in written)}")
    app.err_console.print(f"Fill them in, then: lab grade {lab.id} --submission {folder}")


def _write(path: Path, text: str) -> None:
    if str(path) == "-":
        click.echo(text, nl=False)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageProblem(f"cannot write {path}: {exc.strerror}") from None


def _single(app: App, lab: Any, submission: Path, part_ids: list[str], quiz: bool, limits: Any,
            student: str | None, json_file: Path | None, fmt: str, junit_file: Path | None,
            markdown_file: Path | None, verbose: bool, quiet: bool, seed: str | None = None) -> int:
    from labcoat.grading import reports
    from labcoat.grading.grade import grade_submission

    console = app.err_console if json_file is not None and str(json_file) == "-" else app.console

    def say(message: str) -> None:
        if not quiet:
            app.err_console.print(f"[dim]{message}[/]", highlight=False)

    result = grade_submission(app.catalog, lab, submission, part_ids=part_ids, quiz=quiz, limits=limits,
                              student=student, say=say, seed=seed)
    data = result.to_dict()
    if json_file is not None:
        shaped = reports.to_json(data, fmt)
        if shaped is None:
            app.err_console.print(f"[magenta]not writing {json_file}[/]: Gradescope has no 'ungradable' result, and "
                                  "a missing results.json makes it report the autograder failed instead of a score")
        else:
            _write(json_file, reports.dumps(shaped))
    if junit_file is not None:
        _write(junit_file, reports.junit_xml(data))
    md = reports.markdown(data)
    if markdown_file is not None:
        _write(markdown_file, md)
    reports.append_step_summary(md, os.environ.get("GITHUB_STEP_SUMMARY"))
    if not quiet:
        reports.print_grade(console, data, verbose=verbose)
    if not result.gradable:
        return UNGRADABLE
    return OK if result.passed else CHECKS_FAILED


def _batch(app: App, lab: Any, folder: Path, out: Path, jobs: int, part_ids: list[str], quiz: bool, limits: Any,
           quiet: bool, shard: tuple[int, int] | None = None, seed: str | None = None) -> int:
    from labcoat.grading import reports
    from labcoat.grading.batch import grade_batch
    from labcoat.grading.shard import write_class

    def say(message: str) -> None:
        if not quiet:
            app.err_console.print(f"[dim]{message}[/]", highlight=False)

    grades = grade_batch(app.catalog, lab, folder, out, jobs=jobs, part_ids=part_ids, quiz=quiz, limits=limits,
                         say=say, shard=shard, seed=seed)
    wanted = set(part_ids)
    info = {"id": lab.id, "title": lab.title, "pass_mark": lab.pass_mark,
            "parts": [p.id for p in lab.parts if not wanted or p.id in wanted]}
    summary = write_class(out, info, grades, shard=shard,
                          warn=lambda text: app.err_console.print(f"[yellow]warning:[/] {text}"))
    if not quiet:
        reports.print_class(app.console, summary)
        app.console.print(f"Reports in {out}/: summary.csv, summary.json, summary.md, junit.xml, histogram.png, "
                          "STUDENT/")
    return UNGRADABLE if summary["ungradable"] else OK


@click.command(name="merge")
@click.argument("shards", nargs=-1, required=True, type=FolderPath, metavar="OUT...")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the class goes: summary.csv/json/md, junit.xml, histogram.png and every STUDENT/ folder.")
@click.option("--allow-partial", is_flag=True, help="Merge even when some shards of the run are missing.")
@click.option("--quiet", "-q", is_flag=True, help="No class table in the terminal.")
@click.pass_obj
def merge(app: App, shards: tuple[Path, ...], out_dir: Path, allow_partial: bool, quiet: bool) -> None:
    """Merge the --out folders of `lab grade --batch --shard K/N` runs into the class summary.

    \b
    Writes exactly what an unsharded `lab grade --batch` writes (the CSV, JSON and
    Markdown summaries, the class JUnit XML, the histogram, $GITHUB_STEP_SUMMARY) and copies every student's
    reports. Needs no Docker and no content folder. Exit codes: 0 every submission
    was graded, 5 some were ungradable, 2 a shard is missing, twice, or of another run.
    """
    from labcoat.grading import reports
    from labcoat.grading.shard import merge as merge_shards

    summary = merge_shards(list(shards), out_dir, allow_partial=allow_partial,
                           warn=lambda text: app.err_console.print(f"[yellow]warning:[/] {text}"))
    if not quiet:
        reports.print_class(app.console, summary)
        app.console.print(f"Merged {len(shards)} shard(s): {summary['count']} submission(s) in {out_dir}/")
    click.get_current_context().exit(UNGRADABLE if summary["ungradable"] else OK)


GradeCommand.subcommands = {"merge": merge}
