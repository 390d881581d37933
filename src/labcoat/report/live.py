"""The live view of a scenario run, and its summary.

While a run goes on, one panel shows what matters: memory use against the limit, page
cache, anonymous memory, PSI, OOM kills as they happen, and the last few events.
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


class LiveView:
    """A rich Live panel fed with runner events; thread-safe (samples arrive from the watch thread)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console, self.title = console, title
        self.latest: dict[str, Any] = {}
        self.events: list[str] = []
        self.kills = 0
        self.step = ""
        self.lock = threading.Lock()
        self.live = Live(self.render(), console=console, refresh_per_second=8, transient=False)
        self.began = time.monotonic()

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            if kind == "sample":
                self.latest = data
            elif kind == "step":
                self.step = f"step {data['index'] + 1}/{data['total']}: {data['kind']}"
            elif kind == "oom_kill":
                self.kills += data.get("new_kills", 1)
                who = f"{data.get('victim', '?')} (pid {data.get('victim_pid', '?')})"
                lat = data.get("report_latency_ms")
                self.events.append(f"[red]OOM kill[/] at {data['t']:.2f}s: {escape(who)}"
                                   + (f", reported {lat:.1f} ms after the kernel" if lat is not None else ""))
            elif kind in ("hog", "fill_cache", "timed", "prediction", "reclaim", "waited"):
                self.events.append(f"{data.get('t', 0):.2f}s {kind}: " + escape(", ".join(
                    f"{k}={v}" for k, v in data.items() if k not in ("t", "kind"))))
            elif kind == "status":
                self.step = data.get("message", "")
            self.events = self.events[-6:]
        self.live.update(self.render())

    def render(self) -> Panel:
        s = self.latest
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right")
        table.add_column()
        limit = s.get("limit")
        table.add_row("memory", f"{_bar(s.get('usage'), limit)} {_num(s.get('usage'))} of {_num(limit)}")
        table.add_row("anon", _num(s.get("anon")))
        table.add_row("page cache", _num(s.get("file")))
        psi = s.get("psi_some_avg10")
        host_psi = s.get("host_psi_some_avg10")
        table.add_row("PSI some avg10", f"sandbox {_num(psi, False)}%   host-wide {_num(host_psi, False)}%")
        table.add_row("OOM kills", f"[red]{self.kills}[/]" if self.kills else "0")
        lines = [table, f"[dim]{escape(self.step)}[/]", *self.events]
        return Panel(Group(*lines), title=escape(self.title), subtitle=f"{time.monotonic() - self.began:.1f} s")


def print_summary(console: Console, record: dict[str, Any]) -> None:
    """The summary after a run: what was seen, and which expectations held."""
    samples = record.get("samples", [])
    status = record["status"]
    colour = {"passed": "green", "failed": "red", "skipped": "yellow"}.get(status, "magenta")
    console.print(f"[bold]{escape(record['title'])}[/]: [{colour}]{status}[/]"
                  + (f" ({escape(record['reason'])})" if record.get("reason") else "")
                  + f" in {record.get('duration', 0):.1f} s, observed from the {record.get('observed_from') or '?'}")
    if samples:
        table = Table(title="measured", title_justify="left")
        for col in ("figure", "first", "max", "last"):
            table.add_column(col, justify="right" if col != "figure" else "left")
        for key, size in (("usage", True), ("anon", True), ("file", True), ("oom_kill", False),
                          ("psi_some_avg10", False), ("host_psi_some_avg10", False)):
            values = [x[key] for x in samples if x.get(key) is not None]
            if values:
                table.add_row(key, _num(values[0], size), _num(max(values), size), _num(values[-1], size))
        console.print(table)
    for kill in [e for e in record.get("events", []) if e["kind"] == "oom_kill"]:
        rss = kill.get("victim_anon_rss_kb")
        console.print(f"[red]OOM kill[/] at {kill['t']:.2f} s: {escape(str(kill.get('victim', '?')))} "
                      f"(pid {kill.get('victim_pid', '?')}" + (f", {rss // 1024} MiB anon" if rss else "") + ")"
                      + (f", reported {kill['report_latency_ms']:.1f} ms after the kernel's kill"
                         if kill.get("report_latency_ms") is not None else ""))
    pred = record.get("prediction")
    if pred:
        console.print(f"predicted victim (memcg arithmetic): {pred.get('victim')} (pid {pred.get('victim_pid')}); "
                      f"/proc/PID/oom_score would point at pid {pred.get('oom_score_pick')}")
        if pred.get("user_pid") is not None:
            right = pred["user_pid"] == pred.get("victim_pid")
            console.print(f"your prediction: pid {pred['user_pid']}: " + ("[green]right[/]" if right else "[red]wrong[/]"))
    for e in record.get("expectations", []):
        mark = "[green]✓[/]" if e["held"] else "[red]✗[/]"
        console.print(f"{mark} {escape(e['message'])}: {escape(e['detail'])}")
    for what in record.get("unobservable", []):
        console.print(f"[yellow]not observable on this host:[/] {escape(what)}")
