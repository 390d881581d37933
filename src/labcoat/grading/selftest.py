"""Prove a lab's checks both ways: fail fresh, fail for every decoy, pass after the solution (twice).

This is nbgrader's `validate --invert` and Instruqt's `track test` for labcoat labs.
It runs in a sandbox of its own (kind "selftest"), removed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend
from labcoat.runner.attempt import answers_file, attempt, clear_answers, run_part_script, run_script
from labcoat.runner.lifecycle import Keep, Lifecycle, prepare_session

__all__ = ["attempt", "run_part_script", "run_script", "run_selftest", "start_selftest_session"]

if TYPE_CHECKING:
    from labcoat.checking.run import PartResult
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part
    from labcoat.runner.session import LabSession


@dataclass
class Row:
    part: str
    stage: str
    expected: str  # "fail" | "pass"
    got: str  # "fail" | "pass" | "skipped" | "error"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.got == self.expected or self.got == "skipped"


@dataclass
class Mutation:
    """One generated decoy: the solution's answers with one key set to a plausible wrong value."""

    name: str  # the mistake it stands for, e.g. "MemTotal, not MemAvailable"
    value: str
    got: str  # "fail" (rejected, as it must be) | "pass" | "skipped" | "error"
    detail: str = ""


@dataclass
class MutationFamily:
    """The generated decoys of one answer key, as the check that judges it declared them."""

    part: str
    check: str
    key: str
    tried: list[Mutation] = field(default_factory=list)
    indistinct: list[str] = field(default_factory=list)  # mistakes equal to the truth in this sandbox

    @property
    def rejected(self) -> int:
        return sum(1 for m in self.tried if m.got == "fail")

    @property
    def ok(self) -> bool:
        return all(m.got in ("fail", "skipped") for m in self.tried)

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "check": self.check, "key": self.key, "tried": len(self.tried),
                "rejected": self.rejected, "ok": self.ok, "indistinct": self.indistinct,
                "mutations": [asdict(m) for m in self.tried]}


@dataclass
class SelftestReport:
    lab: str
    rows: list[Row] = field(default_factory=list)
    mutations: list[MutationFamily] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows) and all(f.ok for f in self.mutations)

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.ok, "rows": [{**asdict(r), "ok": r.ok} for r in self.rows],
                "mutations": [f.to_dict() for f in self.mutations],
                "mutations_tried": sum(len(f.tried) for f in self.mutations),
                "mutations_rejected": sum(f.rejected for f in self.mutations)}


def _verdict(result: PartResult) -> tuple[str, str]:
    status = result.status
    failing = [c for c in result.checks if c.status != "passed"]
    detail = "; ".join(f"{c.check}: {c.status}" + (f" ({c.message[:80]})" if c.message and c.status == "error"
                       else "") for c in failing[:3])
    got = {"passed": "pass", "failed": "fail"}.get(status, status)
    return got, detail or (result.skipped_reason or "")


def selftest_lifecycle(backend: Backend, *, keep: Keep = "never") -> Lifecycle:
    """The lifecycle of one selftest's sandboxes: a session label of its own, removed by it."""
    from labcoat.runner.session import L_OWNER, L_SESSION, owner

    return Lifecycle(backend, {L_SESSION: secrets.token_hex(4), L_OWNER: owner()}, keep=keep)


def start_selftest_session(catalog: Catalog, backend: Backend, lab: Lab, life: Lifecycle | None = None) -> LabSession:
    """A prepared session for `lab`, labelled kind=selftest (never mistaken for the learner's).

    Its sandboxes belong to `life`, whose `with` block removes them by their labels when a start
    or the preparation fails (None: a lifecycle of its own that keeps them once prepared).
    """
    from labcoat.runner.session import LabSession, Sandbox, ensure_lab_image, labels_for, machine_spec

    own = life is None  # its own lifecycle: kept on success; a caller's: the caller's `with` decides
    life = life or selftest_lifecycle(backend, keep="on_success")
    seed = str(secrets.randbelow(2**31))

    def start(spec: Any, part_id: str) -> Sandbox:
        tag = ensure_lab_image(catalog, backend, spec.image, lambda m, f: None)
        labels = labels_for("selftest", lab.id, seed, **({"part": part_id} if part_id else {}))
        machine = life.start(machine_spec(spec, tag, None, seed), {**labels, **life.selector})
        return Sandbox(backend, machine, lab.id)

    with life if own else contextlib.nullcontext():
        session = LabSession(lab.id, start(lab.sandbox, ""))
        for part in lab.parts:
            if part.sandbox:
                session.parts[part.id] = start(part.sandbox, part.id)
        prepare_session(catalog, session, lab.parts)
    return session


def part_stages(catalog: Catalog, lab: Lab, part: Part) -> Iterable[tuple[str, str, str | None]]:
    """(stage name, expected verdict, script to run first or None) in selftest order."""
    yield "fresh sandbox", "fail", None
    for decoy in part.decoys:
        yield f"decoy {decoy.name}", "fail", catalog.lab_file(lab.id, decoy.script).read_text()
    solution = catalog.lab_file(lab.id, part.solution).read_text()
    yield "solution", "pass", solution
    yield "solution again", "pass", solution


def run_selftest(
    catalog: Catalog,
    backend: Backend,
    lab: Lab,
    *,
    part_ids: Iterable[str] = (),
    keep: bool = False,
    echo: Callable[[str], Any] | None = None,
    mutate: bool = True,
) -> SelftestReport:
    """Every part of `lab` (or those named), both ways; one Row per stage.

    After the solution passed twice, every plausible wrong value the part's checks declare
    (labcoat.testing: judge_number, judge_choice, plausible) is written in turn into the
    solution's answers, and the part must fail each time (`mutate=False` skips this).
    """
    wanted = set(part_ids)
    parts = [p for p in lab.parts if not wanted or p.id in wanted]
    report = SelftestReport(lab.id)
    with selftest_lifecycle(backend) as life:
        session = start_selftest_session(catalog, backend, lab, life)
        life.keep = "always" if keep else "never"  # --keep: for a look inside, whatever happens next
        try:
            _selftest_parts(catalog, backend, lab, parts, session, report, echo, mutate)
        finally:
            if not keep:
                from labcoat.runner.session import remove_learner_containers

                remove_learner_containers(backend, lab)
    return report


def _selftest_parts(catalog: Catalog, backend: Backend, lab: Lab, parts: list[Part], session: LabSession,
                    report: SelftestReport, echo: Callable[[str], Any] | None, mutate: bool) -> None:
    """The stages of every part, one Row each (and the mutations after a solution that passed twice)."""
    from labcoat.checking.run import run_checks
    from labcoat.runner.steps import prepare_part

    for part in parts:
        if part.follow_along:
            report.rows.append(Row(part.id, "follow-along", "skip", "skipped", "nothing to verify: skipped"))
            if echo:
                echo(f"- {part.id}: a follow-along step, nothing to verify: skipped")
            continue
        sandbox = session.for_part(part.id)
        env = {"LAB_SEED": str(sandbox.seed)}
        for stage, expected, script in part_stages(catalog, lab, part):
            if stage.startswith("decoy") or stage == "solution":
                prepare_part(catalog, sandbox, part)  # each attempt starts from the part's prepared state
                clear_answers(backend, sandbox.machine, part)
            detail = ""
            if script is not None:
                # A provocation "after" the script is a one-time event (an OOM kill): running the
                # solution again must not undo the pass it earned, so it is not provoked twice.
                provoke = not (stage == "solution again" and part.provoke_when == "after")
                ran = attempt(catalog, session, part, script, env, provoke=provoke)
                if ran.exit_status != 0 and expected == "pass" and stage == "solution":
                    detail = f"script exited {ran.exit_status}: {(ran.stderr or ran.stdout).strip()[-200:]}"
            from labcoat.testing import collecting_mutations

            with collecting_mutations() as declared:
                got, why = _verdict(run_checks(catalog, session, lab, [part])[0])
            row = Row(part.id, stage, expected, got, detail or why)
            if expected == "fail" and got == "pass":
                row.detail = _plain_words(part, stage)
            report.rows.append(row)
            if echo:
                echo(f"{'✓' if row.ok else '✗'} {part.id} {stage}: expected {expected}, got {got}")
            if stage == "solution again" and got == "pass" and mutate:
                report.mutations.extend(run_mutations(catalog, session, lab, part, declared, env, echo))


def _with_answer(text: str, key: str, value: str) -> str:
    """The answers file `text` with `key` set to `value` (its last line for that key replaced).

    >>> _with_answer("a: 1\\nb: 2\\n", "b", "7")
    'a: 1\\nb: 7\\n'
    >>> _with_answer("a: 1\\n", "c", "x")
    'a: 1\\nc: x\\n'
    """
    from labcoat.testing import parse_answers

    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if list(parse_answers(lines[i])) == [key]:
            lines[i] = f"{key}: {value}"
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, f"{key}: {value}"]) + "\n"


def run_mutations(catalog: Catalog, session: LabSession, lab: Lab, part: Part, declared: list[dict[str, Any]],
                  env: dict[str, str], echo: Callable[[str], Any] | None = None) -> list[MutationFamily]:
    """Try every declared wrong value on top of the solution's answers; restore them afterwards."""
    from labcoat.checking.run import run_checks

    sandbox = session.for_part(part.id)
    backend, machine = sandbox.backend, sandbox.machine
    path = answers_file(part)
    original = backend.run(machine, ["cat", path], timeout=10).stdout

    def write(text: str) -> None:
        run_script(backend, machine, f'printf "%s" "$LAB_ANSWERS" > {shlex.quote(path)}',
                   env={**env, "LAB_ANSWERS": text})

    families: dict[str, MutationFamily] = {}
    values: dict[str, dict[str, str]] = {}
    for entry in declared:
        family = families.setdefault(entry["key"], MutationFamily(part.id, entry["check"], entry["key"]))
        family.indistinct.extend(n for n in entry["indistinct"] if n not in family.indistinct)
        for value, name in entry["values"].items():
            values.setdefault(entry["key"], {}).setdefault(value, name)
    def replay(key: str, value: str) -> tuple[str, str, list[dict[str, Any]]]:
        from labcoat.testing import collecting_mutations

        write(_with_answer(original, key, value))
        with collecting_mutations() as fresh:  # the family as the check sees it now, at check time
            got, why = _verdict(run_checks(catalog, session, lab, [part])[0])
        return got, why, fresh

    try:
        for key, family in families.items():
            for value, name in values.get(key, {}).items():
                mutation = replay_mutation(key, name, value, lambda v, k=key: replay(k, v))
                if mutation.got == "skipped" and name not in family.indistinct:
                    family.indistinct.append(name)
                family.tried.append(mutation)
            if echo:
                skipped = sum(1 for m in family.tried if m.got == "skipped")
                echo(f"{'✓' if family.ok else '✗'} {part.id} mutations of {key}: {family.rejected}/"
                     f"{len(family.tried)} rejected" + (f" ({skipped} indistinct at check time)" if skipped else ""))
    finally:
        write(original)
    return list(families.values())


def _fresh_family(declared: list[dict[str, Any]], key: str) -> tuple[list[str], dict[str, str]]:
    """(indistinct names, {mistake name: its figure}) that the checks recorded for `key` in one run."""
    indistinct: list[str] = []
    figures: dict[str, str] = {}
    for entry in declared:
        if entry.get("key") != key:
            continue
        indistinct.extend(entry.get("indistinct", []))
        for shown, name in entry.get("values", {}).items():
            figures.setdefault(name, shown)
    return indistinct, figures


Replay = Callable[[str], tuple[str, str, list[dict[str, Any]]]]


def replay_mutation(key: str, name: str, value: str, replay: Replay) -> Mutation:
    """The verdict on one generated decoy: `replay(v)` writes `v` as the answer to `key`, runs the part's
    checks while collecting the families, and returns (got, detail, families as recorded at check time).

    A figure recorded at solution time may have drifted by the replay (part 1's MemFree + Cached moves
    with the host, and so does the truth it must stay away from). So when the replay passes, the
    check's own record of that moment decides: if the check's rule accepts the mistake's current
    figure, it is not a mistake in this sandbox now ("skipped", listed as indistinct); if its figure
    has moved, the current figure is replayed once and that verdict counts; only a mistake accepted
    as it stands at check time is a real failure ("pass").

    >>> def fake(verdicts):
    ...     return lambda v: verdicts[v]
    >>> replay_mutation("k", "x2", "50", fake({"50": ("fail", "c: failed", [])})).got
    'fail'
    >>> m = replay_mutation("k", "near", "50", fake({"50": ("pass", "", [{"key": "k", "values": {},
    ...                                              "indistinct": ["near"]}])}))
    >>> m.got, m.detail.startswith("indistinct at check time")
    ('skipped', True)
    """
    got, why, fresh = replay(value)
    if got != "pass":
        return Mutation(name, value, got, why)
    indistinct, figures = _fresh_family(fresh, key)
    if name in indistinct:
        return Mutation(name, value, "skipped", "indistinct at check time: the check's own rule accepts this "
                                                "mistake's figure as it stands now (not a mistake in this sandbox)")
    current = figures.get(name)
    if current is None or current == value:
        return Mutation(name, value, "pass", why or "accepted")
    moved = f"its figure drifted from {value} to {current} before the check; replayed as it stands now"
    got, why, fresh = replay(current)
    if got != "pass":
        return Mutation(name, current, got, f"{moved}: {why}" if why else moved)
    if name in _fresh_family(fresh, key)[0]:
        return Mutation(name, current, "skipped", f"{moved}: indistinct at check time")
    return Mutation(name, current, "pass", f"{moved}: accepted")


def _plain_words(part: Part, stage: str) -> str:
    """Why a stage that should have failed but passed is a problem, in a sentence."""
    if stage == "fresh sandbox":
        return "the checks PASS ON AN UNTOUCHED SANDBOX: they cannot tell work from no work"
    name = stage.removeprefix("decoy ")
    why = next((d.why for d in part.decoys if d.name == name), "")
    return f"the checks ACCEPT A WRONG ANSWER ({why})"
