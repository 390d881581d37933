"""The observing step kinds: they sample the sandbox, mark moments, take process snapshots, time
reads and judge expectations, all into the ScenarioRunner's RunRecord. They run only in a scenario
run (`lab run`, `lab provoke`); content validation keeps them out of a part's `prepare`.

Each is registered with `runner.steps.step_kind`, like the acting kinds in `runner.steps`.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import LabError
from labcoat.hostinfo import time_scale
from labcoat.runner.observe import SIZE_METRICS, Expectation, Observer, Watch
from labcoat.runner.steps import StepContext, StepFailed, step_kind, substitute
from labcoat.testing import exit_race  # the one rule, shared with the checks that judge a kill
from labcoat.units import parse_size

if TYPE_CHECKING:
    from labcoat.runner.scenario import ScenarioRunner

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "==": operator.eq, "<=": operator.le, "<": operator.lt, "!=": operator.ne,
}


def _run_of(ctx: StepContext) -> ScenarioRunner:
    """The scenario run an observing step records into (run_step refuses them without one)."""
    if ctx.run is None:
        raise StepFailed("an observing step ran outside a scenario run")
    return ctx.run  # type: ignore[no-any-return]


def resolve_value(metric: str, value: Any, variables: dict[str, str]) -> float:
    value = substitute(value, variables)
    if isinstance(value, str):
        return float(parse_size(value)) if metric in SIZE_METRICS or not value.replace(".", "").isdigit() \
            else float(value)
    return float(value)


@step_kind("sample")
def _sample(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    if run.watch:
        return
    observer = Observer(run.backend, run.machine)
    run.record.observed_from = observer.where
    try:
        first = observer.snapshot()
    except (LabError, OSError, ValueError) as exc:
        raise StepFailed(f"cannot read the sandbox's memory cgroup: {exc}") from None
    run.record.cgroup_version = first.version
    if first.pressure is None:
        run.record.unobservable.append(
            "the sandbox's own PSI (its cgroup's memory.pressure): PSI shown is host-wide"
            if first.system_pressure is not None else "PSI (the kernel exposes none)")
    run.watch = Watch(observer, run.record, run.t0, args.interval, run.emit)
    if not run.record.kernel_log:
        run.record.unobservable.append("OOM victims' names and kernel timestamps (/dev/kmsg needs host root)")
    run.watch.take_sample()
    run.watch.check_oom()  # the counter's starting value
    run.watch.start()


@step_kind("mark")
def _mark(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    watch = run.need_watch()
    watch.check_oom()
    watch.fresh()
    with watch.lock:
        index = len(run.record.samples) - 1
        t = run.record.samples[index]["t"] if index >= 0 else round(time.monotonic() - run.t0, 4)
    run.record.marks[args.label] = {"t": t, "sample": index}
    run.step_event("mark", {"label": args.label})


@step_kind("wait_for")
def _wait_for(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    watch = run.need_watch()
    target = resolve_value(args.metric, args.value, run.record.vars)
    base = 0.0
    if args.since is not None:
        _, first = run.since_mark(args.since)
        with watch.lock:
            known = [s[args.metric] for s in run.record.samples[first:] if s.get(args.metric) is not None]
        base = known[0] if known else 0.0
    deadline = time.monotonic() + args.timeout * time_scale()
    while True:
        value = watch.fresh().get(args.metric)
        if value is not None and args.since is not None:
            value -= base
        if value is not None and OPS[args.op](value, target):
            run.step_event("waited", {"metric": args.metric, "value": value})
            return
        if time.monotonic() > deadline:
            what = f"{args.metric} since {args.since}" if args.since else args.metric
            if args.fail:
                raise StepFailed(f"{what} did not reach {args.op} {target:g} within {args.timeout:g} s "
                                 f"(last: {value})")
            # `fail: false`: the scenario goes on; the record still says the wait timed out.
            run.step_event("wait_timed_out", {"metric": args.metric, "value": value})
            return
        time.sleep(0.05)


@step_kind("expect")
def _expect(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    watch = run.need_watch()
    watch.fresh()
    _, first = run.since_mark(args.since)
    with watch.lock:
        values = [s[args.metric] for s in run.record.samples[first:] if s.get(args.metric) is not None]
    target = resolve_value(args.metric, args.value, run.record.vars)
    if not values:
        run.record.expectations.append(Expectation(
            args.message, None, f"{args.metric} is not observable on this host"))
        if args.metric not in run.record.unobservable:
            run.record.unobservable.append(args.metric)
        return
    agg = {"first": values[0], "last": values[-1], "min": min(values), "max": max(values),
           "delta": values[-1] - values[0]}[args.agg]
    held = OPS[args.op](agg, target)
    shown = _show(args.metric, agg)
    where = f" since {args.since}" if args.since else ""
    label = f" ({run.record.psi_source})" if args.metric.startswith("pressure_") and run.record.psi_source else ""
    run.record.expectations.append(Expectation(
        args.message, held,
        f"{args.agg} {args.metric}{label}{where} = {shown} (expected {args.op} {_show(args.metric, target)})"))


@step_kind("expect_kills")
def _expect_kills(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    watch = run.need_watch()
    watch.settle()
    since, _ = run.since_mark(args.since)
    kills = run.record.oom_kills(since)
    where = f" since {args.since}" if args.since else ""
    if args.count is not None:
        run.record.expectations.append(Expectation(
            f"{args.message} (count)", len(kills) == args.count,
            f"{len(kills)} OOM kill(s){where} (expected {args.count})"))
    if args.victims is not None:
        names = [k.get("victim") for k in kills]
        if any(n is None for n in names) and not run.record.kernel_log:
            run.record.expectations.append(Expectation(
                f"{args.message} (victims)", None,
                "victims' names come from the kernel log, which this host does not let labcoat read"))
        else:
            shown = " → ".join(str(n) for n in names) or "none"
            run.record.expectations.append(Expectation(
                f"{args.message} (victims)", names == list(args.victims),
                f"killed in this order: {shown} (expected {' → '.join(args.victims)})"))
    if args.max_latency_ms is not None:
        run.record.expectations.append(latency_expectation(
            args.message, [k.get("report_latency_ms") for k in kills], args.max_latency_ms, time_scale()))


def latency_expectation(message: str, latencies: list[float | None], max_ms: float, scale: float) -> Expectation:
    """Whether labcoat noticed every OOM kill within `max_ms` of the kernel's kill.

    The latency bounds labcoat's own reaction (its 5 ms poll, reading the log), not a figure
    of the kernel's: a limit, so it stretches by the host's time scale like a timeout does
    (a TCG guest, 30x slower, noticed a kill after 144 ms against the 100 ms asked).
    """
    if not latencies:
        return Expectation(f"{message} (latency)", False, "no OOM kill to time")
    if any(x is None for x in latencies):
        return Expectation(f"{message} (latency)", None,
                           "the kernel's kill timestamp needs the kernel log, read and written by host root "
                           "(/dev/kmsg: one line of labcoat's aligns its clock): not observable here")
    worst, bound = max(x for x in latencies if x is not None), max_ms * scale
    asked = f"{bound:g} ms" + (f": {max_ms:g} ms x time scale {scale:g}" if scale != 1 else "")
    return Expectation(f"{message} (latency)", worst <= bound,
                       f"noticed at most {worst:.1f} ms after the kernel's kill (expected <= {asked})")


@step_kind("procs")
def _procs(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    from labcoat.oom import PAGE_SIZE, parse_procs, procs_command

    result = run.backend.run(run.machine, procs_command(), timeout=20)
    procs = [asdict(p) for p in parse_procs(result.stdout) if not p.kthread]
    run.record.procs[args.label] = procs
    data: dict[str, Any] = {"label": args.label, "count": len(procs)}
    if run.watch is not None:
        latest = run.watch.fresh()
        rss = [(p["rss_pages"] or 0) * PAGE_SIZE for p in procs]
        biggest = max(procs, key=lambda p: p["rss_pages"] or 0) if procs else None
        view = {
            "processes_rss": sum(rss),
            "largest_rss": max(rss, default=0),
            "largest": f"{biggest['comm']} ({biggest['pid']})" if biggest else None,
            **{k: latest.get(k) for k in ("usage", "limit", "anon", "file", "shmem", "inactive_file",
                                          "workingset")},
        }
        run.record.accounting[args.label] = view
        data.update(processes_rss=view["processes_rss"], usage=view["usage"], workingset=view["workingset"])
    run.step_event("procs", data)


def answered_pid(text: str, key: str) -> int | None:
    """The PID the learner's answers file gives for `key`, or None (a learner may write anything there:
    "²" and "١٢" pass str.isdigit(), and int() refuses the first and 5000 digits; issue 15)."""
    from labcoat.testing import parse_answers

    answer = parse_answers(text).get(key.lower())
    return int(answer) if answer and answer.isascii() and answer.isdigit() and len(answer) <= 10 else None


@step_kind("predict")
def _predict(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    from labcoat.oom import ProcInfo, predict_victim, snapshot_totalpages

    procs = [ProcInfo(**p) for p in run.record.procs.get(args.procs, [])]
    if not procs:
        raise StepFailed(f"predict: no procs snapshot labelled {args.procs!r}")
    snap = run.need_watch().observer.snapshot()
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
        text = run.backend.run(run.machine, ["cat", args.answer_file], timeout=10).stdout
        data["answer_file_text"] = text
        data["learner_pid"] = answered_pid(text, args.answer_key)
    if args.ask and run.ask_prediction:
        data["user_pid"] = run.ask_prediction(ranked)
    run.record.prediction = data
    run.step_event("prediction", {k: data[k] for k in ("victim_pid", "victim", "oom_score_pick",
                                                          "margin_pages")})


@step_kind("expect_prediction")
def _expect_prediction(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    pred = run.record.prediction
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
    run.record.expectations.append(Expectation(args.message, not problems, "; ".join(found + problems)))


@step_kind("expect_victim")
def _expect_victim(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    if run.watch:
        run.watch.settle()
    before = {p["pid"]: p for p in run.record.procs.get(args.before, [])}
    after = {p["pid"] for p in run.record.procs.get(args.after, [])}
    gone = [before[pid] for pid in before if pid not in after]
    kills = run.record.oom_kills()
    killed = sum(e.get("new_kills", 1) for e in kills)
    pred = run.record.prediction or {}
    predicted = pred.get("victim_pid")
    race = exit_race(killed, [g["pid"] for g in gone], pred.get("ranked") or [])
    held = (killed == 1 and len(gone) == 1 and gone[0]["pid"] == predicted) or (race and predicted == race[0])
    names = ", ".join(f"{g['comm']} ({g['pid']})" for g in gone) or "none"
    if race:
        names += " (a second kill at once: the kernel's exit race, see exit_race)"
    if run.record.prediction is not None and (len(gone) == 1 or race):
        actual = race[0] if race else gone[0]["pid"]
        run.record.prediction.update(
            actual_pid=actual, actual=next(g["comm"] for g in gone if g["pid"] == actual), memcg_right=predicted == actual,
            oom_score_right=pred.get("oom_score_pick") == actual,
            **({"user_right": pred["user_pid"] == actual} if pred.get("user_pid") is not None else {}),
            **({"learner_right": pred["learner_pid"] == actual} if pred.get("learner_pid") is not None else {}),
        )
    run.record.expectations.append(Expectation(
        args.message, held, f"OOM kills: {killed}; gone: {names}; predicted: {predicted}"))


@step_kind("time_read")
def _time_read(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    path = substitute(args.path, run.record.vars)
    script = ('s=$(date +%s%N); cat "$1" >/dev/null || exit 1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))')
    result = run.backend.run(run.machine, ["/bin/sh", "-c", script, "time_read", path], timeout=120)
    if not result.succeeded:
        raise StepFailed(f"could not read {path}: {result.stderr.strip()}")
    seconds = int(result.stdout.strip()) / 1e6
    run.record.timings[args.label] = seconds
    run.step_event("timed", {"label": args.label, "seconds": seconds})


@step_kind("time_run")
def _time_run(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    cmd = substitute(args.cmd, run.record.vars)
    script = ('s=$(date +%s%N); /bin/sh -c "$1" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); '
              'echo "$rc $(( (e - s) / 1000 ))"')
    result = run.backend.run(run.machine, ["/bin/sh", "-c", script, "time_run", cmd],
                              timeout=args.timeout * time_scale())
    fields = result.stdout.split()
    if not result.succeeded or len(fields) != 2 or int(fields[0]) not in args.ok_exit:
        raise StepFailed(f"time_run `{cmd}` failed: exit {fields[0] if fields else result.exit_status} "
                         f"{result.stderr.strip()[-200:]}")
    seconds = int(fields[1]) / 1e6
    run.record.timings[args.label] = seconds
    run.step_event("timed", {"label": args.label, "seconds": seconds})


@step_kind("expect_faster")
def _expect_faster(ctx: StepContext, args: Any) -> None:
    run = _run_of(ctx)
    fast, slow = run.record.timings.get(args.fast), run.record.timings.get(args.slow)
    if fast is None or slow is None:
        raise StepFailed(f"expect_faster: no timing labelled {args.fast!r} or {args.slow!r}")
    ratio = slow / fast if fast > 0 else float("inf")
    run.record.expectations.append(Expectation(
        args.message, ratio >= args.factor,
        f"{args.slow} {slow * 1000:.1f} ms vs {args.fast} {fast * 1000:.1f} ms: {ratio:.1f}x "
        f"(expected >= {args.factor:g}x)"))


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
