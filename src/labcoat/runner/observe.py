"""Observe a scenario run: what it measured (RunRecord, Expectation), the sandbox's cgroup read from
the host or from inside (Observer), and the background sampling with its fast OOM-kill watch (Watch).

The scenario runner (`runner.scenario`) drives the steps; this module only watches and records.
What cannot be observed on a host (no PSI, no host view of the cgroup) is reported as such.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, Machine
from labcoat.errors import EnvironmentProblem, LabError

if TYPE_CHECKING:
    from labcoat.cgroup import MemorySnapshot

SIZE_METRICS = {"usage", "limit", "anon", "file", "shmem", "workingset", "file_dirty", "swap", "inactive_file"}
_VMSTAT = re.compile(r"^--- vmstat (pswpin|pswpout) (\d+)$")


def metrics_of(snap: MemorySnapshot) -> dict[str, Any]:
    """The figures a scenario can refer to, from one snapshot (None where not observable).

    ``psi_*`` is the sandbox's own PSI (its cgroup's memory.pressure; None where the host
    has none), ``host_psi_*`` the host-wide /proc/pressure/memory, and ``pressure_*`` the
    best of the two: the sandbox's own where it exists, else host-wide; ``psi_source``
    says which ("sandbox" or "host-wide"). ``host_pswpin``/``host_pswpout`` are the
    host-wide swap-in/out page counters of /proc/vmstat.
    """
    def psi(p: Any, line: str, key: str) -> float | None:
        part = getattr(p, line, None) if p is not None else None
        return None if part is None else float(getattr(part, key))

    best = snap.pressure if snap.pressure is not None else snap.system_pressure
    source = "sandbox" if snap.pressure is not None else "host-wide" if snap.system_pressure is not None else None
    vmstat = {m.group(1): float(m.group(2)) for line in snap.preamble if (m := _VMSTAT.match(line))}
    return {
        "usage": snap.usage, "limit": snap.limit, "anon": snap.anon, "file": snap.file, "shmem": snap.shmem,
        "workingset": snap.workingset, "file_dirty": snap.file_dirty, "swap": snap.swap,
        "inactive_file": snap.inactive_file,
        "oom_kill": snap.oom_kill, "oom": snap.oom,
        "psi_some_avg10": psi(snap.pressure, "some", "avg10"), "psi_full_avg10": psi(snap.pressure, "full", "avg10"),
        "psi_some_total": psi(snap.pressure, "some", "total"), "psi_full_total": psi(snap.pressure, "full", "total"),
        "host_psi_some_avg10": psi(snap.system_pressure, "some", "avg10"),
        "host_psi_full_avg10": psi(snap.system_pressure, "full", "avg10"),
        "host_psi_some_total": psi(snap.system_pressure, "some", "total"),
        "host_psi_full_total": psi(snap.system_pressure, "full", "total"),
        "pressure_some_avg10": psi(best, "some", "avg10"), "pressure_full_avg10": psi(best, "full", "avg10"),
        "pressure_some_total": psi(best, "some", "total"), "pressure_full_total": psi(best, "full", "total"),
        "psi_source": source,
        "host_pswpin": vmstat.get("pswpin"), "host_pswpout": vmstat.get("pswpout"),
    }


PASSED, FAILED, UNOBSERVABLE = "passed", "failed", "unobservable"


@dataclass
class Expectation:
    """One expectation's outcome.

    ``held`` is True (passed), False (failed) or None: the host cannot show what it is
    about (no PSI, no kernel log...). An unobservable expectation counts as neither passed
    nor failed: it never makes a run fail, and the summary says "not observable on this host".
    """

    message: str
    held: bool | None
    detail: str
    state: str = ""  # passed | failed | unobservable (derived from held)

    def __post_init__(self) -> None:
        self.state = PASSED if self.held is True else FAILED if self.held is False else UNOBSERVABLE


@dataclass
class RunRecord:
    """Everything a run measured: kept as JSON for checks, `--json` and plots."""

    scenario: str
    title: str
    sandbox: str
    cgroup_version: int | None = None
    observed_from: str = ""  # "host" or "inside"
    status: str = "running"  # passed | failed | skipped | error | interrupted
    reason: str = ""
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    vars: dict[str, str] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    procs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    prediction: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)
    unobservable: list[str] = field(default_factory=list)
    psi_source: str | None = None  # "sandbox" (the cgroup's own memory.pressure) or "host-wide"
    kernel_log: bool = False  # /dev/kmsg was readable: OOM victims are named, with kernel timestamps
    marks: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> {"t", "sample"}
    # procs label -> the processes' RSS next to the cgroup's own figures at the same moment
    accounting: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def oom_kills(self, since: float | None = None) -> list[dict[str, Any]]:
        """The oom_kill events (one per kill), optionally only those detected at or after `since`."""
        return [e for e in self.events if e["kind"] == "oom_kill" and (since is None or e["t"] >= since)]


class Observer:
    """Reads the sandbox's cgroup: from the host when it can (fast, sees cgroup PSI), else from inside."""

    def __init__(self, backend: Backend, machine: Machine) -> None:
        self.backend, self.machine = backend, machine
        self.dirs: tuple[Path, Path | None] | None = None
        self.where = "inside"
        try:
            from labcoat.cgroup_host import sandbox_dirs

            self.dirs = sandbox_dirs(backend, machine)
            if os.access(self.dirs[0], os.R_OK):
                self.where = "host"
        except (EnvironmentProblem, OSError):
            self.dirs = None

    @property
    def cgroup_name(self) -> str | None:
        """The last component of the sandbox's cgroup path (a container id), to pick its kernel-log lines."""
        return self.dirs[0].name if self.dirs else None

    def snapshot(self) -> MemorySnapshot:
        from labcoat import cgroup
        from labcoat.cgroup_host import read_dir

        if self.where == "host" and self.dirs:
            text = _host_vmstat() + read_dir(*self.dirs, system_pressure=cgroup.SYSTEM_PSI_PATH)
            return cgroup.parse_snapshot(text, timestamp=time.monotonic())
        argv = cgroup.inside_snapshot_command()
        # /proc/vmstat is not namespaced: inside it shows the host's swap counters too.
        argv = [argv[0], argv[1], _VMSTAT_SH + argv[2], *argv[3:]]
        result = self.backend.run(self.machine, argv, timeout=10)
        return cgroup.parse_snapshot(result.stdout, timestamp=time.monotonic())

    def oom_counter_reader(self) -> Callable[[], int | None] | None:
        """A cheap reader of just the OOM-kill counter (one small file), host side only."""
        if self.where != "host" or not self.dirs:
            return None
        directory = self.dirs[0]
        path, key = ((directory / "memory.events", "oom_kill") if (directory / "memory.events").exists()
                     else (directory / "memory.oom_control", "oom_kill"))

        def read() -> int | None:
            try:
                for line in path.read_text().splitlines():
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
            except OSError:
                return None
            return None

        return read


_VMSTAT_SH = ('{ while read -r k v; do case "$k" in pswpin|pswpout) echo "--- vmstat $k $v";; esac; done '
              '< /proc/vmstat; } 2>/dev/null\n')


def _host_vmstat() -> str:
    """The host's pswpin/pswpout as preamble lines of a capture (nothing when unreadable)."""
    try:
        text = Path("/proc/vmstat").read_text()
    except OSError:
        return ""
    return "".join(f"--- vmstat {line}\n" for line in text.splitlines() if line.split(" ")[0] in ("pswpin", "pswpout"))


class KmsgTail:
    """Kernel log lines as they arrive (host root only): OOM victims with kernel timestamps.

    /dev/kmsg stamps records with local_clock() (sched_clock), which is not NTP-slewed while
    CLOCK_MONOTONIC (time.monotonic()) is: the two drift apart with uptime (0.7 ms one minute
    after boot here, 2.6 ms on a CI host that had been up longer; kernel/printk/printk.c,
    kernel/sched/clock.c). So on opening, the tail writes one debug-level line of its own and
    reads it back: its stamp against the monotonic clock around the write gives the offset,
    to a few microseconds. Each open file of /dev/kmsg has its own write rate limit, so the
    one line always goes through unless the host set printk.devkmsg=off. Without that line
    (read-only access, or writes refused) ``offset`` is None and callers must not compare
    stamps with time.monotonic().
    """

    CALIBRATE_WAIT = 0.2  # seconds to wait for our own line to come back

    def __init__(self) -> None:
        self.fd: int | None = None
        self.offset: float | None = None  # kernel stamp minus time.monotonic(), seconds
        self.early: list[tuple[float, str]] = []  # real records read while looking for ours
        for flags in (os.O_RDWR, os.O_RDONLY):
            try:
                self.fd = os.open("/dev/kmsg", flags | os.O_NONBLOCK)
                os.lseek(self.fd, 0, os.SEEK_END)
            except OSError:
                self.close()
                continue
            if flags == os.O_RDWR:
                self._calibrate()
            return

    def _calibrate(self) -> None:
        assert self.fd is not None
        token = f"labcoat: aligning clocks with the kernel log ({os.getpid()}.{time.monotonic_ns()})"
        before = time.monotonic()
        try:
            os.write(self.fd, f"<7>{token}\n".encode())
        except OSError:  # printk.devkmsg=off, or a rate limit: stamps stay unaligned
            return
        after = time.monotonic()
        deadline = after + self.CALIBRATE_WAIT
        while time.monotonic() < deadline:
            for stamp, message in self._read():
                if message == token:
                    self.offset = stamp - (before + after) / 2
                else:
                    self.early.append((stamp, message))
            if self.offset is not None:
                return
            time.sleep(0.001)

    def _read(self) -> list[tuple[float, str]]:
        """New (kernel seconds, message) records, as the kernel stamped them."""
        out: list[tuple[float, str]] = []
        while self.fd is not None:
            try:
                raw = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE when records were overwritten: just go on
                continue
            head, _, message = raw.partition(";")
            fields = head.split(",")
            if len(fields) >= 3 and fields[2].isdigit():
                out.append((int(fields[2]) / 1e6, message.strip()))
        return out

    def lines(self) -> list[tuple[float, str]]:
        """New (seconds, message) records; on time.monotonic()'s clock when ``offset`` is known."""
        out, self.early = self.early + self._read(), []
        if self.offset is None:
            return out
        return [(stamp - self.offset, message) for stamp, message in out]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_OOM_SUMMARY = re.compile(r"task_memcg=([^,]*),task=(.*?),pid=(\d+)")


class Watch(threading.Thread):
    """Background sampling plus a fast OOM-kill watch; stops with the run.

    Every kill the cgroup's counter shows becomes one ``oom_kill`` event. The kernel log
    names the victims: the ``oom-kill:...task_memcg=...,pid=N`` summary line (printed when
    the kernel has chosen the victim, before the counter moves) and the ``Killed process N``
    line (right after the SIGKILL). Only victims of this sandbox's cgroup are taken (other
    sandboxes on the host may be OOM-killed at the same time), and they are matched to
    counter increments in order. ``report_latency_ms`` is detection time minus the summary
    line's timestamp, once KmsgTail has aligned the kernel log's clock with time.monotonic()
    (without that alignment there is no latency: the two clocks drift apart by milliseconds).
    """

    VICTIM_WAIT = 0.1  # seconds to wait for the kernel's "Killed process" line after the counter moved

    def __init__(self, observer: Observer, record: RunRecord, t0: float, interval: float,
                 emit: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__(daemon=True, name="labcoat-watch")
        self.observer, self.record, self.t0, self.interval, self.emit = observer, record, t0, interval, emit
        self.stop = threading.Event()
        self.latest: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.oom_lock = threading.Lock()
        self.kmsg = KmsgTail()
        self.record.kernel_log = self.kmsg.fd is not None
        self.memcg = observer.cgroup_name
        self.oom_reader = observer.oom_counter_reader()
        self.oom_seen: int | None = None
        self.chosen: dict[int, tuple[float, str]] = {}  # host pid -> (stamp, memcg) from oom-kill: lines
        self.victims: deque[dict[str, Any]] = deque()  # this cgroup's victims not yet matched to a kill
        self.pending: deque[tuple[dict[str, Any], float]] = deque()  # kills (event, detected) without victim

    def run(self) -> None:
        next_sample = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    self.take_sample()
                    next_sample = now + self.interval
                self.check_oom()
                self.stop.wait(0.005 if self.oom_reader else min(self.interval, 0.05))
            self.check_oom()
        finally:
            self.kmsg.close()

    def take_sample(self) -> dict[str, Any] | None:
        try:
            snap = self.observer.snapshot()
        except (LabError, OSError, ValueError):
            return None  # the sandbox went away mid-read; the next sample will say so
        metrics = metrics_of(snap)
        sample = {"t": round(snap.timestamp - self.t0, 4), **metrics}
        with self.lock:
            self.record.samples.append(sample)
            self.latest = metrics
            source = metrics.get("psi_source")
            if source and self.record.psi_source != "sandbox":
                self.record.psi_source = source
        self.emit("sample", sample)
        if self.oom_reader is None and metrics.get("oom_kill") is not None:
            with self.oom_lock:
                self._oom_count(int(metrics["oom_kill"]), snap.timestamp)
        return metrics

    def check_oom(self) -> None:
        """Read the counter (host side), take new kernel-log lines, and report new kills."""
        with self.oom_lock:
            self._drain_kmsg()
            if self.oom_reader is not None:
                count = self.oom_reader()
                if count is not None:
                    self._oom_count(count, time.monotonic())
            self._match()

    def _ours(self, memcg_path: str) -> bool:
        return self.memcg is None or f"/{self.memcg}/" in memcg_path.rstrip("/") + "/"

    def _drain_kmsg(self) -> None:
        from labcoat.oom import parse_oom_kills

        for stamp, message in self.kmsg.lines():
            summary = _OOM_SUMMARY.search(message) if message.startswith("oom-kill:") else None
            if summary:
                self.chosen[int(summary.group(3))] = (stamp, summary.group(1))
                continue
            if "Killed process" not in message:
                continue
            for kill in parse_oom_kills(message):
                chosen_at, memcg = self.chosen.pop(kill.pid, (None, None))
                if memcg is not None and not self._ours(memcg):
                    continue  # another cgroup's OOM kill (another sandbox on this host)
                victim: dict[str, Any] = {
                    "victim_pid": kill.pid, "victim": kill.comm, "oom_score_adj": kill.oom_score_adj,
                    "constraint": "memcg" if "Memory cgroup" in message else "global",
                    "_stamp": chosen_at if chosen_at is not None else stamp,
                    "kernel_killed_t": round(stamp - self.t0, 4),
                }
                rss = _anon_rss_kb(message)
                if rss is not None:
                    victim["victim_anon_rss_kb"] = rss
                self.victims.append(victim)

    def _oom_count(self, count: int, detected: float) -> None:
        if self.oom_seen is None:
            self.oom_seen = count
            return
        if count <= self.oom_seen:
            return
        first = self.oom_seen + 1
        self.oom_seen = count
        fresh = []
        for n in range(first, count + 1):
            # One event per kill; new_kills stays for readers that sum it.
            event: dict[str, Any] = {"kind": "oom_kill", "t": round(detected - self.t0, 4), "count": n,
                                     "new_kills": 1}
            self.record.events.append(event)
            self.pending.append((event, detected))
            fresh.append(event)
        if self.kmsg.fd is not None:
            # The counter moves a moment before the kernel prints the kill line.
            deadline = time.monotonic() + self.VICTIM_WAIT
            while self.pending and time.monotonic() < deadline:
                self._drain_kmsg()
                self._match(announce=False)
                if self.pending:
                    time.sleep(0.002)
        for event in fresh:
            self.emit("oom_kill", event)

    def _match(self, announce: bool = True) -> None:
        while self.pending and self.victims:
            event, detected = self.pending.popleft()
            victim = self.victims.popleft()
            stamp = victim.pop("_stamp")
            event.update(victim, kernel_t=round(stamp - self.t0, 4))
            if self.kmsg.offset is not None:
                event["report_latency_ms"] = round((detected - stamp) * 1000, 2)
            if announce:  # the victim line came after the kill was already reported
                self.emit("oom_victim", event)

    def settle(self, seconds: float = 0.3) -> None:
        """Catch up with the counter and the kernel log (before judging kills)."""
        deadline = time.monotonic() + seconds
        self.check_oom()
        while self.pending and self.kmsg.fd is not None and time.monotonic() < deadline:
            time.sleep(0.01)
            self.check_oom()

    def fresh(self) -> dict[str, Any]:
        """A new sample now (used by wait_for and expect, so they never judge a stale one)."""
        return self.take_sample() or self.latest


def _anon_rss_kb(message: str) -> int | None:
    import re

    m = re.search(r"anon-rss:(\d+)kB", message)
    return int(m.group(1)) if m else None

