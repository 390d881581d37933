"""The live view of a scenario run, and its summary.

While a run goes on, one panel shows what matters: memory use against the limit, page
cache, anonymous memory, PSI (labelled: the sandbox's own, or host-wide where the host
has no per-cgroup PSI), OOM kills as they happen, and the last few events. After the
run, `print_summary` prints what was measured, side by side, and which expectations
held, failed, or could not be observed on this host.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from labcoat.units import human

PSI_LABEL = {"sandbox": "sandbox", "host-wide": "host-wide"}
MARK = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "unobservable": "[yellow]?[/]"}


def _bar(value: float | None, limit: float | None, width: int = 30) -> str:
    if value is None or not limit:
        return ""
    filled = max(0, min(width, round(width * value / limit)))
    colour = "red" if value / limit > 0.9 else "yellow" if value / limit > 0.7 else "green"
    return f"[{colour}]{'█' * filled}[/]{'░' * (width - filled)}"


def _num(v: float | None, size: bool = True) -> str:
    if v is None:
        return "[dim]n/a[/]"
    return human(v) if size else f"{v:g}"


def _psi_cell(s: dict[str, Any]) -> str:
    """PSI avg10 as `some X% full Y% (sandbox)`, plus host-wide next to a sandbox figure."""
    source = s.get("psi_source")
    if source is None:
        return "[dim]not observable on this host[/]"
    text = (f"some {_num(s.get('pressure_some_avg10'), False)}%  full {_num(s.get('pressure_full_avg10'), False)}%"
            f"  [bold]({PSI_LABEL.get(source, source)})[/]")
    if source == "sandbox" and s.get("host_psi_some_avg10") is not None:
        text += f"   [dim]host-wide some {s['host_psi_some_avg10']:g}%[/]"
    return text


def kill_line(kill: dict[str, Any]) -> str:
    """One OOM kill in words: who, how big, when, and how soon the runner noticed."""
    who = escape(str(kill.get("victim") or "victim unknown (no kernel log)"))
    bits = []
    if kill.get("victim_pid") is not None:
        bits.append(f"host pid {kill['victim_pid']}")
    if kill.get("oom_score_adj") is not None:
        bits.append(f"oom_score_adj {kill['oom_score_adj']}")
    if kill.get("victim_anon_rss_kb") is not None:
        bits.append(f"{kill['victim_anon_rss_kb'] / 1024:.0f} MiB anon")
    when = kill.get("kernel_t", kill["t"])
    text = f"[red]OOM kill[/] #{kill.get('count', '?')} at {when:.2f} s: [bold]{who}[/]"
    if bits:
        text += f" ({', '.join(bits)})"
    if kill.get("report_latency_ms") is not None:
        text += f", noticed {kill['report_latency_ms']:.1f} ms after the kernel's kill"
    return text


class LiveView:
    """A rich Live panel fed with runner events; thread-safe (samples arrive from the watch thread)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console, self.title = console, title
        self.latest: dict[str, Any] = {}
        self.events: list[str] = []
        self.kills = 0
        self.last_kill = ""
        self.step = ""
        self.sandbox = ""
        self.lock = threading.Lock()
        self.began = time.monotonic()
        self.live = Live(self.render(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self._take(kind, data)
            self.events = self.events[-6:]
            panel = self.render()
        self.live.update(panel)

    def _take(self, kind: str, data: dict[str, Any]) -> None:
        t = data.get("t")
        at = f"{t:6.2f}s " if isinstance(t, float | int) else ""
        if kind == "sample":
            self.latest = data
        elif kind == "step":
            self.step = f"step {data['index'] + 1}/{data['total']}: {data['kind']}"
        elif kind == "status":
            self.step = data.get("message", "")
        elif kind == "sandbox":
            self.sandbox = f"{data.get('name', '')} (limit {data.get('memory', '?')})"
        elif kind in ("oom_kill", "oom_victim"):
            if kind == "oom_kill":
                self.kills += data.get("new_kills", 1)
            if data.get("victim"):
                self.last_kill = escape(str(data["victim"]))
            self.events.append(kill_line(data))
        elif kind == "qos":
            self.events.append(f"{at}qos: {escape(data['name'])} is {data['class']}: kubelet oom_score_adj "
                               f"{data['kubelet_adj']}, set {data['oom_score_adj']}")
            if data.get("note"):
                self.events.append(f"[yellow]note:[/] {escape(data['note'])}")
        elif kind == "hog":
            self.events.append(f"{at}hog {escape(str(data['name']))}: {data['mib']} MiB, "
                               f"oom_score_adj {data['oom_score_adj']}")
        elif kind == "timed":
            self.events.append(f"{at}timed {data['label']}: {data['seconds'] * 1000:.1f} ms")
        elif kind == "prediction":
            self.events.append(f"{at}predicted victim: {escape(str(data.get('victim')))} (pid {data.get('victim_pid')}); "
                               f"/proc/PID/oom_score points at pid {data.get('oom_score_pick')}")
        elif kind in ("fill_cache", "reclaim", "waited", "mark", "procs", "ran"):
            shown = {k: v for k, v in data.items() if k not in ("t", "kind")}
            if kind == "procs":
                shown = {"label": data["label"], "processes": data["count"]}
            self.events.append(f"{at}{kind}: " + escape(", ".join(f"{k}={v}" for k, v in shown.items()))[:110])

    def render(self) -> Panel:
        s = self.latest
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold")
        table.add_column()
        limit = s.get("limit")
        usage = s.get("usage")
        share = f" ({100 * usage / limit:.0f}%)" if usage is not None and limit else ""
        table.add_row("memory", f"{_bar(usage, limit)} {_num(usage)} of {_num(limit)}{share}")
        table.add_row("anon", _num(s.get("anon")))
        cache = _num(s.get("file"))
        if s.get("shmem"):
            cache += f"  (of which tmpfs/shmem {_num(s.get('shmem'))})"
        table.add_row("page cache", cache)
        table.add_row("working set", f"{_num(s.get('workingset'))}  [dim](usage - inactive_file)[/]")
        if s.get("swap"):
            table.add_row("swap", _num(s.get("swap")))
        table.add_row("PSI avg10", _psi_cell(s) if s else "")
        kills = f"[red]{self.kills}[/]" if self.kills else "0"
        table.add_row("OOM kills", kills + (f"   (last victim: [bold]{self.last_kill}[/])" if self.last_kill else ""))
        lines: list[Any] = [table, f"[dim]{escape(self.step)}[/]", *self.events]
        subtitle = f"{time.monotonic() - self.began:.1f} s" + (f" · {escape(self.sandbox)}" if self.sandbox else "")
        return Panel(Group(*lines), title=escape(self.title), subtitle=subtitle)


# ----------------------------------------------------------------------------- summary


def _figures(samples: list[dict[str, Any]], psi_source: str | None) -> list[tuple[str, str, bool, bool]]:
    """(key, label, is a size, show the delta rather than first/max/last)."""
    psi = PSI_LABEL.get(psi_source or "", "")
    rows = [
        ("usage", "cgroup usage", True, False), ("limit", "limit", True, False),
        ("anon", "anonymous", True, False), ("file", "page cache", True, False),
        ("shmem", "  of which tmpfs/shmem", True, False), ("workingset", "working set", True, False),
        ("swap", "swap", True, False), ("oom_kill", "OOM kills (counter)", False, False),
        ("pressure_some_avg10", f"PSI some avg10 % ({psi})", False, False),
        ("pressure_full_avg10", f"PSI full avg10 % ({psi})", False, False),
        ("host_pswpin", "pswpin (host-wide, delta)", False, True),
        ("host_pswpout", "pswpout (host-wide, delta)", False, True),
    ]
    if psi_source == "sandbox":
        rows.insert(10, ("host_psi_some_avg10", "PSI some avg10 % (host-wide)", False, False))
    return rows


def print_summary(console: Console, record: dict[str, Any]) -> None:
    """The summary after a run: what was seen, side by side, and which expectations held."""
    samples = record.get("samples", [])
    status = record["status"]
    colour = {"passed": "green", "failed": "red", "skipped": "yellow"}.get(status, "magenta")
    line = f"[bold]{escape(record['title'])}[/]: [{colour}]{status}[/]"
    if record.get("reason"):
        line += f" ({escape(record['reason'])})"
    if status != "skipped":
        line += f" in {record.get('duration', 0):.1f} s, observed from the {record.get('observed_from') or '?'}"
        if record.get("cgroup_version"):
            line += f" (cgroup v{record['cgroup_version']})"
    console.print(line)
    if samples:
        source = record.get("psi_source")
        table = Table(title="measured", title_justify="left")
        for col in ("figure", "first", "max", "last"):
            table.add_column(col, justify="right" if col != "figure" else "left")
        for key, label, size, delta in _figures(samples, source):
            values = [x[key] for x in samples if x.get(key) is not None]
            if not values or (key in ("shmem", "swap") and not max(values)):
                continue
            if delta and values[-1] == values[0] and not any(x.get("swap") for x in samples):
                continue  # no swapping at all: nothing to say
            if delta:
                table.add_row(label, "", "", f"{values[-1] - values[0]:+g}")
            else:
                table.add_row(label, _num(values[0], size), _num(max(values), size), _num(values[-1], size))
        console.print(table)
        if source:
            where = ("the sandbox's own cgroup (memory.pressure)" if source == "sandbox"
                     else "host-wide /proc/pressure/memory: this host shows no per-sandbox PSI")
            console.print(f"PSI shown: [bold]{source}[/], from {where}")
    accounting = record.get("accounting") or {}
    if accounting:
        table = Table(title="what the processes show vs what the cgroup counts", title_justify="left")
        for col in ("moment", "RSS, all processes", "biggest", "usage", "anon", "page cache", "shmem",
                    "working set"):
            table.add_column(col, justify="left" if col in ("moment", "biggest") else "right", no_wrap=col == "moment")
        for label, v in accounting.items():
            table.add_row(label, _num(v.get("processes_rss")), escape(str(v.get("largest") or "")),
                          _num(v.get("usage")), _num(v.get("anon")), _num(v.get("file")), _num(v.get("shmem")),
                          _num(v.get("workingset")))
        console.print(table)
        console.print("[dim]page cache includes tmpfs/shmem; working set = usage - inactive_file (what kubectl top "
                      "and kubelet eviction use); the OOM killer acts on usage against the limit.[/]")
    for event in record.get("events", []):
        if event["kind"] == "qos":
            text = (f"QoS {event['class']}: {escape(event['name'])} gets oom_score_adj {event['oom_score_adj']}"
                    + (f" (the kubelet would set {event['kubelet_adj']})" if event['kubelet_adj'] != event['oom_score_adj'] else ""))
            console.print(text)
            if event.get("note"):
                console.print(f"  [yellow]note:[/] {escape(event['note'])}")
    for kill in [e for e in record.get("events", []) if e["kind"] == "oom_kill"]:
        console.print(kill_line(kill))
    _print_prediction(console, record.get("prediction"))
    for label, seconds in (record.get("timings") or {}).items():
        console.print(f"timed {label}: {seconds * 1000:.1f} ms")
    for e in record.get("expectations", []):
        state = e.get("state") or ("passed" if e["held"] else "failed")
        suffix = " [yellow](not observable on this host: counts as neither)[/]" if state == "unobservable" else ""
        console.print(f"{MARK.get(state, '?')} {escape(e['message'])}: {escape(e['detail'])}{suffix}")
    for what in record.get("unobservable", []):
        console.print(f"[yellow]not observable on this host:[/] {escape(what)}")


def _print_prediction(console: Console, pred: dict[str, Any] | None) -> None:
    if not pred:
        return
    table = Table(title="who will the OOM killer pick?", title_justify="left")
    for col in ("pid", "process", "RSS pages", "oom_score_adj", "badness (memcg)", "/proc/PID/oom_score"):
        table.add_column(col, justify="left" if col == "process" else "right")
    for r in pred.get("ranked", []):
        table.add_row(str(r["pid"]), escape(r["comm"]), str(r["rss_pages"]), str(r["oom_score_adj"]),
                      str(r["points"]), str(r["oom_score"]))
    console.print(table)
    console.print(f"[dim]badness = RSS + page tables + swap + oom_score_adj x {pred.get('totalpages', 0) // 1000} "
                  f"(the limit in pages / 1000); /proc/PID/oom_score scales the adj by the host's RAM instead[/]")
    actual = pred.get("actual_pid")

    def verdict(pid: Any) -> str:
        if actual is None or pid is None:
            return ""
        return " [green]right[/]" if pid == actual else " [red]wrong[/]"

    console.print(f"memcg arithmetic predicts: {escape(str(pred.get('victim')))} (pid {pred.get('victim_pid')})"
                  f"{verdict(pred.get('victim_pid'))}")
    console.print(f"/proc/PID/oom_score points at: {escape(str(pred.get('oom_score_pick_comm', '')))} "
                  f"(pid {pred.get('oom_score_pick')}){verdict(pred.get('oom_score_pick'))}")
    for key, who in (("user_pid", "you predicted"), ("learner_pid", "your answers file says")):
        if pred.get(key) is not None:
            console.print(f"{who}: pid {pred[key]}{verdict(pred[key])}")
    if actual is not None:
        console.print(f"the kernel killed: [bold]{escape(str(pred.get('actual')))}[/] (pid {actual})")
