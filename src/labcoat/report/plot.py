"""A picture of a scenario run: memory, page cache and PSI over time, OOM kills marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labcoat.errors import EnvironmentProblem


def plot_run(record: dict[str, Any], path: Path) -> Path:
    """Write a PNG with two panels: memory (usage, anon, page cache, limit) and PSI avg10."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentProblem("plots need matplotlib", hint="pip install 'labcoat[plot]'") from None
    samples = record.get("samples", [])
    if not samples:
        raise EnvironmentProblem("nothing was sampled in this run, so there is nothing to plot")
    t = [s["t"] for s in samples]
    fig, (mem, psi) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(3, 2))
    mib = 1 / (1 << 20)
    for key, label in (("usage", "cgroup usage"), ("anon", "anonymous"), ("file", "page cache")):
        values = [s.get(key) for s in samples]
        if any(v is not None for v in values):
            mem.plot(t, [v * mib if v is not None else None for v in values], label=label)
    limits = [s.get("limit") for s in samples if s.get("limit")]
    if limits:
        mem.axhline(limits[0] * mib, color="red", linestyle="--", label="limit")
    mem.set_ylabel("MiB")
    for key, label in (("psi_some_avg10", "sandbox some"), ("psi_full_avg10", "sandbox full"),
                       ("host_psi_some_avg10", "host-wide some")):
        values = [s.get(key) for s in samples]
        if any(v is not None for v in values):
            psi.plot(t, values, label=label)
    psi.set_ylabel("PSI avg10 (%)")
    psi.set_xlabel("seconds")
    for kill in [e for e in record.get("events", []) if e["kind"] == "oom_kill"]:
        for ax in (mem, psi):
            ax.axvline(kill["t"], color="black", linestyle=":")
        mem.annotate(f"OOM kill: {kill.get('victim', '?')}", (kill["t"], mem.get_ylim()[1] * 0.95), fontsize=8)
    mem.legend(loc="upper left", fontsize=8)
    psi.legend(loc="upper left", fontsize=8)
    fig.suptitle(record.get("title", record.get("scenario", "")))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
