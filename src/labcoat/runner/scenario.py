"""Run a scenario: provoke the kernel in a sandbox and observe what it really does.

The runner carries out the scenario's steps (`runner.steps` for the ones that act, this
module for the ones that observe), samples the sandbox's memory cgroup in the background
from the host side, watches the OOM-kill counter every few milliseconds, and evaluates
the scenario's expectations against what was measured. What cannot be observed on a
host (no PSI, no host view of the cgroup) is reported as such, never invented.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, Machine
from labcoat.errors import LabError
from labcoat.hostinfo import time_scale
from labcoat.runner.observe import (  # noqa: F401 (re-exported: the public names of scenario runs)
    FAILED,
    PASSED,
    SIZE_METRICS,
    UNOBSERVABLE,
    Expectation,
    KmsgTail,
    Observer,
    RunRecord,
    Watch,
    metrics_of,
)
from labcoat.runner.steps import StepContext, StepFailed, draw_vars, run_step, substitute
from labcoat.units import parse_size

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Scenario, Step

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "==": operator.eq, "<=": operator.le, "<": operator.lt, "!=": operator.ne,
}


def resolve_value(metric: str, value: Any, variables: dict[str, str]) -> float:
    value = substitute(value, variables)
    if isinstance(value, str):
        return float(parse_size(value)) if metric in SIZE_METRICS or not value.replace(".", "").isdigit() \
            else float(value)
    return float(value)


class ScenarioRunner:
    """Carries out one scenario in one sandbox and fills a RunRecord."""

    def __init__(
        self,
        scenario: Scenario,
        backend: Backend,
        machine: Machine,
        *,
        seed: int = 0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        ask_prediction: Callable[[list[dict[str, Any]]], int | None] | None = None,
    ) -> None:
        self.scenario, self.backend, self.machine = scenario, backend, machine
        self.emit = on_event or (lambda kind, data: None)
        self.ask_prediction = ask_prediction
        self.record = RunRecord(scenario.id, scenario.title, machine.name, vars=draw_vars(scenario, seed))
        self.ctx = StepContext(backend, machine, self.record.vars, on_event=self._step_event)
        self.watch: Watch | None = None
        self.t0 = time.monotonic()

    def _step_event(self, kind: str, data: dict[str, Any]) -> None:
        event = {"kind": kind, "t": round(time.monotonic() - self.t0, 4), **data}
        self.record.events.append(event)
        self.emit(kind, event)

    def run(self) -> RunRecord:
        """Every step in order; the record says passed/failed/error. Never leaves the watch running."""
        from labcoat.hostinfo import missing

        lacking = missing(self.scenario.requires)
        if lacking:
            self.record.status = "skipped"
            self.record.reason = "; ".join(f.detail for f in lacking)
            return self.record
        try:
            for i, step in enumerate(self.scenario.steps):
                self.emit("step", {"index": i, "kind": step.kind, "total": len(self.scenario.steps)})
                self.do(step)
            if self.watch:
                self.watch.settle()
            self.record.status, self.record.reason = judge(self.record.expectations)
        except StepFailed as exc:
            self.record.status, self.record.reason = "error", exc.message
        except KeyboardInterrupt:
            self.record.status, self.record.reason = "interrupted", "stopped with Ctrl-C"
            raise
        finally:
            if self.watch:
                self.watch.stop.set()
                self.watch.join(timeout=5)
            self.record.duration = round(time.monotonic() - self.t0, 3)
        return self.record

    # ------------------------------------------------------------------ observing steps

    def do(self, step: Step) -> None:
        handler = getattr(self, f"_{step.kind}", None)
        if handler is None:
            run_step(self.ctx, step)
        else:
            handler(step.args)

    def _sample(self, args: Any) -> None:
        if self.watch:
            return
        observer = Observer(self.backend, self.machine)
        self.record.observed_from = observer.where
        try:
            first = observer.snapshot()
        except (LabError, OSError, ValueError) as exc:
            raise StepFailed(f"cannot read the sandbox's memory cgroup: {exc}") from None
        self.record.cgroup_version = first.version
        if first.pressure is None:
            self.record.unobservable.append(
                "the sandbox's own PSI (its cgroup's memory.pressure): PSI shown is host-wide"
                if first.system_pressure is not None else "PSI (the kernel exposes none)")
        self.watch = Watch(observer, self.record, self.t0, args.interval, self.emit)
        if not self.record.kernel_log:
            self.record.unobservable.append("OOM victims' names and kernel timestamps (/dev/kmsg needs host root)")
        self.watch.take_sample()
        self.watch.check_oom()  # the counter's starting value
        self.watch.start()

    def _need_watch(self) -> Watch:
        if self.watch is None:
            raise StepFailed("this step needs a `sample` step before it (nothing is being measured)")
        return self.watch

    def _mark(self, args: Any) -> None:
        watch = self._need_watch()
        watch.check_oom()
        watch.fresh()
        with watch.lock:
            index = len(self.record.samples) - 1
            t = self.record.samples[index]["t"] if index >= 0 else round(time.monotonic() - self.t0, 4)
        self.record.marks[args.label] = {"t": t, "sample": index}
        self._step_event("mark", {"label": args.label})

    def _since(self, label: str | None) -> tuple[float | None, int]:
        """(time, first sample index) of a mark; (None, 0) for no mark."""
        if label is None:
            return None, 0
        mark = self.record.marks.get(label)
        if mark is None:
            raise StepFailed(f"no `mark` labelled {label!r} before this step")
        return mark["t"], max(0, int(mark["sample"]))

    def _wait_for(self, args: Any) -> None:
        watch = self._need_watch()
        target = resolve_value(args.metric, args.value, self.record.vars)
        base = 0.0
        if args.since is not None:
            _, first = self._since(args.since)
            with watch.lock:
                known = [s[args.metric] for s in self.record.samples[first:] if s.get(args.metric) is not None]
            base = known[0] if known else 0.0
        deadline = time.monotonic() + args.timeout * time_scale()
        while True:
            value = watch.fresh().get(args.metric)
            if value is not None and args.since is not None:
                value -= base
            if value is not None and OPS[args.op](value, target):
                self._step_event("waited", {"metric": args.metric, "value": value})
                return
            if time.monotonic() > deadline:
                what = f"{args.metric} since {args.since}" if args.since else args.metric
                if args.fail:
                    raise StepFailed(f"{what} did not reach {args.op} {target:g} within {args.timeout:g} s "
                                     f"(last: {value})")
                # `fail: false`: the scenario goes on; the record still says the wait timed out.
                self._step_event("wait_timed_out", {"metric": args.metric, "value": value})
                return
            time.sleep(0.05)

    def _expect(self, args: Any) -> None:
        watch = self._need_watch()
        watch.fresh()
        _, first = self._since(args.since)
        with watch.lock:
            values = [s[args.metric] for s in self.record.samples[first:] if s.get(args.metric) is not None]
        target = resolve_value(args.metric, args.value, self.record.vars)
        if not values:
            self.record.expectations.append(Expectation(
                args.message, None, f"{args.metric} is not observable on this host"))
            if args.metric not in self.record.unobservable:
                self.record.unobservable.append(args.metric)
            return
        agg = {"first": values[0], "last": values[-1], "min": min(values), "max": max(values),
               "delta": values[-1] - values[0]}[args.agg]
        held = OPS[args.op](agg, target)
        shown = _show(args.metric, agg)
        where = f" since {args.since}" if args.since else ""
        label = f" ({self.record.psi_source})" if args.metric.startswith("pressure_") and self.record.psi_source else ""
        self.record.expectations.append(Expectation(
            args.message, held,
            f"{args.agg} {args.metric}{label}{where} = {shown} (expected {args.op} {_show(args.metric, target)})"))

    def _expect_kills(self, args: Any) -> None:
        watch = self._need_watch()
        watch.settle()
        since, _ = self._since(args.since)
        kills = self.record.oom_kills(since)
        where = f" since {args.since}" if args.since else ""
        if args.count is not None:
            self.record.expectations.append(Expectation(
                f"{args.message} (count)", len(kills) == args.count,
                f"{len(kills)} OOM kill(s){where} (expected {args.count})"))
        if args.victims is not None:
            names = [k.get("victim") for k in kills]
            if any(n is None for n in names) and not self.record.kernel_log:
                self.record.expectations.append(Expectation(
                    f"{args.message} (victims)", None,
                    "victims' names come from the kernel log, which this host does not let labcoat read"))
            else:
                shown = " → ".join(str(n) for n in names) or "none"
                self.record.expectations.append(Expectation(
                    f"{args.message} (victims)", names == list(args.victims),
                    f"killed in this order: {shown} (expected {' → '.join(args.victims)})"))
        if args.max_latency_ms is not None:
            latencies = [k.get("report_latency_ms") for k in kills]
            if not kills:
                self.record.expectations.append(Expectation(
                    f"{args.message} (latency)", False, "no OOM kill to time"))
            elif any(x is None for x in latencies):
                self.record.expectations.append(Expectation(
                    f"{args.message} (latency)", None,
                    "the kernel's kill timestamp needs the kernel log (/dev/kmsg, host root): not observable here"))
            else:
                worst = max(latencies)  # type: ignore[type-var]
                self.record.expectations.append(Expectation(
                    f"{args.message} (latency)", worst <= args.max_latency_ms,  # type: ignore[operator]
                    f"noticed at most {worst:.1f} ms after the kernel's kill (expected <= {args.max_latency_ms:g} ms)"))

    def _procs(self, args: Any) -> None:
        from labcoat.oom import PAGE_SIZE, parse_procs, procs_command

        result = self.backend.run(self.machine, procs_command(), timeout=20)
        procs = [asdict(p) for p in parse_procs(result.stdout) if not p.kthread]
        self.record.procs[args.label] = procs
        data: dict[str, Any] = {"label": args.label, "count": len(procs)}
        if self.watch is not None:
            latest = self.watch.fresh()
            rss = [(p["rss_pages"] or 0) * PAGE_SIZE for p in procs]
            biggest = max(procs, key=lambda p: p["rss_pages"] or 0) if procs else None
            view = {
                "processes_rss": sum(rss),
                "largest_rss": max(rss, default=0),
                "largest": f"{biggest['comm']} ({biggest['pid']})" if biggest else None,
                **{k: latest.get(k) for k in ("usage", "limit", "anon", "file", "shmem", "inactive_file",
                                              "workingset")},
            }
            self.record.accounting[args.label] = view
            data.update(processes_rss=view["processes_rss"], usage=view["usage"], workingset=view["workingset"])
        self._step_event("procs", data)

    def _predict(self, args: Any) -> None:
        from labcoat.oom import ProcInfo, predict_victim, snapshot_totalpages

        procs = [ProcInfo(**p) for p in self.record.procs.get(args.procs, [])]
        if not procs:
            raise StepFailed(f"predict: no procs snapshot labelled {args.procs!r}")
        snap = self._need_watch().observer.snapshot()
        total_swap = _meminfo_kb("SwapTotal") * 1024
        totalpages = snapshot_totalpages(snap, total_swap)
        prediction = predict_victim(procs, totalpages)
        ranked = [{"pid": s.proc.pid, "comm": s.proc.comm, "points": s.points, "rss_pages": s.proc.rss_pages,
                   "oom_score_adj": s.proc.oom_score_adj, "oom_score": s.proc.oom_score}
                  for s in prediction.ranked]
        by_oom_score = max(procs, key=lambda p: (p.oom_score or -1, p.pid))
        data: dict[str, Any] = {
            "totalpages": totalpages, "ranked": ranked,
            "victim_pid": prediction.victim.pid if prediction.victim else None,
            "victim": prediction.victim.comm if prediction.victim else None,
            "margin_pages": prediction.margin,
            "ties": [p.pid for p in prediction.ties], "oom_score_pick": by_oom_score.pid,
            "oom_score_pick_comm": by_oom_score.comm,
        }
        if args.answer_file:
            from labcoat.testing import parse_answers

            text = self.backend.run(self.machine, ["cat", args.answer_file], timeout=10).stdout
            answer = parse_answers(text).get(args.answer_key.lower())
            data["answer_file_text"] = text
            data["learner_pid"] = int(answer) if answer and answer.isdigit() else None
        if args.ask and self.ask_prediction:
            data["user_pid"] = self.ask_prediction(ranked)
        self.record.prediction = data
        self._step_event("prediction", {k: data[k] for k in ("victim_pid", "victim", "oom_score_pick",
                                                              "margin_pages")})

    def _expect_prediction(self, args: Any) -> None:
        pred = self.record.prediction
        if not pred:
            raise StepFailed("expect_prediction needs a `predict` step before it")
        problems, found = [], []
        if args.oom_score_pick is not None:
            differs = pred["oom_score_pick"] != pred["victim_pid"]
            found.append(f"memcg victim {pred['victim']} ({pred['victim_pid']}), /proc/PID/oom_score's top "
                         f"{pred.get('oom_score_pick_comm')} ({pred['oom_score_pick']})")
            if differs != (args.oom_score_pick == "differs"):
                problems.append(f"expected them to be {'different' if args.oom_score_pick == 'differs' else 'the same'}")
        margin = pred.get("margin_pages")
        found.append(f"margin {margin} pages")
        if args.min_margin_pages and (margin is None or margin < args.min_margin_pages):
            problems.append(f"expected a margin of at least {args.min_margin_pages} pages")
        self.record.expectations.append(Expectation(args.message, not problems, "; ".join(found + problems)))

    def _expect_victim(self, args: Any) -> None:
        if self.watch:
            self.watch.settle()
        before = {p["pid"]: p for p in self.record.procs.get(args.before, [])}
        after = {p["pid"] for p in self.record.procs.get(args.after, [])}
        gone = [before[pid] for pid in before if pid not in after]
        kills = self.record.oom_kills()
        killed = sum(e.get("new_kills", 1) for e in kills)
        pred = self.record.prediction or {}
        predicted = pred.get("victim_pid")
        held = killed == 1 and len(gone) == 1 and gone[0]["pid"] == predicted
        names = ", ".join(f"{g['comm']} ({g['pid']})" for g in gone) or "none"
        if self.record.prediction is not None and len(gone) == 1:
            actual = gone[0]["pid"]
            self.record.prediction.update(
                actual_pid=actual, actual=gone[0]["comm"], memcg_right=predicted == actual,
                oom_score_right=pred.get("oom_score_pick") == actual,
                **({"user_right": pred["user_pid"] == actual} if pred.get("user_pid") is not None else {}),
                **({"learner_right": pred["learner_pid"] == actual} if pred.get("learner_pid") is not None else {}),
            )
        self.record.expectations.append(Expectation(
            args.message, held, f"OOM kills: {killed}; gone: {names}; predicted: {predicted}"))

    def _time_read(self, args: Any) -> None:
        path = substitute(args.path, self.record.vars)
        script = ('s=$(date +%s%N); cat "$1" >/dev/null || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))')
        result = self.backend.run(self.machine, ["/bin/sh", "-c", script, "time_read", path], timeout=120)
        if not result.succeeded:
            raise StepFailed(f"could not read {path}: {result.stderr.strip()}")
        seconds = int(result.stdout.strip()) / 1e6
        self.record.timings[args.label] = seconds
        self._step_event("timed", {"label": args.label, "seconds": seconds})

    def _time_run(self, args: Any) -> None:
        cmd = substitute(args.cmd, self.record.vars)
        script = ('s=$(date +%s%N); /bin/sh -c "$1" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); '
                  'echo "$rc $(( (e - s) / 1000 ))"')
        result = self.backend.run(self.machine, ["/bin/sh", "-c", script, "time_run", cmd],
                                  timeout=args.timeout * time_scale())
        fields = result.stdout.split()
        if not result.succeeded or len(fields) != 2 or int(fields[0]) not in args.ok_exit:
            raise StepFailed(f"time_run `{cmd}` failed: exit {fields[0] if fields else result.exit_status} "
                             f"{result.stderr.strip()[-200:]}")
        seconds = int(fields[1]) / 1e6
        self.record.timings[args.label] = seconds
        self._step_event("timed", {"label": args.label, "seconds": seconds})

    def _expect_faster(self, args: Any) -> None:
        fast, slow = self.record.timings.get(args.fast), self.record.timings.get(args.slow)
        if fast is None or slow is None:
            raise StepFailed(f"expect_faster: no timing labelled {args.fast!r} or {args.slow!r}")
        ratio = slow / fast if fast > 0 else float("inf")
        self.record.expectations.append(Expectation(
            args.message, ratio >= args.factor,
            f"{args.slow} {slow * 1000:.1f} ms vs {args.fast} {fast * 1000:.1f} ms: {ratio:.1f}x "
            f"(expected >= {args.factor:g}x)"))


def judge(expectations: list[Expectation]) -> tuple[str, str]:
    """The run's status and reason from its expectations: failed if any failed, else passed.

    Unobservable expectations count as neither; the reason says how many there were.
    """
    failed = [e for e in expectations if e.state == FAILED]
    unobservable = [e for e in expectations if e.state == UNOBSERVABLE]
    if failed:
        return "failed", f"{len(failed)} of {len(expectations)} expectation(s) did not hold"
    if unobservable:
        return "passed", f"{len(unobservable)} expectation(s) not observable on this host"
    return "passed", ""


def _meminfo_kb(field_name: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _show(metric: str, value: float) -> str:
    from labcoat.units import human

    if metric in SIZE_METRICS:
        return human(value)
    if metric.endswith("_total"):
        return f"{value / 1e6:.2f} s stalled"  # PSI totals count microseconds
    return f"{value:g}"


def run_standalone(
    catalog: Catalog,
    backend: Backend,
    scenario: Scenario,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ask_prediction: Callable[[list[dict[str, Any]]], int | None] | None = None,
) -> RunRecord:
    """Start the scenario's own sandbox, run it, and remove the sandbox whatever happens.

    The sandbox carries a session label of its own; on any exit (Ctrl-C included) the
    runner removes it, and looks for that label afterwards in case the interruption landed
    while the engine was still creating the container.
    """
    import secrets

    from labcoat.hostinfo import missing
    from labcoat.runner.session import L_OWNER, L_SESSION, ensure_lab_image, labels_for, machine_spec, owner

    if scenario.sandbox is None:
        raise LabError(f"scenario {scenario.id} runs only inside a lab part (it declares no sandbox)",
                       hint="run it through its lab: `lab provoke PART`")
    lacking = missing(scenario.requires)
    if lacking:
        return RunRecord(scenario.id, scenario.title, "", status="skipped",
                         reason="; ".join(f.detail for f in lacking))
    emit = on_event or (lambda kind, data: None)
    emit("status", {"message": "preparing the sandbox image"})
    tag = ensure_lab_image(catalog, backend, scenario.sandbox.image, lambda m, f: emit("status", {"message": m}))
    seed = secrets.randbelow(2**31)
    session = secrets.token_hex(4)
    labels = labels_for("scenario", seed=str(seed), scenario=scenario.id, session=session)
    machine: Machine | None = None
    try:
        emit("status", {"message": "starting the sandbox"})
        machine = backend.start(machine_spec(scenario.sandbox, tag, None, str(seed)), labels)
        emit("sandbox", {"name": machine.name, "session": session, "memory": scenario.sandbox.memory})
        return ScenarioRunner(scenario, backend, machine, seed=seed, on_event=on_event,
                              ask_prediction=ask_prediction).run()
    finally:
        if machine is not None:
            backend.remove(machine)
        _remove_labelled(backend, {L_SESSION: session, L_OWNER: owner()}, patient=machine is None)


def _remove_labelled(backend: Backend, labels: dict[str, str], patient: bool) -> None:
    """Remove whatever carries these labels. `patient`: the start was interrupted, so the engine may
    still be creating the container; look a few more times."""
    backend.remove_labelled(labels, patient=patient)
