"""The scenario runner without Docker: a fake backend that answers like a sandbox would.

The fake serves the cgroup capture the runner's inside-the-sandbox sampler reads, a
`procs` listing, and records what was spawned. Expectations are judged on those numbers:
passed, failed, or unobservable (the host cannot show the metric: counts as neither).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend as SharedFakeBackend

from labcoat.backends.base import CommandResult, Machine
from labcoat.content.loader import load_model
from labcoat.content.models import HogArgs, SandboxSpec, Scenario, Step, StepName
from labcoat.errors import ContentError, LabError
from labcoat.runner import observe
from labcoat.runner import scenario as runner
from labcoat.runner.scenario import Expectation, RunRecord, ScenarioRunner, judge, metrics_of, run_standalone
from labcoat.runner.steps import NoMemoryLimit, StepContext, qos_adj, run_step

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
UNLIMITED = 9223372036854771712


# ----------------------------------------------------------------------------- the fake sandbox


@dataclass
class FakeCgroup:
    """What the fake sandbox's memory cgroup (v1) says; tests change it between steps."""

    limit: int | None = 128 * MiB
    anon: int = 1 * MiB
    file: int = 0
    shmem: int = 0
    oom_kill: int = 0
    psi: str | None = None  # the cgroup's own memory.pressure text (None: not visible)
    host_psi: str | None = "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=50\n"

    def capture(self) -> str:
        usage = self.anon + self.file + 512 * 1024
        out = [
            f"=== memory.limit_in_bytes\n{self.limit if self.limit is not None else UNLIMITED}\n",
            f"=== memory.memsw.limit_in_bytes\n{self.limit if self.limit is not None else UNLIMITED}\n",
            f"=== memory.usage_in_bytes\n{usage}\n",
            "=== memory.failcnt\n0\n",
            f"=== memory.oom_control\noom_kill_disable 0\nunder_oom 0\noom_kill {self.oom_kill}\n",
            f"=== memory.stat\ncache {self.file}\nrss {self.anon}\nshmem {self.shmem}\n"
            f"inactive_file {self.file}\nactive_file 0\nswap 0\n",
        ]
        if self.psi is not None:
            out.append(f"=== (cgroup2 hierarchy) memory.pressure\n{self.psi}")
        if self.host_psi is not None:
            out.append(f"=== host /proc/pressure/memory\n{self.host_psi}")
        return "".join(out)


PROCS = """=== pid 1
Name:\tdocker-init
Pid:\t1
State:\tS (sleeping)
VmRSS:\t     700 kB
RssAnon:\t     100 kB
RssFile:\t     600 kB
RssShmem:\t       0 kB
VmSwap:\t       0 kB
VmPTE:\t      40 kB
oom_score_adj:\t0
oom_score:\t666
=== pid 7
Name:\tbig
Pid:\t7
State:\tS (sleeping)
VmRSS:\t  143360 kB
RssAnon:\t  143360 kB
RssFile:\t       0 kB
RssShmem:\t       0 kB
VmSwap:\t       0 kB
VmPTE:\t     300 kB
oom_score_adj:\t0
oom_score:\t670
=== pid 9
Name:\tadjusted
Pid:\t9
State:\tS (sleeping)
VmRSS:\t   34816 kB
RssAnon:\t   34816 kB
RssFile:\t       0 kB
RssShmem:\t       0 kB
VmSwap:\t       0 kB
VmPTE:\t     100 kB
oom_score_adj:\t300
oom_score:\t867
"""


class FakeBackend(SharedFakeBackend):
    """The shared fake, answering like a sandbox; `host_pid` None makes the runner sample from inside."""

    def __init__(self, cg: FakeCgroup | None = None) -> None:
        super().__init__()
        self.cg = cg or FakeCgroup()
        self.commands: list[list[str]] = []
        self.procs = PROCS

    def run(self, machine: Machine, argv: Sequence[str], *, user: str | None = None, timeout: float | None = 60,
            env: Mapping[str, str] | None = None, max_output: int = 1 << 20) -> CommandResult:
        argv = list(argv)
        self.commands.append(argv)
        if "labcoat-snapshot" in argv:
            return CommandResult(0, "--- vmstat pswpin 0\n--- vmstat pswpout 0\n" + self.cg.capture(), "")
        if "labcoat-procs" in argv:
            return CommandResult(0, self.procs, "")
        if "time_read" in argv:  # the first read is cold (20 ms), later ones warm (5 ms)
            reads = sum(1 for c in self.commands if "time_read" in c)
            return CommandResult(0, "20000\n" if reads == 1 else "5000\n", "")
        return CommandResult(0, "", "")


def _tuples(value: Any) -> Any:
    """Lists as tuples, the way the YAML loader hands them to the strict models."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def scenario_of(steps: list[dict[str, Any]], **extra: Any) -> Scenario:
    data = {"schema_version": 1, "id": "test", "title": "a test", "steps": steps, **extra}
    return Scenario.model_validate(_tuples(data))


def run(steps: list[dict[str, Any]], backend: FakeBackend | None = None, **kwargs: Any) -> RunRecord:
    backend = backend or FakeBackend()
    machine = Machine(id="m1", name="fake-sandbox", labels={})
    return ScenarioRunner(scenario_of(steps), backend, machine, **kwargs).run()


@pytest.fixture(autouse=True)
def _no_kernel_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never read the real /dev/kmsg (the test may run as root on a busy host)."""

    class NoKmsg:
        fd = None
        offset = None

        def lines(self) -> list[tuple[float, str]]:
            return []

        def close(self) -> None:
            pass

    monkeypatch.setattr(observe, "KmsgTail", NoKmsg)


# ----------------------------------------------------------------------------- expectations


def test_expectations_pass_fail_and_unobservable() -> None:
    record = run([
        {"sample": {"interval": 0.05}},
        {"expect": {"metric": "limit", "op": "==", "value": "128m", "message": "the limit is 128 MiB"}},
        {"expect": {"metric": "anon", "op": ">", "value": "1g", "message": "more than a GiB"}},
        {"expect": {"metric": "psi_some_avg10", "agg": "max", "op": ">", "value": 0,
                    "message": "the sandbox's own PSI rose"}},
    ])
    states = [(e.message, e.state) for e in record.expectations]
    assert states == [("the limit is 128 MiB", "passed"), ("more than a GiB", "failed"),
                      ("the sandbox's own PSI rose", "unobservable")]
    assert record.expectations[2].held is None
    assert record.expectations[2].detail == "psi_some_avg10 is not observable on this host"
    assert "psi_some_avg10" in record.unobservable
    assert record.status == "failed"
    assert record.reason == "1 of 3 expectation(s) did not hold"


def test_unobservable_alone_does_not_fail_the_run() -> None:
    record = run([
        {"sample": {"interval": 0.05}},
        {"expect": {"metric": "usage", "op": "<=", "value": "128m", "message": "under the limit"}},
        {"expect": {"metric": "psi_full_avg10", "agg": "max", "op": ">", "value": 0, "message": "full stalls"}},
    ])
    assert record.status == "passed"
    assert record.reason == "1 expectation(s) not observable on this host"
    from labcoat.cli.scenario import EXIT_FOR

    assert EXIT_FOR[record.status] == 0


def test_judge() -> None:
    passed, failed, unknown = (Expectation("a", True, ""), Expectation("b", False, ""), Expectation("c", None, ""))
    assert (passed.state, failed.state, unknown.state) == ("passed", "failed", "unobservable")
    assert judge([passed, unknown]) == ("passed", "1 expectation(s) not observable on this host")
    assert judge([passed, unknown, failed])[0] == "failed"
    assert judge([]) == ("passed", "")


def test_expect_since_a_mark_looks_only_after_it() -> None:
    backend = FakeBackend()
    steps = [
        {"sample": {"interval": 5}},
        {"write_file": {"path": "/x", "content": "x"}},
        {"mark": {"label": "before"}},
        {"run": {"cmd": "grow"}},
        {"expect": {"metric": "file", "agg": "delta", "since": "before", "op": ">=", "value": "60m",
                    "message": "the cache grew"}},
        {"expect": {"metric": "file", "agg": "first", "op": "==", "value": 0, "message": "it started empty"}},
    ]
    original = backend.run

    def run_and_grow(machine: Machine, argv: Sequence[str], **kw: Any) -> CommandResult:
        if list(argv)[-1] == "grow":
            backend.cg.file += 64 * MiB
        return original(machine, argv, **kw)

    backend.run = run_and_grow  # type: ignore[method-assign]
    record = run(steps, backend)
    assert [e.state for e in record.expectations] == ["passed", "passed"], record.expectations
    assert "since before = 64.0 MiB" in record.expectations[0].detail
    assert set(record.marks) == {"before"}


def test_wait_for_since_a_mark_waits_for_a_change_of_a_cumulative_counter() -> None:
    steps = [{"sample": {"interval": 0.05}}, {"mark": {"label": "provoke"}},
             {"wait_for": {"metric": "oom_kill", "since": "provoke", "op": ">=", "value": 1, "timeout": 0.3}}]
    # Two kills earlier in this sandbox's life: the counter already says 2.
    record = run(steps, FakeBackend(FakeCgroup(oom_kill=2)))
    assert record.status == "error"
    assert record.reason.startswith("oom_kill since provoke did not reach >= 1 within 0.3 s (last: 0")
    # Without `since` the old kills satisfy it at once.
    record = run([steps[0], {"wait_for": {"metric": "oom_kill", "op": ">=", "value": 1, "timeout": 0.3}}],
                 FakeBackend(FakeCgroup(oom_kill=2)))
    assert record.status == "passed"


def test_wait_for_that_may_time_out_goes_on_and_says_so() -> None:
    """Regression: `fail: false` on a timed-out wait_for used to raise UnboundLocalError."""
    steps = [{"sample": {"interval": 0.05}},
             {"wait_for": {"metric": "oom_kill", "op": ">=", "value": 1, "timeout": 0.2, "fail": False}},
             {"expect": {"metric": "limit", "op": "==", "value": "128m", "message": "the limit is 128 MiB"}}]
    record = run(steps, FakeBackend(FakeCgroup(oom_kill=0)))
    assert record.status == "passed", record.reason
    timed_out = [e for e in record.events if e["kind"] == "wait_timed_out"]
    assert [(e["metric"], e["value"]) for e in timed_out] == [("oom_kill", 0)]
    assert [e.state for e in record.expectations] == ["passed"]


def test_expect_needs_a_sample_step() -> None:
    record = run([{"expect": {"metric": "usage", "op": ">", "value": 0, "message": "m"}}])
    assert record.status == "error"
    assert "needs a `sample` step" in record.reason


def test_unknown_mark_is_an_error() -> None:
    record = run([{"sample": {}}, {"expect": {"metric": "usage", "op": ">", "value": 0, "since": "nope",
                                              "message": "m"}}])
    assert record.status == "error"
    assert record.reason == "no `mark` labelled 'nope' before this step"


def test_expect_faster() -> None:
    record = run([
        {"time_read": {"path": "/f", "label": "cold"}},
        {"time_read": {"path": "/f", "label": "warm"}},
        {"expect_faster": {"fast": "warm", "slow": "cold", "factor": 3}},
        {"expect_faster": {"fast": "warm", "slow": "cold", "factor": 5, "message": "five times"}},
    ])
    assert record.timings == {"cold": 0.02, "warm": 0.005}
    assert [e.state for e in record.expectations] == ["passed", "failed"]
    assert record.expectations[0].detail == "cold 20.0 ms vs warm 5.0 ms: 4.0x (expected >= 3x)"


# ----------------------------------------------------------------------------- OOM kills and victims


def test_kills_are_counted_and_names_are_unobservable_without_the_kernel_log() -> None:
    backend = FakeBackend()
    original = backend.spawn

    def spawn_and_kill(machine: Machine, argv: Sequence[str], **kw: Any) -> None:
        original(machine, argv, **kw)
        backend.cg.oom_kill += 1  # the hog is killed at once

    backend.spawn = spawn_and_kill  # type: ignore[method-assign]
    record = run([
        {"sample": {"interval": 0.05}},
        {"mark": {"label": "start"}},
        {"hog": {"name": "balloon", "mib": 200, "wait": False}},
        {"wait_for": {"metric": "oom_kill", "op": ">=", "value": 1, "timeout": 5}},
        {"expect_kills": {"count": 1, "victims": ["balloon"], "max_latency_ms": 100, "since": "start",
                          "message": "killed"}},
        {"expect": {"metric": "oom_kill", "agg": "delta", "op": "==", "value": 1, "message": "counter +1"}},
    ], backend)
    assert [(e.message, e.state) for e in record.expectations] == [
        ("killed (count)", "passed"), ("killed (victims)", "unobservable"), ("killed (latency)", "unobservable"),
        ("counter +1", "passed")]
    assert record.status == "passed"
    assert record.kernel_log is False
    assert any("kernel log" in u or "/dev/kmsg" in u for u in record.unobservable)
    kills = record.oom_kills()
    assert len(kills) == 1 and kills[0]["count"] == 1 and kills[0]["new_kills"] == 1


def test_kernel_log_victims_are_matched_in_order_and_other_cgroups_ignored() -> None:
    record = RunRecord("s", "t", "m")

    class Obs:
        cgroup_name = "abc123"

        def oom_counter_reader(self) -> None:
            return None

    class Lines:
        fd = 3
        offset = 0.0  # aligned with time.monotonic()
        batch: list[tuple[float, str]] = []

        def lines(self) -> list[tuple[float, str]]:
            out, self.batch = self.batch, []
            return out

        def close(self) -> None:
            pass

    watch = runner.Watch(Obs(), record, t0=100.0, interval=1, emit=lambda k, d: None)  # type: ignore[arg-type]
    watch.kmsg = Lines()  # type: ignore[assignment]
    watch.VICTIM_WAIT = 0.01
    watch.kmsg.batch = [
        (101.000, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x,mems_allowed=0,"
                  "oom_memcg=/docker/other,task_memcg=/docker/other,task=stranger,pid=50,uid=0"),
        (101.001, "Memory cgroup out of memory: Killed process 50 (stranger) total-vm:1kB, anon-rss:100kB, "
                  "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"),
        (101.500, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc123,mems_allowed=0,"
                  "oom_memcg=/docker/abc123,task_memcg=/docker/abc123,task=first,pid=60,uid=0"),
        (101.501, "Memory cgroup out of memory: Killed process 60 (first) total-vm:1kB, anon-rss:65536kB, "
                  "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:1000"),
    ]
    watch._oom_count(0, 101.0)
    watch._oom_count(2, 101.504)  # two kills seen at once: one event each
    kills = record.oom_kills()
    assert [k["count"] for k in kills] == [1, 2]
    assert kills[0]["victim"] == "first" and kills[0]["oom_score_adj"] == 1000
    assert kills[0]["victim_anon_rss_kb"] == 65536
    assert kills[0]["kernel_t"] == 1.5 and kills[0]["report_latency_ms"] == pytest.approx(4.0)
    assert "victim" not in kills[1]  # its kernel line has not arrived yet
    seen: list[tuple[str, dict[str, Any]]] = []
    watch.emit = lambda kind, data: seen.append((kind, data))
    watch.kmsg.batch = [
        (101.600, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=abc123,mems_allowed=0,"
                  "oom_memcg=/docker/abc123,task_memcg=/docker/abc123/child,task=second,pid=61,uid=0"),
        (101.601, "Memory cgroup out of memory: Killed process 61 (second) total-vm:1kB, anon-rss:1kB, "
                  "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"),
    ]
    watch.check_oom()
    assert kills[1]["victim"] == "second"  # matched late, in order; a child cgroup counts as ours
    assert seen and seen[0][0] == "oom_victim"


def test_prediction_and_victim() -> None:
    backend = FakeBackend()
    after = "\n".join(PROCS.split("=== pid 7")[0].splitlines()) + "\n=== pid 9" + PROCS.split("=== pid 9")[1]
    original = backend.run
    asked: list[list[dict[str, Any]]] = []

    def run_cmd(machine: Machine, argv: Sequence[str], **kw: Any) -> CommandResult:
        if "labcoat-procs" in argv and backend.cg.oom_kill:
            return CommandResult(0, after, "")
        if list(argv)[-1] == "provoke":
            backend.cg.oom_kill += 1
        return original(machine, argv, **kw)

    backend.run = run_cmd  # type: ignore[method-assign]
    record = run([
        {"sample": {"interval": 0.05}},
        {"procs": {"label": "before"}},
        {"predict": {"procs": "before", "ask": True}},
        {"expect_prediction": {"oom_score_pick": "differs", "min_margin_pages": 2000}},
        {"expect_prediction": {"oom_score_pick": "same", "message": "they agree"}},
        {"run": {"cmd": "provoke"}},
        {"wait_for": {"metric": "oom_kill", "value": 1, "timeout": 5}},
        {"procs": {"label": "after"}},
        {"expect_victim": {"before": "before", "after": "after"}},
    ], backend, ask_prediction=lambda ranked: asked.append(ranked) or 9)
    pred = record.prediction
    assert pred is not None
    # 128 MiB limit: 32768 pages, 32 per adj unit. big: 35840 + 75 = 35915; adjusted: 8704 + 25 + 9600.
    assert pred["totalpages"] == 32768
    assert (pred["victim_pid"], pred["oom_score_pick"]) == (7, 9)
    assert pred["margin_pages"] == 35915 - 18329
    assert asked and asked[0][0]["pid"] == 7
    assert pred["user_pid"] == 9 and pred["user_right"] is False
    assert pred["actual_pid"] == 7 and pred["memcg_right"] is True and pred["oom_score_right"] is False
    assert [e.state for e in record.expectations] == ["passed", "failed", "passed"]
    assert record.accounting["before"]["processes_rss"] == (700 + 143360 + 34816) * 1024
    assert record.accounting["before"]["largest"] == "big (7)"


# ----------------------------------------------------------------------------- the hog guard and QoS


def test_hog_refuses_a_sandbox_without_a_memory_limit() -> None:
    backend = FakeBackend(FakeCgroup(limit=None))
    ctx = StepContext(backend, Machine(id="m", name="nolimit", labels={}))
    step = Step.model_validate({"hog": {"name": "pig", "mib": 64}})
    with pytest.raises(NoMemoryLimit) as info:
        run_step(ctx, step)
    assert isinstance(info.value, LabError)
    assert info.value.exit_code == 4
    assert "refusing to start hog pig in nolimit: its memory cgroup has no limit" in info.value.message
    assert backend.spawned == []


def test_hog_guard_in_a_run_makes_it_an_error_not_a_hog() -> None:
    backend = FakeBackend(FakeCgroup(limit=None))
    record = run([{"hog": {"name": "pig", "mib": 64, "wait": False}}], backend)
    assert record.status == "error"
    assert "no limit" in record.reason
    assert backend.spawned == []


def test_hog_runs_under_a_limit() -> None:
    backend = FakeBackend()
    ctx = StepContext(backend, Machine(id="m", name="limited", labels={}))
    run_step(ctx, Step.model_validate({"hog": {"name": "pig", "mib": 8, "oom_score_adj": 500, "wait": False}}))
    assert ctx.limit == 128 * MiB
    assert "hog --name pig --adj 500" in backend.spawned[0][-1]


@pytest.mark.parametrize(("qos", "can_lower", "expected"), [
    ({"class": "besteffort"}, False, (1000, 1000, False)),
    ({"class": "burstable", "request": "256Mi", "capacity": "1Gi"}, False, (750, 750, False)),
    ({"class": "burstable", "request": "1Gi", "capacity": "1Gi"}, False, (3, 3, False)),
    ({"class": "burstable", "request": "1", "capacity": "1Gi"}, False, (999, 999, False)),
    ({"class": "guaranteed"}, False, (-997, 0, True)),
    ({"class": "guaranteed"}, True, (-997, -997, False)),
])
def test_qos_adj(qos: dict[str, str], can_lower: bool, expected: tuple[int, int, bool]) -> None:
    args = HogArgs.model_validate({"name": "x", "mib": 1, "qos": qos})
    wanted, allowed, note = qos_adj(args.qos, can_lower)
    assert (wanted, allowed, note is not None) == expected


def test_qos_hog_sets_the_adj_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from labcoat import hostinfo

    monkeypatch.setattr(hostinfo, "can_lower_oom_adj",
                        lambda: hostinfo.Feature("negative_oom_adj", False, "no CAP_SYS_RESOURCE"))
    backend = FakeBackend()
    events: list[tuple[str, dict[str, Any]]] = []
    ctx = StepContext(backend, Machine(id="m", name="s", labels={}), on_event=lambda k, d: events.append((k, d)))
    run_step(ctx, Step.model_validate({"hog": {"name": "gold", "mib": 8, "wait": False,
                                                "qos": {"class": "guaranteed"}}}))
    assert "--adj 0 " in backend.spawned[0][-1]
    kind, data = events[0]
    assert kind == "qos" and data["kubelet_adj"] == -997 and data["oom_score_adj"] == 0
    assert "CAP_SYS_RESOURCE" in data["note"]


def test_qos_vocabulary_is_checked() -> None:
    with pytest.raises(ValueError, match="needs both 'request' and 'capacity'"):
        HogArgs.model_validate({"name": "x", "mib": 1, "qos": {"class": "burstable"}})
    with pytest.raises(ValueError, match="either 'oom_score_adj' or 'qos'"):
        HogArgs.model_validate({"name": "x", "mib": 1, "oom_score_adj": 5, "qos": {"class": "besteffort"}})
    with pytest.raises(ValueError, match="only apply to class burstable"):
        HogArgs.model_validate({"name": "x", "mib": 1, "qos": {"class": "besteffort", "request": "1Gi"}})


# ----------------------------------------------------------------------------- PSI labels, metrics


def test_psi_is_labelled_sandbox_or_host_wide() -> None:
    from labcoat.cgroup import parse_snapshot

    own = "some avg10=5.00 avg60=1.00 avg300=0.20 total=900\nfull avg10=4.00 avg60=1.00 avg300=0.20 total=800\n"
    with_own = metrics_of(parse_snapshot(FakeCgroup(psi=own).capture()))
    host_only = metrics_of(parse_snapshot(FakeCgroup().capture()))
    none = metrics_of(parse_snapshot(FakeCgroup(host_psi=None).capture()))
    assert (with_own["psi_source"], with_own["pressure_some_avg10"], with_own["psi_some_avg10"]) == ("sandbox", 5.0, 5.0)
    assert (host_only["psi_source"], host_only["pressure_some_total"], host_only["psi_some_avg10"]) == (
        "host-wide", 100.0, None)
    assert none["psi_source"] is None and none["pressure_some_avg10"] is None


def test_record_says_which_psi_it_showed() -> None:
    record = run([{"sample": {"interval": 0.05}},
                  {"expect": {"metric": "pressure_some_total", "op": ">", "value": 0, "message": "stall counter"}}])
    assert record.psi_source == "host-wide"
    assert "(host-wide)" in record.expectations[0].detail
    assert any("the sandbox's own PSI" in u for u in record.unobservable)
    assert all(s["psi_source"] == "host-wide" for s in record.samples)
    assert record.samples[0]["host_pswpin"] == 0


def test_swap_metrics_come_from_vmstat_lines() -> None:
    from labcoat.cgroup import parse_snapshot

    snap = parse_snapshot("--- vmstat pswpin 12\n--- vmstat pswpout 34\n" + FakeCgroup().capture())
    assert (metrics_of(snap)["host_pswpin"], metrics_of(snap)["host_pswpout"]) == (12.0, 34.0)


# ----------------------------------------------------------------------------- run_standalone and Ctrl-C


def test_run_standalone_removes_its_sandbox_after_ctrl_c() -> None:
    from labcoat.content.catalog import Catalog

    backend = FakeBackend()
    sc = scenario_of([{"sample": {"interval": 0.05}}, {"sleep": {"seconds": 0.01}}, {"sleep": {"seconds": 0.01}}],
                     sandbox={"image": "sandbox", "memory": "64m"})
    seen: list[str] = []

    def on_event(kind: str, data: dict[str, Any]) -> None:
        seen.append(kind)
        if kind == "step" and data["index"] == 2:
            assert backend.machines, "the sandbox runs while the steps do"
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_standalone(Catalog(root=ROOT), backend, sc, on_event=on_event)  # type: ignore[arg-type]
    assert backend.machines == {}
    assert len(backend.removed) == 1
    assert "sandbox" in seen


def test_run_standalone_labels_its_sandbox_with_a_session() -> None:
    from labcoat.content.catalog import Catalog

    backend = FakeBackend()
    sc = scenario_of([{"sleep": {"seconds": 0.01}}], sandbox={"image": "sandbox", "memory": "64m", "swap": "32m"})
    started: list[dict[str, Any]] = []
    record = run_standalone(Catalog(root=ROOT), backend, sc,  # type: ignore[arg-type]
                            on_event=lambda k, d: started.append(d) if k == "sandbox" else None)
    assert record.status == "passed"
    assert started and len(started[0]["session"]) == 8
    [spec] = backend.specs.values()
    assert spec.memory == 64 * MiB and spec.swap == 32 * MiB
    assert backend.machines == {}


def test_run_standalone_refuses_a_scenario_without_a_sandbox() -> None:
    from labcoat.content.catalog import Catalog

    with pytest.raises(LabError, match="runs only inside a lab part"):
        run_standalone(Catalog(root=ROOT), FakeBackend(), scenario_of([{"sleep": {"seconds": 1}}]))  # type: ignore[arg-type]


def test_required_feature_missing_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from labcoat import hostinfo
    from labcoat.content.catalog import Catalog

    monkeypatch.setattr(hostinfo, "has_swap", lambda: hostinfo.Feature("swap", False, "this host has no swap"))
    backend = FakeBackend()
    sc = scenario_of([{"sleep": {"seconds": 1}}], sandbox={"image": "sandbox", "memory": "64m"}, requires=["swap"])
    record = run_standalone(Catalog(root=ROOT), backend, sc)  # type: ignore[arg-type]
    assert (record.status, record.reason) == ("skipped", "this host has no swap")
    assert backend.machines == {} and backend.removed == []


# ----------------------------------------------------------------------------- swap wiring


def test_sandbox_swap_is_optional_and_wired_to_memswap(monkeypatch: pytest.MonkeyPatch) -> None:
    from labcoat.backends.docker import DockerBackend
    from labcoat.runner.session import machine_spec

    plain = machine_spec(SandboxSpec.model_validate({"image": "sandbox", "memory": "64m"}), "tag", None, "1")
    swapping = machine_spec(SandboxSpec.model_validate({"image": "sandbox", "memory": "64m", "swap": "128m"}),
                            "tag", None, "1")
    assert (plain.swap, swapping.swap) == (0, 128 * MiB)

    calls: list[dict[str, Any]] = []

    class Containers:
        def run(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            raise RuntimeError("stop here")

    class Client:
        containers = Containers()

    backend = DockerBackend()
    backend.__dict__["client"] = Client()
    for spec in (plain, swapping):
        with pytest.raises(RuntimeError):
            backend.start(spec, {})
    assert [(c["mem_limit"], c["memswap_limit"]) for c in calls] == [(64 * MiB, 64 * MiB), (64 * MiB, 192 * MiB)]


# ----------------------------------------------------------------------------- the vocabulary and the files


def test_unknown_step_in_a_scenario_file_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("schema_version: 1\nid: bad\ntitle: Bad\nsteps:\n  - sample: {interval: 0.1}\n"
                    "  - provoke_everything: {now: true}\n")
    with pytest.raises(ContentError) as info:
        load_model(Scenario, path, display="scenarios/bad.yaml")
    err = info.value
    assert (err.path, err.line) == ("scenarios/bad.yaml", 6)
    assert err.message == "steps[1]: unknown key 'provoke_everything'"
    assert str(err).startswith("scenarios/bad.yaml:6:")


def test_unknown_metric_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("schema_version: 1\nid: bad\ntitle: Bad\nsteps:\n  - sample: {}\n"
                    "  - expect:\n      metric: happiness\n      op: '>'\n      value: 0\n      message: m\n")
    with pytest.raises(ContentError) as info:
        load_model(Scenario, path)
    assert info.value.line == 7
    assert "happiness" in info.value.message or "metric" in info.value.message


def test_step_names_list_the_whole_vocabulary() -> None:
    import typing

    assert list(typing.get_args(StepName)) == list(Step.model_fields)


def _standalone() -> list[Scenario]:
    from labcoat.content.catalog import Catalog

    catalog = Catalog.load(ROOT)
    return [s for s in catalog.scenarios.values() if s.sandbox is not None]


def test_every_standalone_scenario_has_a_limited_sandbox_and_a_duration() -> None:
    scenarios = {s.id: s for s in _standalone()}
    assert set(scenarios) >= {"cache-fill", "oom-kill", "oom-victim", "qos-classes", "cache-counts",
                              "psi-pressure", "swap-thrash"}
    for sc in scenarios.values():
        assert sc.sandbox is not None and sc.sandbox.memory_bytes >= 6 * MiB, sc.id
        assert sc.sandbox.image == "sandbox"
        assert sc.duration_hint, sc.id
        assert sc.steps[0].kind == "sample", f"{sc.id}: sample first, so every later step is observed"
    assert scenarios["psi-pressure"].requires == ("psi",)
    assert scenarios["swap-thrash"].requires == ("swap",)
    assert scenarios["swap-thrash"].sandbox.swap == "192m"  # type: ignore[union-attr]
    assert all(sc.sandbox.swap is None for name, sc in scenarios.items() if name != "swap-thrash")  # type: ignore[union-attr]


def test_lab_scenarios_json_lists_them(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("scenarios", "--json")
    assert result.exit_code == 0, result
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["oom-kill"]["standalone"] is True and rows["oom-kill"]["memory"] == "64m"
    assert rows["lab53-part1"]["standalone"] is False
    assert rows["swap-thrash"]["requires"] == ["swap"]


def test_lab_scenarios_prints_one_line_each(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("scenarios")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    for sc in _standalone():
        assert sum(1 for line in lines if line.startswith(sc.id + " ")) == 1, sc.id


def test_predict_flag_needs_a_scenario_that_asks(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", "oom-kill", "--predict")
    assert result.exit_code == 2, result
    assert "asks for no prediction" in result.stderr


# ----------------------------------------------------------------------------- reports


def _record() -> dict[str, Any]:
    samples = [
        {"t": 0.1 * i, "usage": (10 + 10 * i) * MiB, "limit": 64 * MiB, "anon": 10 * i * MiB, "file": 5 * MiB,
         "shmem": 0, "workingset": 8 * MiB, "swap": None, "oom_kill": 1 if i > 4 else 0,
         "pressure_some_avg10": 0.5 * i, "pressure_full_avg10": 0.2 * i, "host_psi_some_avg10": None,
         "psi_source": "host-wide", "host_pswpin": 0, "host_pswpout": 0}
        for i in range(7)
    ]
    return {
        "scenario": "demo", "title": "A demo", "status": "passed", "reason": "1 expectation(s) not observable on this host",
        "duration": 0.7, "observed_from": "inside", "cgroup_version": 1, "psi_source": "host-wide",
        "samples": samples,
        "events": [{"kind": "hog", "t": 0.05, "name": "balloon", "mib": 200, "oom_score_adj": 0},
                   {"kind": "oom_kill", "t": 0.45, "count": 1, "new_kills": 1}],
        "expectations": [{"message": "counter +1", "held": True, "detail": "delta oom_kill = 1", "state": "passed"},
                         {"message": "victim named", "held": None, "detail": "needs the kernel log",
                          "state": "unobservable"}],
        "unobservable": ["OOM victims' names and kernel timestamps (/dev/kmsg needs host root)"],
        "accounting": {"before": {"processes_rss": 20 * MiB, "largest": "app (7)", "usage": 60 * MiB, "anon": 20 * MiB,
                                  "file": 40 * MiB, "shmem": 0, "workingset": 30 * MiB, "limit": 64 * MiB}},
        "timings": {}, "prediction": None,
    }


def test_summary_says_host_wide_and_not_observable() -> None:
    from rich.console import Console

    from labcoat.report.live import print_summary

    console = Console(record=True, width=120, color_system=None)
    print_summary(console, _record())
    text = console.export_text()
    assert "PSI some avg10 % (host-wide)" in text
    assert "PSI shown: host-wide" in text
    assert "? victim named: needs the kernel log (not observable on this host: counts as neither)" in text
    assert "✓ counter +1" in text
    assert "OOM kill #1 at 0.45 s: victim unknown (no kernel log)" in text
    assert "what the processes show vs what the cgroup counts" in text


def test_live_view_labels_psi_and_counts_kills() -> None:
    from rich.console import Console

    from labcoat.report.live import LiveView

    console = Console(record=True, width=120, color_system=None)
    view = LiveView(console, "demo")
    view.on_event("sample", _record()["samples"][3])
    view.on_event("oom_kill", {"kind": "oom_kill", "t": 0.4, "count": 1, "new_kills": 1, "victim": "balloon",
                               "victim_pid": 99, "report_latency_ms": 3.2, "kernel_t": 0.397})
    console.print(view.render())
    text = console.export_text()
    assert "(host-wide)" in text
    assert "40.0 MiB of 64.0 MiB (62%)" in text
    assert "1   (last victim: balloon)" in text
    assert "noticed 3.2 ms after the kernel's kill" in text


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from labcoat.report.plot import plot_run

    path = plot_run(_record(), tmp_path / "run.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_skipped_run_says_why(tmp_path: Path) -> None:
    from labcoat.errors import EnvironmentProblem
    from labcoat.report.plot import plot_run

    with pytest.raises(EnvironmentProblem, match="nothing was sampled"):
        plot_run({"samples": [], "events": []}, tmp_path / "x.png")


# ----------------------------------------------------------------------------- the step-kind registry


def test_every_step_kind_has_one_handler_and_its_models_observing_flag() -> None:
    from labcoat.runner.steps import STEP_KINDS

    assert sorted(STEP_KINDS) == sorted(Step.model_fields)
    for name, kind in STEP_KINDS.items():
        assert kind.observing is Step.args_model(name).observing, name
    assert not STEP_KINDS["hog"].observing and STEP_KINDS["sample"].observing


def test_an_observing_step_outside_a_scenario_run_is_a_step_failure_not_a_key_error() -> None:
    # Regression: prepare_part dispatched only the acting kinds and raised KeyError on `sample`.
    from labcoat.runner.steps import StepFailed

    ctx = StepContext(FakeBackend(), Machine(id="m", name="s", labels={}))  # no run: a part being prepared
    with pytest.raises(StepFailed, match="`sample` observes a scenario run"):
        run_step(ctx, Step.model_validate({"sample": {}}))


def test_kill_latency_is_labcoats_own_limit_and_stretches_with_the_time_scale() -> None:
    """The 100 ms bound on noticing an OOM kill is on labcoat's reaction, so an emulated host's
    time scale stretches it (144 ms was measured in a TCG guest); the kernel's figures never do."""
    from labcoat.runner.observing import latency_expectation

    strict = latency_expectation("killed", [3.2, 144.3], 100, 1.0)
    assert strict.state == "failed" and "expected <= 100 ms" in strict.detail
    stretched = latency_expectation("killed", [3.2, 144.3], 100, 6.0)
    assert stretched.state == "passed" and "100 ms x time scale 6" in stretched.detail
    assert latency_expectation("killed", [], 100, 6.0).state == "failed"
    assert latency_expectation("killed", [None], 100, 1.0).state == "unobservable"
